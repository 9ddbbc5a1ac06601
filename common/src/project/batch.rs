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

/// The sealed bytes (frames included) a client puts in one batch: a chunk that would take a batch past them starts
/// the next one, and a chunk larger than this goes alone. (Earlier clients let such a chunk join the batch it would
/// overfill, which is why a gateway takes up to [`max_batch`].)
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
/// filled, and [`Bodies`] can hand any body back for any later batch.
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

/// The most bodies [`Bodies`] keeps: more than a client has batches in flight (the one filling, one queued, and the
/// requests being sent).
const BODIES_KEPT: usize = 8;

/// Bodies of batches already sent, handed back (through [`Bodies::lend`]) for the next batches to fill. A first
/// submit sends hundreds of batches; a fresh body for each is megabytes of fresh memory, a page fault per 4 KiB of
/// it, which cost a first submit more time than sealing its chunks. Clones share the bodies.
#[derive(Debug, Clone, Default)]
pub struct Bodies(std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

impl Bodies {
    /// An empty batch, in a body handed back if there is one.
    pub fn batch(&self) -> Batch {
        let kept = self.0.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match kept {
            Some(body) => Batch {
                body,
                ids: Vec::new(),
                size: 0,
            },
            None => Batch::default(),
        }
    }

    /// `body` (a batch's, from [`Batch::into_signed_body`]) as a request body that hands its memory back here once
    /// whoever sends it drops it.
    pub fn lend(&self, body: Vec<u8>) -> LentBody {
        LentBody {
            body,
            bodies: self.clone(),
        }
    }

    /// Keeps `body` unless enough are kept, or it was filled past [`BATCH_BYTES`] (by a chunk larger than that,
    /// alone): each body kept then holds at most that much memory in use, whatever it is lent for next.
    fn give_back(&self, mut body: Vec<u8>) {
        if body.len() > BATCH_BYTES || body.capacity() < max_batch() {
            return;
        }
        body.clear();
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < BODIES_KEPT {
            kept.push(body);
        }
    }
}

/// A batch's body on its way out (see [`Bodies::lend`]).
#[derive(Debug)]
pub struct LentBody {
    body: Vec<u8>,
    bodies: Bodies,
}

impl AsRef<[u8]> for LentBody {
    fn as_ref(&self) -> &[u8] {
        &self.body
    }
}

impl Drop for LentBody {
    fn drop(&mut self) {
        self.bodies.give_back(std::mem::take(&mut self.body));
    }
}

/// Sealed chunks given one by one, gathered into batches: each is handed to `send` once full, and the last (not
/// full) at [`Batches::finish`]. Whoever keeps the sealed chunks fills batches straight from there, with no buffer of
/// its own per chunk, and each batch in a body of `bodies` when one was handed back.
pub struct Batches<F> {
    batch: Batch,
    bodies: Bodies,
    send: F,
}

impl<F: FnMut(Batch) -> bool> Batches<F> {
    /// `send` answers whether it took the batch (false: nobody takes more, so stop).
    pub fn new(send: F, bodies: &Bodies) -> Batches<F> {
        Batches {
            batch: bodies.batch(),
            bodies: bodies.clone(),
            send,
        }
    }

    /// Adds a chunk (`size`: its bytes before sealing); false once `send` refused a batch. A chunk that would take
    /// the batch past [`BATCH_BYTES`] starts the next one instead (a larger chunk goes alone), so that the bodies
    /// handed back and kept stay within [`BATCH_BYTES`] of memory each.
    pub fn push(&mut self, id: ChunkId, size: u64, sealed: &[u8]) -> bool {
        if !self.batch.is_empty()
            && self.batch.body_len() + FRAME_HEADER + sealed.len() > BATCH_BYTES
            && !self.send_batch()
        {
            return false;
        }
        self.batch.push(id, size, sealed);
        !self.batch.is_full() || self.send_batch()
    }

    fn send_batch(&mut self) -> bool {
        let full = std::mem::replace(&mut self.batch, self.bodies.batch());
        (self.send)(full)
    }

    /// Hands on the last batch, if it holds anything; false if `send` refused it.
    pub fn finish(self) -> bool {
        let Batches {
            batch, mut send, ..
        } = self;
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
        // Bytes that do not compress, so that each sealed chunk is about 700 KB and two fit in a batch.
        let chunks: Vec<_> = (1..=7)
            .map(|n| {
                let data = crate::project::chunker::tests::noise(700_000, n);
                (ChunkId::of(&data), seal(&data))
            })
            .collect();
        let mut sent: Vec<Batch> = Vec::new();
        let bodies = Bodies::default();
        let mut batches = Batches::new(
            |b| {
                sent.push(b);
                true
            },
            &bodies,
        );
        for (id, sealed) in &chunks {
            assert!(batches.push(*id, 1, sealed));
        }
        assert!(batches.finish());
        let ids: Vec<ChunkId> = sent.iter().flat_map(|b| b.ids().to_vec()).collect();
        assert_eq!(ids, chunks.iter().map(|c| c.0).collect::<Vec<_>>());
        assert!(sent.len() > 1, "{} batches", sent.len());
        let (last, full) = sent.split_last().unwrap();
        assert!(!last.is_empty());
        // Each of the others went when the next chunk would not fit, so no batch passes the budget.
        let frame = FRAME_HEADER + chunks[0].1.len();
        assert!(
            full.iter()
                .all(|b| b.body_len() + frame > BATCH_BYTES && b.body_len() <= BATCH_BYTES),
            "{:?}",
            sent.iter().map(Batch::body_len).collect::<Vec<_>>()
        );
        // A chunk larger than a batch's budget goes alone.
        let huge = crate::project::chunker::tests::noise(BATCH_BYTES + 10, 99);
        let (huge_id, huge_sealed) = (ChunkId::of(&huge), seal(&huge));
        let mut alone: Vec<Batch> = Vec::new();
        let mut batches = Batches::new(
            |b| {
                alone.push(b);
                true
            },
            &bodies,
        );
        assert!(batches.push(chunks[0].0, 1, &chunks[0].1));
        assert!(batches.push(huge_id, 1, &huge_sealed));
        assert!(batches.finish());
        let alone: Vec<Vec<ChunkId>> = alone.iter().map(|b| b.ids().to_vec()).collect();
        assert_eq!(alone, vec![vec![chunks[0].0], vec![huge_id]]);
        // A receiver that is gone stops the filling.
        let mut refused = Batches::new(|_| false, &bodies);
        assert!(!(0..7).all(|n| refused.push(chunks[n].0, 1, &chunks[n].1)));
        assert!(
            Batches::new(|_| false, &bodies).finish(),
            "nothing to hand on"
        );
    }

    #[test]
    fn a_body_sent_comes_back_for_a_later_batch_and_a_few_are_kept() {
        let bodies = Bodies::default();
        let (id, sealed) = chunk(1, 1000);
        let mut batch = bodies.batch();
        batch.push(id, 1000, &sealed);
        let (body, _) = batch.into_signed_body();
        let at = body.as_ptr();
        let lent = bodies.lend(body);
        assert_eq!(lent.as_ref().len(), FRAME_HEADER + sealed.len());
        assert!(
            bodies.0.lock().unwrap().is_empty(),
            "none is back while it is out"
        );
        drop(lent);
        let again = bodies.batch();
        assert!(
            again.is_empty() && again.body_len() == 0,
            "it comes back empty"
        );
        let body = again.into_body();
        assert_eq!(body.as_ptr(), at, "the same memory");
        let lent: Vec<_> = (0..BODIES_KEPT + 3)
            .map(|_| bodies.lend(bodies.batch().into_body()))
            .collect();
        drop(lent);
        assert_eq!(bodies.0.lock().unwrap().len(), BODIES_KEPT);
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
