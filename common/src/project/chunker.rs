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

/// Cuts everything `reader` gives into chunks, in order (none for an empty input), each in a buffer of its own.
pub fn cut<R: Read>(reader: R) -> impl Iterator<Item = std::io::Result<Chunk>> {
    let mut cutter = Cutter::new(reader);
    std::iter::from_fn(move || {
        cutter.next_chunk().map(|data| {
            data.map(|data| Chunk {
                id: ChunkId::of(data),
                data: data.to_vec(),
            })
        })
    })
}

/// How much of a file a [`Cutter`] holds at once: two of the largest chunks, so that the bytes left over after a
/// cut are moved to the window's front at most once per largest chunk's worth read.
const WINDOW: usize = 2 * MAX_CHUNK;

/// Cuts one file into chunks where FastCDC (2020, normalisation level 1, as `fastcdc::v2020::StreamCDC` cuts) finds
/// their boundaries, lending each chunk's bytes from one window of memory, which the next file's cutter can take
/// over ([`Cutter::into_window`]). A first submit cuts a whole project; a buffer per chunk (and one per file, as
/// `StreamCDC` takes) is fresh memory each time, and a fresh page costs a fault apiece, which was more of a first
/// submit's time than finding the boundaries.
pub struct Cutter<R> {
    reader: R,
    window: Vec<u8>,
    /// The bytes not yet cut: `window[start..end]`.
    start: usize,
    end: usize,
    ended: bool,
    masks: (u64, u64),
}

impl<R: Read> Cutter<R> {
    pub fn new(reader: R) -> Cutter<R> {
        Cutter::with_window(reader, Vec::new())
    }

    /// A cutter that reads into `window`'s memory (another cutter's, given back by [`Cutter::into_window`]).
    pub fn with_window(reader: R, mut window: Vec<u8>) -> Cutter<R> {
        window.resize(WINDOW, 0);
        Cutter {
            reader,
            window,
            start: 0,
            end: 0,
            ended: false,
            masks: fastcdc::v2020::select_masks(AVG_CHUNK, fastcdc::v2020::Normalization::Level1),
        }
    }

    /// The next chunk's bytes, valid until the next call; `None` after the last.
    pub fn next_chunk(&mut self) -> Option<std::io::Result<&[u8]>> {
        // A boundary is looked for in the next MAX_CHUNK bytes: have them all, or the rest of the file.
        if !self.ended && self.end - self.start < MAX_CHUNK {
            self.window.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            while self.end < WINDOW {
                match self.reader.read(&mut self.window[self.end..]) {
                    Ok(0) => {
                        self.ended = true;
                        break;
                    }
                    Ok(n) => self.end += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Some(Err(e)),
                }
            }
        }
        if self.start == self.end {
            return None;
        }
        let (mask_s, mask_l) = self.masks;
        let (_, length) = fastcdc::v2020::cut(
            &self.window[self.start..self.end],
            MIN_CHUNK,
            AVG_CHUNK,
            MAX_CHUNK,
            mask_s,
            mask_l,
            mask_s << 1,
            mask_l << 1,
        );
        let chunk = &self.window[self.start..self.start + length];
        self.start += length;
        Some(Ok(chunk))
    }

    /// The window's memory, for the next file's cutter.
    pub fn into_window(self) -> Vec<u8> {
        self.window
    }
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

    /// A reader that gives at most `step` bytes a call, as a pipe or a slow disk may.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn the_cutter_cuts_where_fastcdc_streams_cut_whatever_the_reads_and_the_window_it_takes_over() {
        let mut window = Vec::new();
        let mut zeros_then_noise = vec![0u8; 3 * MAX_CHUNK + 5];
        zeros_then_noise.extend(noise(5 << 20, 9));
        let inputs = [
            noise(30 << 20, 5),
            noise(MAX_CHUNK + 1, 6),
            noise(MIN_CHUNK - 1, 7),
            noise(MIN_CHUNK + 1, 8),
            zeros_then_noise,
            Vec::new(),
        ];
        for data in &inputs {
            let reference: Vec<Vec<u8>> =
                fastcdc::v2020::StreamCDC::new(&data[..], MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
                    .map(|c| c.unwrap().data)
                    .collect();
            for step in [usize::MAX, 100_001] {
                let mut cutter = Cutter::with_window(Trickle(data, step), window);
                let mut chunks = Vec::new();
                while let Some(chunk) = cutter.next_chunk() {
                    chunks.push(chunk.unwrap().to_vec());
                }
                window = cutter.into_window();
                assert_eq!(chunks.len(), reference.len(), "{} bytes", data.len());
                assert!(
                    chunks == reference,
                    "{} bytes: other boundaries",
                    data.len()
                );
            }
        }
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
