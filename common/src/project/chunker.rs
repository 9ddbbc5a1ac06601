//! Cutting a file into chunks by content, and sealing and opening one for the wire.
//!
//! Chunk boundaries come from FastCDC (2020) over each file on its own: an insertion in a large file moves only the
//! boundaries around it, and a file's chunks do not depend on its neighbours, so an unchanged file keeps its chunks
//! (and the client's index can skip reading it). A file smaller than [`MIN_CHUNK`] is one chunk. A chunk travels
//! compressed with zstd on its own ([`seal`]); whoever receives one decompresses it into a buffer of the size the
//! manifest declares and no more, and checks its hash ([`open`]): a chunk bomb or a chunk that is not what its id
//! says is refused.

use std::io::Read;

use super::manifest::{ChunkId, ChunkRef};
use crate::errors::ChunkError;

/// The smallest chunk FastCDC cuts (files smaller are one chunk).
pub const MIN_CHUNK: usize = 256 * 1024;
/// The size FastCDC aims at.
pub const AVG_CHUNK: usize = 1024 * 1024;
/// The largest chunk: no chunk of the protocol is larger.
pub const MAX_CHUNK: usize = 4 * 1024 * 1024;

/// The zstd level chunks are sealed at: one below the archive's, which on source-like files is about a third
/// faster for about 4% more bytes, so that a first submit's describing (every chunk sealed on every core) stays well
/// under what packing an archive takes (issue 30's target: 0.7 of `tar --zstd`).
pub const CHUNK_LEVEL: i32 = 2;

/// A chunk and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub id: ChunkId,
    pub data: Vec<u8>,
}

impl Chunk {
    /// What a manifest says of it.
    pub fn reference(&self) -> ChunkRef {
        ChunkRef {
            id: self.id,
            size: self.data.len() as u64,
        }
    }
}

/// Cuts everything `reader` gives into chunks, in order (none for an empty input).
pub fn cut<R: Read>(reader: R) -> impl Iterator<Item = std::io::Result<Chunk>> {
    cut_unnamed(reader).map(|data| {
        data.map(|data| Chunk {
            id: ChunkId::of(&data),
            data,
        })
    })
}

/// [`cut`] without naming the chunks: their bytes, in order, for a caller that hashes them elsewhere (on another
/// thread).
pub fn cut_unnamed<R: Read>(reader: R) -> impl Iterator<Item = std::io::Result<Vec<u8>>> {
    fastcdc::v2020::StreamCDC::new(reader, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK).map(|c| match c {
        Ok(c) => Ok(c.data),
        Err(fastcdc::v2020::Error::IoError(e)) => Err(e),
        Err(e) => Err(std::io::Error::other(e.to_string())),
    })
}

/// The most bytes a sealed chunk of this protocol can take (a larger object is refused unread).
pub fn max_sealed() -> usize {
    zstd::zstd_safe::compress_bound(MAX_CHUNK)
}

/// A chunk's bytes as they travel and are stored: one zstd frame.
pub fn seal(data: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(data, CHUNK_LEVEL).expect("compressing into memory cannot fail")
}

/// Seals chunk after chunk with one zstd context and one output buffer, as [`seal`] does one: sealing a project's
/// thousands of chunks then allocates neither per chunk. Each would be about a chunk's size, and glibc's allocator
/// keeps such freed buffers in its heap once they are common, which made most of a first submit's peak memory.
pub struct Sealer {
    compressor: zstd::bulk::Compressor<'static>,
    sealed: Vec<u8>,
}

impl Sealer {
    pub fn new() -> Sealer {
        Sealer {
            compressor: zstd::bulk::Compressor::new(CHUNK_LEVEL)
                .expect("a zstd context at a valid level"),
            sealed: Vec::new(),
        }
    }

    /// `data` sealed, valid until the next call.
    pub fn seal(&mut self, data: &[u8]) -> &[u8] {
        // Room for the worst case of this chunk, kept for the next (a chunk is at most MAX_CHUNK).
        let bound = zstd::zstd_safe::compress_bound(data.len());
        self.sealed.clear();
        self.sealed.reserve(bound);
        self.compressor
            .compress_to_buffer(data, &mut self.sealed)
            .expect("compressing into a buffer of the bound cannot fail");
        &self.sealed
    }
}

impl Default for Sealer {
    fn default() -> Sealer {
        Sealer::new()
    }
}

/// The bytes of a sealed chunk that the manifest says is `expected`: decompressed into at most `expected.size`
/// bytes (a frame that expands further is a bomb), and hashed to check it is the chunk its id names.
pub fn open(expected: &ChunkRef, sealed: &[u8]) -> Result<Vec<u8>, ChunkError> {
    if expected.size > MAX_CHUNK as u64 {
        return Err(ChunkError::TooLarge {
            id: expected.id,
            size: expected.size,
            max: MAX_CHUNK as u64,
        });
    }
    let data = zstd::bulk::decompress(sealed, expected.size as usize).map_err(|source| {
        ChunkError::Unreadable {
            id: expected.id,
            source,
        }
    })?;
    if data.len() as u64 != expected.size {
        return Err(ChunkError::WrongSize {
            id: expected.id,
            expected: expected.size,
            found: data.len() as u64,
        });
    }
    let found = ChunkId::of(&data);
    if found != expected.id {
        return Err(ChunkError::WrongContent {
            id: expected.id,
            found,
        });
    }
    Ok(data)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Bytes that do not compress and do not repeat (xorshift).
    pub(crate) fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect()
    }

    fn ids(data: &[u8]) -> Vec<ChunkId> {
        cut(data).map(|c| c.unwrap().id).collect()
    }

    #[test]
    fn an_insertion_changes_only_the_chunks_around_it() {
        let before = noise(24 << 20, 7);
        let mut after = before.clone();
        after.splice(10 << 20..10 << 20, b"one more line\n".iter().copied());
        let (a, b) = (ids(&before), ids(&after));
        assert!(a.len() >= 6, "{} chunks", a.len());
        let kept = b.iter().filter(|id| a.contains(id)).count();
        assert!(kept + 2 >= b.len(), "{kept} of {} chunks kept", b.len());
        let total: usize = cut(&after[..]).map(|c| c.unwrap().data.len()).sum();
        assert_eq!(total, after.len());
    }

    #[test]
    fn small_and_empty_files() {
        assert_eq!(ids(b"int main() {}").len(), 1);
        assert!(ids(b"").is_empty());
        for c in cut(&noise(20 << 20, 3)[..]) {
            let n = c.unwrap().data.len();
            assert!(n <= MAX_CHUNK);
        }
    }

    #[test]
    fn a_sealer_seals_chunk_after_chunk_as_seal_does() {
        let mut sealer = Sealer::new();
        for (n, seed) in [(MAX_CHUNK, 1), (10, 2), (300_000, 3), (0, 4)] {
            let data = noise(n, seed);
            let sealed = sealer.seal(&data).to_vec();
            let reference = ChunkRef {
                id: ChunkId::of(&data),
                size: n as u64,
            };
            assert_eq!(open(&reference, &sealed).unwrap(), data);
            assert_eq!(
                sealed,
                seal(&data),
                "the same frame as a context of its own"
            );
        }
    }

    #[test]
    fn a_sealed_chunk_opens_to_its_bytes_and_nothing_else() {
        let data = noise(100_000, 11);
        let chunk = Chunk {
            id: ChunkId::of(&data),
            data: data.clone(),
        };
        let sealed = seal(&data);
        assert_eq!(open(&chunk.reference(), &sealed).unwrap(), data);
        // Another chunk's bytes under this id.
        let other = seal(&noise(100_000, 12));
        assert!(matches!(
            open(&chunk.reference(), &other),
            Err(ChunkError::WrongContent { .. })
        ));
        // A bomb: a tiny frame of zeros that expands far past the size the manifest gives.
        let bomb = seal(&vec![0u8; MAX_CHUNK]);
        assert!(bomb.len() < 1024);
        let claimed = ChunkRef {
            id: chunk.id,
            size: 1000,
        };
        assert!(matches!(
            open(&claimed, &bomb),
            Err(ChunkError::Unreadable { .. })
        ));
        // Shorter than declared.
        let short = ChunkRef {
            id: chunk.id,
            size: 200_000,
        };
        assert!(matches!(
            open(&short, &sealed),
            Err(ChunkError::WrongSize { .. })
        ));
        assert!(matches!(
            open(
                &ChunkRef {
                    id: chunk.id,
                    size: u64::MAX
                },
                &sealed
            ),
            Err(ChunkError::TooLarge { .. })
        ));
        assert!(matches!(
            open(&chunk.reference(), b"not zstd"),
            Err(ChunkError::Unreadable { .. })
        ));
    }
}
