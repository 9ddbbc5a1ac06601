//! Object storage: uploads, outputs and job records.
//!
//! [`ObjectStore`] streams objects in and out without holding them in memory, so a 1 GiB project upload costs a
//! few MiB of RAM. [`S3Store`] (multipart above 8 MiB, presigned download links) serves a cluster; [`FsStore`] (a
//! directory, writes made atomic by rename) serves one machine or a shared mount. One contract suite tests both.
//!
//! Keys are `uploads/<user>/<job>.tar.zst`, `outputs/<user>/<job>.tar.zst` and `records/<user>/<job>.json`; they
//! are checked to be plain relative paths before any backend sees them.

mod fs;
mod s3;

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::io::AsyncRead;

pub use self::fs::FsStore;
pub use self::s3::S3Store;
use crate::errors::StoreError;

/// A stream of an object's bytes.
pub type ObjectReader = Pin<Box<dyn AsyncRead + Send>>;

/// What a store knows of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub modified: Option<DateTime<Utc>>,
}

/// What a put wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    pub size: u64,
    /// Hex SHA-256 of the bytes, computed while streaming.
    pub sha256: String,
}

/// A multipart upload whose parts a client sends straight to the store through presigned links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedUpload {
    pub upload_id: String,
    /// Every part but the last is this long.
    pub part_size: u64,
    /// One presigned PUT per part, in order (part 1 first).
    pub part_urls: Vec<String>,
}

/// The largest number of parts S3 allows in one upload.
pub const MAX_PARTS: u64 = 10_000;

/// The part size for an upload of `size` bytes: 8 MiB, larger only where 8 MiB parts would be too many.
pub fn part_size_for(size: u64) -> u64 {
    let min = 8u64 << 20;
    min.max(size.div_ceil(MAX_PARTS).next_multiple_of(1 << 20))
}

/// The refusal of a store that takes no presigned uploads (the gateway asks only stores that say they do).
fn no_presigned_uploads(store: String, key: &str) -> StoreError {
    StoreError::Backend {
        store,
        source: format!("this store takes no presigned uploads (key {key})").into(),
    }
}

/// Object storage with streaming puts and gets.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Where the store is, for messages (`s3://bucket at http://...`, `/var/lib/rai/store`).
    fn describe(&self) -> String;

    /// Stores everything `body` yields under `key`, replacing any object there. Readers never see half of it.
    async fn put(&self, key: &str, body: ObjectReader) -> Result<PutResult, StoreError>;

    /// Streams an object.
    async fn get(&self, key: &str) -> Result<ObjectReader, StoreError>;

    /// An object's size and time, or `None`.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError>;

    /// Every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError>;

    /// Deletes an object; deleting a missing one is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Marks `key` as one the store's own expiry may delete once its retention has passed: on S3 the tag
    /// [`EXPIRABLE_TAG`], which the bucket's lifecycle rules (deploy/aws) expire; an object without it, a graded
    /// submission's upload or output, is kept until the course file's `keep_submissions_until` by the gateway's sweep.
    /// The fs store has no expiry of its own (the sweep decides everything), so there it does nothing.
    async fn mark_expirable(&self, key: &str) -> Result<(), StoreError> {
        let _ = key;
        Ok(())
    }

    /// A link to download the object for `expires` (S3: a presigned URL; fs: the file's path).
    async fn download_link(&self, key: &str, expires: Duration) -> Result<String, StoreError>;

    /// Whether the store takes uploads straight from clients through presigned links (S3). Where it does not (fs),
    /// the gateway receives the body itself.
    fn presigns_uploads(&self) -> bool {
        false
    }

    /// Starts a multipart upload of exactly `size` bytes to `key` and presigns a PUT for each part, valid for
    /// `expires`.
    async fn presign_upload(
        &self,
        key: &str,
        size: u64,
        expires: Duration,
    ) -> Result<PresignedUpload, StoreError> {
        let _ = (size, expires);
        Err(no_presigned_uploads(self.describe(), key))
    }

    /// Presigns one PUT of at most `max` bytes to `key`, valid for `expires` (a chunk of a chunked upload: small, so
    /// no multipart). S3 cannot cap a presigned PUT's length without fixing it, so the link fixes nothing and the
    /// gateway checks the object's size when the upload completes, the worker its content on first use.
    async fn presign_put(&self, key: &str, expires: Duration) -> Result<String, StoreError> {
        let _ = expires;
        Err(no_presigned_uploads(self.describe(), key))
    }

    /// Finishes a presigned multipart upload from its parts' ETags; on failure the upload is aborted.
    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<(), StoreError> {
        let _ = (upload_id, parts);
        Err(no_presigned_uploads(self.describe(), key))
    }

    /// Stores bytes already in memory.
    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<PutResult, StoreError> {
        self.put(key, Box::pin(std::io::Cursor::new(bytes))).await
    }

    /// Stores several small objects already in memory (a batch of chunks), a few at a time; a store that can make
    /// them durable together does so. The caller checked their contents (a chunk against its id), so nothing is
    /// hashed again here: on a first submit that would be the whole project once more, on the gateway's CPU.
    async fn put_many(&self, objects: Vec<(String, Vec<u8>)>) -> Result<(), StoreError> {
        use futures::StreamExt;
        // Every key first: a bad one refuses the batch before anything of it is stored.
        for (key, _) in &objects {
            check_key(key)?;
        }
        futures::stream::iter(
            objects
                .into_iter()
                .map(|(key, bytes)| async move { self.put_bytes(&key, bytes).await }),
        )
        .buffered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .try_for_each(|put| put.map(drop))
    }

    /// [`Self::put_many`] for the parts of one upload that are made durable together when it completes: the objects
    /// are readable when this returns, durable only after [`Self::sync`]. A caller must not rely on them (record them
    /// as stored) before then. A store whose puts are durable when they return (S3) stores them as `put_many` does.
    /// The bytes are shared, not owned: a batch's chunks are slices of the request body, not copies of it.
    async fn put_many_unsynced(
        &self,
        objects: Vec<(String, bytes::Bytes)>,
    ) -> Result<(), StoreError> {
        let owned = objects.into_iter().map(|(k, b)| (k, b.to_vec())).collect();
        self.put_many(owned).await
    }

    /// Makes every object stored so far durable (fs: one `syncfs` for the whole store instead of an fsync per
    /// object); nothing to do where puts are durable when they return.
    async fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Reads an object of at most `max` bytes into memory; a larger one is an error, read no further than `max`.
    async fn get_bytes_up_to(&self, key: &str, max: usize) -> Result<Vec<u8>, StoreError> {
        let mut r = self.get(key).await?;
        let out = read_up_to(&mut r, max.saturating_add(1))
            .await
            .map_err(|source| StoreError::Io {
                key: key.to_string(),
                source,
            })?;
        if out.len() > max {
            return Err(StoreError::Io {
                key: key.to_string(),
                source: std::io::Error::other(format!(
                    "the object is larger than the {max} bytes allowed"
                )),
            });
        }
        Ok(out)
    }

    /// Reads a whole (small) object into memory.
    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        use tokio::io::AsyncReadExt;
        let mut r = self.get(key).await?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)
            .await
            .map_err(|source| StoreError::Io {
                key: key.to_string(),
                source,
            })?;
        Ok(out)
    }
}

/// The tag (key, value) that lets the bucket's lifecycle rules expire an object.
pub const EXPIRABLE_TAG: (&str, &str) = ("rai-retention", "default");

/// Checks that a key is a plain relative path of safe characters.
pub fn check_key(key: &str) -> Result<(), StoreError> {
    let bad = |why: &str| StoreError::BadKey {
        key: key.to_string(),
        reason: why.to_string(),
    };
    if key.is_empty() || key.len() > 1024 {
        return Err(bad("must be 1 to 1024 characters"));
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
    {
        return Err(bad("may hold only letters, digits, '.', '_', '-' and '/'"));
    }
    if key
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(bad(
            "must be a relative path without empty, '.' or '..' parts",
        ));
    }
    Ok(())
}

/// Reads up to `max` bytes from `body`, allocating as they come: a small object costs its size, not a whole part (a
/// zeroed 8 MiB buffer per put becomes resident once the allocator serves it from its heap, and a worker puts a
/// record, a log and an output per job).
pub(crate) async fn read_up_to(body: &mut ObjectReader, max: usize) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    body.take(max as u64).read_to_end(&mut buf).await?;
    Ok(buf)
}

/// Reads from `body` until `buf` is full or the stream ends; returns how much was read.
pub(crate) async fn fill(body: &mut ObjectReader, buf: &mut [u8]) -> std::io::Result<usize> {
    use tokio::io::AsyncReadExt;
    let mut filled = 0;
    while filled < buf.len() {
        let n = body.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_stay_under_the_part_limit() {
        assert_eq!(part_size_for(1), 8 << 20);
        assert_eq!(part_size_for(1 << 30), 8 << 20);
        let huge = 200u64 << 30;
        let part = part_size_for(huge);
        assert!(huge.div_ceil(part) <= MAX_PARTS, "{part}");
        assert_eq!(part % (1 << 20), 0);
    }

    #[test]
    fn keys() {
        assert!(check_key("uploads/jdoe/01jd.tar.zst").is_ok());
        for bad in ["", "/abs", "a//b", "a/../b", "./a", "a b", "a\\b", "ü"] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }
}
