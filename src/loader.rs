//! The loader: a program scroll becomes big-endian 32-bit words.

use crate::memory::Words;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

#[derive(Debug)]
pub enum LoadError {
    Read { path: String, error: std::io::Error },
    Empty { path: String },
    NotWords { path: String, len: u64 },
    TooLarge { path: String, len: u64 },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Read { path, error } => write!(f, "cannot read {path}: {error}"),
            LoadError::Empty { path } => write!(
                f,
                "{path} is empty: a program needs at least one instruction"
            ),
            LoadError::NotWords { path, len } => write!(
                f,
                "{path} is {len} byte{s} long, not a whole number of 4-byte instructions",
                s = if *len == 1 { "" } else { "s" }
            ),
            LoadError::TooLarge { path, len } => {
                write!(f, "{path} is {len} bytes long, more than array 0 can hold")
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// Words of a program image held in memory.
pub fn words_from_bytes(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Read the program at `path` (a file, or a pipe or device read to its end; `-` is
/// standard input), into a buffer that a heap can take as array 0 as it is. A regular
/// file is read straight into that buffer, and its words put in host order in place.
pub fn load(path: &Path) -> Result<Words, LoadError> {
    let stdin = path == Path::new("-");
    let name = if stdin {
        "standard input".to_string()
    } else {
        path.display().to_string()
    };
    let read = |error| LoadError::Read {
        path: name.clone(),
        error,
    };
    let mut file = if stdin {
        None
    } else {
        let file = File::open(path).map_err(read)?;
        let meta = file.metadata().map_err(read)?;
        if meta.is_dir() {
            return Err(read(io::Error::other("is a directory")));
        }
        Some((file, meta.is_file().then_some(meta.len())))
    };
    let Some((file, Some(len))) = &mut file else {
        // Standard input, a pipe or a device: its length is known once it is read.
        let mut bytes = Vec::new();
        let result = match &mut file {
            Some((f, _)) => f.read_to_end(&mut bytes),
            None => io::stdin().lock().read_to_end(&mut bytes),
        };
        result.map_err(read)?;
        check_length(&name, bytes.len() as u64)?;
        let mut words = Words::zeroed((bytes.len() / 4) as u32).ok_or_else(|| read(no_room()))?;
        for (w, c) in words.iter_mut().zip(bytes.chunks_exact(4)) {
            *w = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
        return Ok(words);
    };
    check_length(&name, *len)?;
    let mut words = Words::zeroed((*len / 4) as u32).ok_or_else(|| read(no_room()))?;
    file.read_exact(words.as_bytes_mut()).map_err(read)?;
    // A file that grew while it was read is not the program it was.
    if file.read(&mut [0; 1]).map_err(read)? != 0 {
        return Err(read(io::Error::other("it changed while being read")));
    }
    for w in words.iter_mut() {
        *w = u32::from_be(*w);
    }
    Ok(words)
}

fn no_room() -> io::Error {
    io::Error::from(io::ErrorKind::OutOfMemory)
}

fn check_length(path: &str, len: u64) -> Result<(), LoadError> {
    let path = path.to_string();
    if len == 0 {
        Err(LoadError::Empty { path })
    } else if !len.is_multiple_of(4) {
        Err(LoadError::NotWords { path, len })
    } else if len / 4 > u32::MAX as u64 {
        Err(LoadError::TooLarge { path, len })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_endian() {
        assert_eq!(
            words_from_bytes(&[0x12, 0x34, 0x56, 0x78, 0xD0, 0, 0, 1]),
            vec![0x1234_5678, 0xD000_0001]
        );
    }

    #[test]
    fn lengths() {
        assert!(matches!(check_length("p", 0), Err(LoadError::Empty { .. })));
        assert!(matches!(
            check_length("p", 5),
            Err(LoadError::NotWords { len: 5, .. })
        ));
        assert!(check_length("p", 8).is_ok());
        let message = |len| check_length("p", len).unwrap_err().to_string();
        assert_eq!(
            message(1),
            "p is 1 byte long, not a whole number of 4-byte instructions"
        );
        assert_eq!(
            message(6),
            "p is 6 bytes long, not a whole number of 4-byte instructions"
        );
    }
}
