//! The SHA-256 and size of bytes as they pass, in one place: an upload's digest while it is packed (the client), a
//! build context's while it is written (the worker's image builder), and a fetched upload's while it is read (the
//! worker checks it against the signed job). Hex, as the signed job and the store write digests.

use std::io::Write;

use sha2::{Digest, Sha256};

/// A running SHA-256 and byte count.
#[derive(Clone, Default)]
pub struct Tally {
    hasher: Sha256,
    size: u64,
}

impl Tally {
    pub fn new() -> Tally {
        Tally::default()
    }

    /// Counts and hashes `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// The bytes counted so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The size and the hex SHA-256 of everything counted.
    pub fn finish(self) -> (u64, String) {
        (self.size, hex::encode(self.hasher.finalize()))
    }
}

/// A writer that counts and hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    tally: Tally,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            tally: Tally::new(),
        }
    }

    /// Flushes and returns the size and hex SHA-256 of everything written.
    pub fn finish(mut self) -> std::io::Result<(u64, String)> {
        self.inner.flush()?;
        Ok(self.tally.finish())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.tally.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_is_counted_and_hashed() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"ab").unwrap();
        w.write_all(b"c").unwrap();
        let (size, hex) = w.finish().unwrap();
        assert_eq!(size, 3);
        // SHA-256("abc"), FIPS 180-2's example.
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut t = Tally::new();
        t.update(b"abc");
        assert_eq!(t.size(), 3);
        assert_eq!(t.finish().1, hex);
    }
}
