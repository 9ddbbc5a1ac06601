//! Sealed chunks of small files kept on disk between describing a project and sending it.
//!
//! A first submit must read every file to learn its chunks, and then send the chunks the gateway lacks. A course
//! project's thousands of sources would each be opened and read twice, and sealed only after the gateway answered:
//! [`super::describe_with_progress`] seals the chunks of files under [`super::SPOOLED_FILE`] as it reads them, in
//! parallel, into a [`Spool`] (an unnamed temporary file, gone when dropped), and the sender takes the wanted ones
//! from there. Large files' chunks are read again instead ([`super::seal_chunks`]): written here, a gigabyte of data
//! would cost more to write and read back than to read twice from the page cache. Files the index knew are not read,
//! so their chunks are not in the spool either.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Mutex;

use super::manifest::ChunkId;

/// Sealed chunks by id, in one temporary file.
#[derive(Debug)]
pub struct Spool {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    end: u64,
    /// Where each chunk's sealed bytes are: offset and length.
    at: HashMap<ChunkId, (u64, usize)>,
}

impl Spool {
    /// An empty spool in the system's temporary folder.
    pub fn new() -> std::io::Result<Spool> {
        Spool::in_file(tempfile::tempfile()?)
    }

    /// An empty spool in the temporary folder `dir`.
    pub fn new_in(dir: &std::path::Path) -> std::io::Result<Spool> {
        Spool::in_file(tempfile::tempfile_in(dir)?)
    }

    fn in_file(file: File) -> std::io::Result<Spool> {
        Ok(Spool {
            inner: Mutex::new(Inner {
                file,
                end: 0,
                at: HashMap::new(),
            }),
        })
    }

    /// Keeps `sealed` as chunk `id`'s bytes (a chunk already kept is not written again).
    pub fn put(&self, id: ChunkId, sealed: &[u8]) -> std::io::Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.at.contains_key(&id) {
            return Ok(());
        }
        let end = inner.end;
        inner.file.seek(SeekFrom::Start(end))?;
        inner.file.write_all(sealed)?;
        inner.end += sealed.len() as u64;
        inner.at.insert(id, (end, sealed.len()));
        Ok(())
    }

    /// Whether chunk `id` is kept.
    pub fn contains(&self, id: &ChunkId) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.at.contains_key(id)
    }

    /// Chunk `id`'s sealed bytes into `buf` (in place of what it held), `None` if it is not kept: one buffer serves
    /// chunk after chunk.
    pub fn read_into(&self, id: &ChunkId, buf: &mut Vec<u8>) -> Option<std::io::Result<()>> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (offset, len) = *inner.at.get(id)?;
        buf.clear();
        buf.resize(len, 0);
        Some(
            inner
                .file
                .seek(SeekFrom::Start(offset))
                .and_then(|_| inner.file.read_exact(buf)),
        )
    }

    /// Chunks kept, and their sealed bytes in all.
    pub fn kept(&self) -> (usize, u64) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (inner.at.len(), inner.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_put_is_read_back_and_kept_once() {
        let spool = Spool::new().unwrap();
        let (a, b) = (ChunkId::of(b"a"), ChunkId::of(b"b"));
        spool.put(a, b"sealed a").unwrap();
        spool.put(b, b"sealed bb").unwrap();
        spool.put(a, b"sealed a").unwrap();
        assert_eq!(spool.kept(), (2, 17));
        // Read back into one buffer, chunk after chunk: each read replaces what it held.
        let mut buf = b"left over from before".to_vec();
        spool.read_into(&a, &mut buf).unwrap().unwrap();
        assert_eq!(buf, b"sealed a");
        spool.read_into(&b, &mut buf).unwrap().unwrap();
        assert_eq!(buf, b"sealed bb");
        assert!(spool.read_into(&ChunkId::of(b"c"), &mut buf).is_none());
    }
}
