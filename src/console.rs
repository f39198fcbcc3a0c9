//! The console: buffered output, byte-at-a-time input.
//!
//! Output collects in a buffer that is written out when it fills, before every input read
//! (so an interactive program shows its prompt before it waits), and by [`Console::flush`],
//! which the engines call at halt and at a fault. End of input reads as 0xFFFF_FFFF.

use crate::fault::Reason;
use std::io::{self, Read, Write};

const OUT_CAPACITY: usize = 1 << 16;

pub struct Console {
    out: Vec<u8>,
    writer: Box<dyn Write>,
    reader: Box<dyn Read>,
    in_buf: Box<[u8]>,
    in_pos: usize,
    in_len: usize,
    eof: bool,
    /// Bytes written by the program so far.
    pub bytes_out: u64,
    /// Bytes read by the program so far (end of input not counted).
    pub bytes_in: u64,
}

impl Console {
    pub fn new(reader: Box<dyn Read>, writer: Box<dyn Write>) -> Console {
        Console {
            out: Vec::with_capacity(OUT_CAPACITY),
            writer,
            reader,
            in_buf: vec![0; 4096].into_boxed_slice(),
            in_pos: 0,
            in_len: 0,
            eof: false,
            bytes_out: 0,
            bytes_in: 0,
        }
    }

    /// The process's standard input and output.
    pub fn stdio() -> Console {
        Console::new(Box::new(io::stdin()), Box::new(io::stdout()))
    }

    /// Op 10. Values above 255 are a fault.
    #[inline]
    pub fn output(&mut self, value: u32) -> Result<(), Reason> {
        if value > 255 {
            return Err(Reason::OutputTooLarge(value));
        }
        self.out.push(value as u8);
        self.bytes_out += 1;
        if self.out.len() >= OUT_CAPACITY {
            self.flush()?;
        }
        Ok(())
    }

    /// Op 11: the next input byte, or 0xFFFF_FFFF at end of input.
    pub fn input(&mut self) -> Result<u32, Reason> {
        if self.in_pos == self.in_len {
            self.flush()?;
            if self.eof {
                return Ok(u32::MAX);
            }
            loop {
                match self.reader.read(&mut self.in_buf) {
                    Ok(0) => {
                        self.eof = true;
                        return Ok(u32::MAX);
                    }
                    Ok(n) => {
                        self.in_pos = 0;
                        self.in_len = n;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Reason::Io(format!("cannot read input: {e}"))),
                }
            }
        }
        let b = self.in_buf[self.in_pos];
        self.in_pos += 1;
        self.bytes_in += 1;
        Ok(b as u32)
    }

    /// Write out everything buffered so far.
    pub fn flush(&mut self) -> Result<(), Reason> {
        let result = self
            .writer
            .write_all(&self.out)
            .and_then(|_| self.writer.flush());
        self.out.clear();
        result.map_err(|e| Reason::Io(format!("cannot write output: {e}")))
    }
}

/// A `Write` that appends to a shared buffer, for running programs in-process (tests, fuzzing).
#[derive(Clone, Default)]
pub struct SharedOutput(pub std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl Write for SharedOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_buffered_until_flush_and_input_flushes() {
        let sink = SharedOutput::default();
        let mut c = Console::new(Box::new(&b"hi"[..]), Box::new(sink.clone()));
        c.output(b'?' as u32).unwrap();
        assert!(sink.0.borrow().is_empty());
        assert_eq!(c.input(), Ok(b'h' as u32));
        assert_eq!(&*sink.0.borrow(), b"?");
        assert_eq!(c.input(), Ok(b'i' as u32));
        assert_eq!(c.input(), Ok(u32::MAX));
        assert_eq!(c.input(), Ok(u32::MAX));
        assert_eq!(c.output(256), Err(Reason::OutputTooLarge(256)));
    }
}
