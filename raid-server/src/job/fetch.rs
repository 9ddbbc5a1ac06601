//! Step 3 of a job's life: the upload fetched from the store, checked against the signed job, and unpacked into
//! the job directory.
//!
//! The upload streams from the store through a hashing reader into the unpacker (two threads: one decompresses,
//! one writes): nothing is held in memory or written to a temporary file. The signed job carries the upload's size
//! and SHA-256, so an upload swapped after signing (its owner may overwrite it) is refused, and the read stops at
//! the signed size, so a bigger object is never read to its end.

use std::path::Path;

use std::future::Future;

use rai_backends::store::ObjectReader;
use rai_common::JobRequest;
use rai_common::archive::UnpackLimits;
use rai_common::digest::Tally;
use rai_common::objects::{manifest_key, upload_key};
use sha2::{Digest, Sha256};

use crate::context::WorkerContext;
use crate::errors::JobError;

/// Most entries an upload may unpack to.
const MAX_ENTRIES: u64 = 200_000;

/// Streams the upload from the store into `src`, checking its size and hash against the signed request.
pub(super) async fn fetch(
    ctx: &WorkerContext,
    request: &JobRequest,
    regrade_of: Option<&rai_common::JobId>,
    src: &Path,
) -> Result<(), JobError> {
    // A job may only run its own upload: a signed job naming another student's upload is refused. A regrade runs
    // the upload of the submission it regrades (the gateway's attestation names it, the student's signature covers
    // the upload's key and hash).
    let own = regrade_of.unwrap_or(&request.id);
    if request.input.key != upload_key(&request.user, own)
        && request.input.key != manifest_key(&request.user, own)
    {
        return Err(JobError::ForeignUpload {
            key: request.input.key.clone(),
        });
    }
    let timeout = ctx.config.raid.fetch_timeout.as_duration();
    let cap = ctx.config.raid.limits.upload_bytes.0;
    if request.input.size > cap {
        return Err(JobError::UploadTooLarge {
            size: request.input.size,
            cap,
        });
    }
    if rai_common::objects::is_manifest_key(&request.input.key) {
        return tokio::time::timeout(timeout, from_manifest(ctx, request, src))
            .await
            .map_err(|_| JobError::FetchTimedOut(timeout))?;
    }
    let fetching = std::time::Instant::now();
    let reader = tokio::time::timeout(timeout, ctx.store.get(&request.input.key))
        .await
        .map_err(|_| JobError::FetchTimedOut(timeout))?
        .map_err(JobError::Fetch)?;
    let (hash_tx, hash_rx) = tokio::sync::oneshot::channel();
    let hashing = HashingReader {
        inner: reader,
        tally: Some(Tally::new()),
        limit: request.input.size,
        done: Some(hash_tx),
        // The unpacker runs on a blocking thread that a timeout cannot stop: its reads fail past the deadline.
        deadline: Box::pin(tokio::time::sleep(timeout)),
    };
    let mut bridge = tokio_util::io::SyncIoBridge::new(hashing);
    let dest = src.to_path_buf();
    let limits = UnpackLimits {
        // Source code compresses about 4:1; a bomb that claims more stops here.
        max_bytes: cap.saturating_mul(4),
        max_entries: MAX_ENTRIES,
    };
    let started = std::time::Instant::now();
    let unpacked = tokio::task::spawn_blocking(move || {
        let result = rai_common::archive::unpack(&mut bridge, &dest, limits);
        // Read to the end so the hash covers every byte even if tar stopped early.
        let _ = std::io::copy(&mut bridge, &mut std::io::sink());
        result
    })
    .await
    .map_err(|source| JobError::Task {
        what: "unpacker",
        source,
    })?;
    if started.elapsed() >= timeout {
        return Err(JobError::FetchTimedOut(timeout));
    }
    // The hash is sent at the end of the object; no hash means the read stopped past the signed size.
    let (size, hash) = hash_rx
        .await
        .map_err(|_| JobError::UploadLongerThanSigned {
            signed: request.input.size,
        })?;
    unpacked.map_err(JobError::Unpack)?;
    if size != request.input.size || hash != request.input.sha256 {
        return Err(JobError::UploadMismatch);
    }
    tracing::info!(
        job = %request.id,
        bytes = size,
        ms = fetching.elapsed().as_millis() as u64,
        "made /src from the archive"
    );
    Ok(())
}

/// A chunked upload (issue 30): the manifest the signed job names, checked against its size and SHA-256 (the
/// student's signature covers every chunk id through them) and against this worker's limits, made into `src`.
async fn from_manifest(
    ctx: &WorkerContext,
    request: &JobRequest,
    src: &Path,
) -> Result<(), JobError> {
    let started = std::time::Instant::now();
    let key = &request.input.key;
    let bytes = ctx
        .store
        .get_bytes_up_to(key, request.input.size as usize)
        .await
        .map_err(JobError::Fetch)?;
    if bytes.len() as u64 != request.input.size
        || hex::encode(Sha256::digest(&bytes)) != request.input.sha256
    {
        return Err(JobError::UploadMismatch);
    }
    let limits = rai_common::project::ManifestLimits {
        max_entries: MAX_ENTRIES as usize,
        max_bytes: ctx.config.raid.limits.upload_bytes.0.saturating_mul(4),
        ..Default::default()
    };
    let manifest =
        rai_common::project::Manifest::from_json(&bytes, &limits).map_err(JobError::Manifest)?;
    let done = super::materialise::materialise(
        ctx.store.as_ref(),
        &ctx.cache,
        &request.user,
        &manifest,
        src,
    )
    .await?;
    tracing::info!(
        job = %request.id,
        fetched = done.fetched,
        fetched_bytes = done.fetched_bytes,
        files_cached = done.files_cached,
        ms = started.elapsed().as_millis() as u64,
        "made /src from the manifest"
    );
    Ok(())
}

/// Makes the host folder mounted as `/build`.
pub(super) fn make_build_dir(build: &Path) -> Result<(), JobError> {
    std::fs::create_dir_all(build).map_err(JobError::JobDir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Writable by the container's non-root user; the job directory above it is the worker's alone.
        std::fs::set_permissions(build, std::fs::Permissions::from_mode(0o777))
            .map_err(JobError::JobDir)?;
    }
    Ok(())
}

/// Hashes what it reads, and stops with an error past the signed size, so an upload swapped for a bigger object
/// (its owner may overwrite it) is never read to its end.
struct HashingReader {
    inner: ObjectReader,
    /// Taken when the read ends, its size and digest sent on `done`.
    tally: Option<Tally>,
    limit: u64,
    done: Option<tokio::sync::oneshot::Sender<(u64, String)>>,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl tokio::io::AsyncRead for HashingReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.done = None;
            return std::task::Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "fetching the upload took too long",
            )));
        }
        let poll = this.inner.as_mut().poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = &poll {
            let new = &buf.filled()[before..];
            if new.is_empty() {
                if let (Some(tally), Some(done)) = (this.tally.take(), this.done.take()) {
                    let _ = done.send(tally.finish());
                }
            } else if let Some(tally) = this.tally.as_mut() {
                tally.update(new);
                if tally.size() > this.limit {
                    // Dropping the sender tells fetch() why the read ended.
                    this.done = None;
                    return std::task::Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the upload is larger than the signed job says",
                    )));
                }
            }
        }
        poll
    }
}
