//! Chunks sent together: a batch of sealed chunks in one request body.
//!
//! A first submit of a course project sends thousands of chunks, most of them small sources. One request each cost a
//! signature, a nonce, an ownership check, a missing-list lookup and a stored object apiece, and made the first
//! chunked submit about twice as slow as an archive (issue 30). A batch carries up to [`BATCH_BYTES`] of chunks back
//! to back, each framed by its id and its sealed length, so that the gateway checks who asks once, looks up every
//! chunk's declared size in one round trip and checks each chunk before storing any.
//!
//! A frame is 32 bytes of [`ChunkId`], the sealed length as 4 bytes little endian, then the sealed bytes
//! ([`super::seal`]). Nothing else: the chunk's id and declared size already say what it must open to.

use super::ChunkId;
use super::chunker::max_sealed;
use crate::errors::BatchError;

/// Bytes before each chunk: its id and its sealed length.
pub const FRAME_HEADER: usize = 32 + 4;

/// A client starts a new batch once this many sealed bytes are in one; a chunk larger than what is left still joins
/// the batch it starts, so a batch never waits for a chunk it cannot take.
pub const BATCH_BYTES: usize = 2 << 20;

/// The most chunks in one batch: a batch of the smallest chunks still stays a bounded amount of work to check.
pub const MAX_FRAMES: usize = 4096;

/// The largest body a gateway takes as one batch: a batch just short of [`BATCH_BYTES`], then the largest sealed
/// chunk with its frame.
pub fn max_batch() -> usize {
    BATCH_BYTES + max_sealed() + FRAME_HEADER
}

/// A batch being filled by the client.
#[derive(Debug)]
pub struct Batch {
    body: Vec<u8>,
    ids: Vec<ChunkId>,
    /// The chunks' unsealed sizes, for progress.
    size: u64,
}

/// An empty batch with room for the largest it can become, taken at once: a batch's body never moves while it is
/// filled, and every batch takes a block of the same size, which the allocator hands from one to the next.
impl Default for Batch {
    fn default() -> Batch {
        Batch {
            body: Vec::with_capacity(max_batch()),
            ids: Vec::new(),
            size: 0,
        }
    }
}

impl Batch {
    /// Adds one sealed chunk whose unsealed size is `size`.
    pub fn push(&mut self, id: ChunkId, size: u64, sealed: &[u8]) {
        let len = u32::try_from(sealed.len()).expect("a sealed chunk is far below 4 GiB");
        self.body.reserve(FRAME_HEADER + sealed.len());
        self.body.extend_from_slice(&id.0);
        self.body.extend_from_slice(&len.to_le_bytes());
        self.body.extend_from_slice(sealed);
        self.ids.push(id);
        self.size += size;
    }

    /// Whether the batch should go now rather than take another chunk.
    pub fn is_full(&self) -> bool {
        self.body.len() >= BATCH_BYTES || self.ids.len() >= MAX_FRAMES
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The chunks in it, in order.
    pub fn ids(&self) -> &[ChunkId] {
        &self.ids
    }

    /// What the chunks add up to unsealed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The request body's length so far.
    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    /// The request body.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The request body and its [`index_digest`].
    pub fn into_signed_body(self) -> (Vec<u8>, String) {
        let frames = frames(&self.body).expect("a batch frames what it was given");
        let index = index_digest(&self.body, &frames);
        (self.body, index)
    }
}

/// Sealed chunks given one by one, gathered into batches: each is handed to `send` once full, and the last (not
/// full) at [`Batches::finish`]. Whoever keeps the sealed chunks fills batches straight from there, with no buffer of
/// its own per chunk.
pub struct Batches<F> {
    batch: Batch,
    send: F,
}

impl<F: FnMut(Batch) -> bool> Batches<F> {
    /// `send` answers whether it took the batch (false: nobody takes more, so stop).
    pub fn new(send: F) -> Batches<F> {
        Batches {
            batch: Batch::default(),
            send,
        }
    }

    /// Adds a chunk (`size`: its bytes before sealing); false once `send` refused a batch.
    pub fn push(&mut self, id: ChunkId, size: u64, sealed: &[u8]) -> bool {
        self.batch.push(id, size, sealed);
        if !self.batch.is_full() {
            return true;
        }
        let full = std::mem::take(&mut self.batch);
        (self.send)(full)
    }

    /// Hands on the last batch, if it holds anything; false if `send` refused it.
    pub fn finish(self) -> bool {
        let Batches { batch, mut send } = self;
        batch.is_empty() || send(batch)
    }
}

/// The [`crate::api::BATCH_INDEX`] of a batch: the SHA-256 of its frames' headers (each chunk's id and sealed
/// length, in order), as a digest header value. It fixes the body as far as the gateway relies on it: each chunk's
/// bytes are checked against its id when opened.
pub fn index_digest(body: &[u8], frames: &[Frame]) -> String {
    use sha2::{Digest, Sha256};
    let mut index = Sha256::new();
    for frame in frames {
        index.update(&body[frame.sealed.start - FRAME_HEADER..frame.sealed.start]);
    }
    crate::httpsig::content_digest_of(&index.finalize().into())
}

/// One chunk in a batch body: its id, and where its sealed bytes are in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub id: ChunkId,
    pub sealed: std::ops::Range<usize>,
}

/// The frames of a batch body, checked whole before any is used: every frame complete, no chunk twice, at most
/// [`MAX_FRAMES`], none larger than a sealed chunk can be.
pub fn frames(body: &[u8]) -> Result<Vec<Frame>, BatchError> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut rest = body;
    while !rest.is_empty() {
        let at = body.len() - rest.len();
        if out.len() == MAX_FRAMES {
            return Err(BatchError::TooMany { max: MAX_FRAMES });
        }
        if rest.len() < FRAME_HEADER {
            return Err(BatchError::Truncated { at });
        }
        let id = ChunkId(rest[..32].try_into().expect("32 bytes"));
        let len = u32::from_le_bytes(rest[32..36].try_into().expect("4 bytes")) as usize;
        if len == 0 || len > max_sealed() {
            return Err(BatchError::BadLength {
                id,
                len,
                max: max_sealed(),
            });
        }
        if rest.len() - FRAME_HEADER < len {
            return Err(BatchError::Truncated { at });
        }
        if !seen.insert(id) {
            return Err(BatchError::Repeated(id));
        }
        let start = at + FRAME_HEADER;
        out.push(Frame {
            id,
            sealed: start..start + len,
        });
        rest = &rest[FRAME_HEADER + len..];
    }
    if out.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::seal;

    fn chunk(n: u8, len: usize) -> (ChunkId, Vec<u8>) {
        let data = vec![n; len];
        (ChunkId::of(&data), seal(&data))
    }

    #[test]
    fn batches_fill_in_order_and_the_last_comes_at_finish() {
        // Bytes that do not compress, so that each sealed chunk is about 700 KB and three fill a batch.
        let chunks: Vec<_> = (1..=7)
            .map(|n| {
                let data = crate::project::chunker::tests::noise(700_000, n);
                (ChunkId::of(&data), seal(&data))
            })
            .collect();
        let mut sent: Vec<Batch> = Vec::new();
        let mut batches = Batches::new(|b| {
            sent.push(b);
            true
        });
        for (id, sealed) in &chunks {
            assert!(batches.push(*id, 1, sealed));
        }
        assert!(batches.finish());
        let ids: Vec<ChunkId> = sent.iter().flat_map(|b| b.ids().to_vec()).collect();
        assert_eq!(ids, chunks.iter().map(|c| c.0).collect::<Vec<_>>());
        assert!(sent.len() > 1, "{} batches", sent.len());
        let (last, full) = sent.split_last().unwrap();
        assert!(full.iter().all(Batch::is_full));
        assert!(!last.is_empty());
        assert!(sent.iter().all(|b| b.body_len() <= max_batch()));
        // A receiver that is gone stops the filling.
        let mut refused = Batches::new(|_| false);
        assert!(!(0..7).all(|n| refused.push(chunks[n].0, 1, &chunks[n].1)));
        assert!(Batches::new(|_| false).finish(), "nothing to hand on");
    }

    #[test]
    fn a_batch_reads_back_as_its_chunks_in_order() {
        let mut batch = Batch::default();
        let chunks: Vec<_> = (0..5).map(|n| chunk(n, 1000 + n as usize)).collect();
        for (id, sealed) in &chunks {
            batch.push(*id, 1, sealed);
        }
        assert_eq!(batch.size(), 5);
        let ids = batch.ids().to_vec();
        let body = batch.into_body();
        let read = frames(&body).unwrap();
        assert_eq!(read.len(), 5);
        for ((id, sealed), frame) in chunks.iter().zip(&read) {
            assert_eq!(*id, frame.id);
            assert_eq!(sealed.as_slice(), &body[frame.sealed.clone()]);
        }
        assert_eq!(ids, chunks.iter().map(|c| c.0).collect::<Vec<_>>());
    }

    #[test]
    fn the_index_digest_covers_ids_lengths_and_order_not_the_bytes() {
        let batch_of = |chunks: &[(ChunkId, Vec<u8>)]| {
            let mut batch = Batch::default();
            for (id, sealed) in chunks {
                batch.push(*id, 1, sealed);
            }
            batch.into_signed_body()
        };
        let (a, b) = (chunk(1, 900), chunk(2, 700));
        let (body, index) = batch_of(&[a.clone(), b.clone()]);
        assert_eq!(index, index_digest(&body, &frames(&body).unwrap()));
        assert!(index.starts_with("sha-256=:"), "{index}");
        // Another order, another chunk, another length: another index.
        assert_ne!(batch_of(&[b.clone(), a.clone()]).1, index);
        assert_ne!(batch_of(&[a.clone(), chunk(3, 700)]).1, index);
        let mut longer = b.1.clone();
        longer.push(0);
        assert_ne!(batch_of(&[a.clone(), (b.0, longer)]).1, index);
        // The sealed bytes themselves are not in it: those are checked against their ids when opened.
        let mut forged = body.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(index_digest(&forged, &frames(&forged).unwrap()), index);
    }

    #[test]
    fn a_batch_is_full_at_its_byte_budget() {
        let mut batch = Batch::default();
        let big = vec![7u8; BATCH_BYTES / 2];
        batch.push(ChunkId::of(b"a"), 1, &big);
        assert!(!batch.is_full());
        batch.push(ChunkId::of(b"b"), 1, &big);
        assert!(batch.is_full());
    }

    #[test]
    fn broken_bodies_are_refused_with_what_is_wrong() {
        let (id, sealed) = chunk(1, 100);
        let mut batch = Batch::default();
        batch.push(id, 100, &sealed);
        let body = batch.into_body();
        // Cut short, in the header and in the bytes.
        assert!(matches!(
            frames(&body[..10]),
            Err(BatchError::Truncated { at: 0 })
        ));
        assert!(matches!(
            frames(&body[..body.len() - 1]),
            Err(BatchError::Truncated { at: 0 })
        ));
        // The same chunk twice.
        let twice = [body.clone(), body.clone()].concat();
        assert!(matches!(frames(&twice), Err(BatchError::Repeated(i)) if i == id));
        // A length past any sealed chunk, and a zero length.
        let mut huge = body.clone();
        huge[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(frames(&huge), Err(BatchError::BadLength { .. })));
        let mut zero = body.clone();
        zero[32..36].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(frames(&zero), Err(BatchError::BadLength { .. })));
        assert!(matches!(frames(&[]), Err(BatchError::Empty)));
        let message = frames(&body[..10]).unwrap_err().to_string();
        assert!(message.contains("byte 0"), "{message}");
    }

    #[test]
    fn too_many_frames_are_refused() {
        let mut batch = Batch::default();
        for n in 0..=MAX_FRAMES as u32 {
            batch.push(ChunkId::of(&n.to_le_bytes()), 1, &[1]);
        }
        let body = batch.into_body();
        assert!(matches!(
            frames(&body),
            Err(BatchError::TooMany { max: MAX_FRAMES })
        ));
    }
}
