//! The loader: a program scroll becomes big-endian 32-bit words.

use std::fmt;
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
                "{path} is {len} bytes long, not a whole number of 4-byte instructions"
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
/// standard input).
pub fn load(path: &Path) -> Result<Vec<u32>, LoadError> {
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
    let bytes = if stdin {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes).map_err(read)?;
        bytes
    } else {
        if std::fs::metadata(path).map_err(read)?.is_dir() {
            return Err(read(std::io::Error::other("is a directory")));
        }
        std::fs::read(path).map_err(read)?
    };
    check_length(&name, bytes.len() as u64)?;
    Ok(words_from_bytes(&bytes))
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
    }
}
