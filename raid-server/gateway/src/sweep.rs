//! The store's sweep: what the store no longer needs is deleted (issue 26).
//!
//! An S3 bucket can expire objects by lifecycle rules, but an fs store never deleted anything, and neither could
//! tell a graded submission from a test run. So a gateway sweeps the store itself, whatever its backend:
//!
//! - every minute, uploads that were declared and never submitted once they are older than
//!   `gateway.uploads.expire`: the object is deleted and its declaration forgotten, so it can be neither finished
//!   nor submitted;
//! - every `store.retention.sweep_every`, uploads (archives and chunked uploads' manifests), outputs and logs older
//!   than their `store.retention` (zero keeps them), except a graded submission's, which are kept until the course
//!   file's `keep_submissions_until` (for ever when it says nothing); then the chunks that no kept manifest of their
//!   owner names, once a day old. Job records are small and are the history: they are kept.
//!
//! Each tick also tells the owners of jobs newly in the dead letters (`super::deadletters`).
//!
//! One gateway of a course takes each store sweep's turn (a key in Redis); the expired-upload sweep is idempotent
//! and runs on every gateway. Each deletion is counted in `rai_store_swept_objects_total` and
//! `rai_store_swept_bytes_total` by kind.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rai_common::objects::{manifest_key, upload_key};

use crate::Gateway;

/// How often declared uploads are checked for expiry (or the store swept, when that is set more often).
const TICK: Duration = Duration::from_secs(60);
/// The most expired uploads one tick deletes.
const EXPIRED_PER_TICK: usize = 1000;

/// Sweeps for as long as the gateway lives.
pub(super) fn start(gateway: &Arc<Gateway>) {
    let weak = Arc::downgrade(gateway);
    let retention = &gateway.config.store.retention;
    let tick = TICK
        .min(retention.sweep_every.as_duration())
        .min(gateway.config.gateway.uploads.expire.as_duration())
        .max(Duration::from_millis(200));
    tokio::spawn(run(weak, tick));
}

async fn run(gateway: Weak<Gateway>, tick: Duration) {
    let mut last_store_sweep: Option<std::time::Instant> = None;
    loop {
        tokio::time::sleep(tick).await;
        let Some(gateway) = gateway.upgrade() else {
            return;
        };
        let now = gateway.clock.now();
        if let Err(e) = expire_uploads(&gateway, now).await {
            tracing::warn!(error = %e, "cannot expire declared uploads; trying again in a minute");
        }
        if let Err(e) = super::deadletters::tell_owners(&gateway).await {
            tracing::warn!(error = %e.message, "cannot read the dead letters; trying again in a minute");
        }
        let every = gateway.config.store.retention.sweep_every.as_duration();
        if last_store_sweep.is_none_or(|at| at.elapsed() >= every) {
            last_store_sweep = Some(std::time::Instant::now());
            match gateway
                .bus
                .take_sweep_turn(&gateway.store_scope, every)
                .await
            {
                Ok(true) => {
                    if let Err(e) = sweep_store(&gateway, now).await {
                        tracing::warn!(error = %e, "the store sweep stopped; it runs again later");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot take the store sweep's turn"),
            }
        }
    }
}

fn count(kind: &'static str, bytes: u64) {
    let labels = crate::metrics::KindLabels { kind };
    let m = crate::metrics::metrics();
    m.swept_objects.get_or_create(&labels).inc();
    m.swept_bytes.get_or_create(&labels).inc_by(bytes);
}

/// Why one pass of a sweep stopped (it runs again on its next turn).
#[derive(Debug, thiserror::Error)]
enum SweepError {
    #[error(transparent)]
    Events(#[from] rai_backends::errors::EventError),
    #[error(transparent)]
    Store(#[from] rai_backends::errors::StoreError),
    #[error("a retention does not fit in a date")]
    Span(#[from] chrono::OutOfRangeError),
}

/// Deletes the uploads declared before `now - gateway.uploads.expire` whose jobs were never submitted.
async fn expire_uploads(gateway: &Gateway, now: DateTime<Utc>) -> Result<(), SweepError> {
    let expire = chrono::Duration::from_std(gateway.config.gateway.uploads.expire.as_duration())?;
    for upload in gateway
        .bus
        .expired_uploads(&gateway.store_scope, now - expire, EXPIRED_PER_TICK)
        .await?
    {
        if gateway.bus.state(&upload.job).await?.is_some() {
            // Submitted after all (its gateway could not take it off the pending ones): keep it.
            gateway
                .bus
                .upload_submitted(&gateway.store_scope, &upload.user, &upload.job)
                .await?;
            continue;
        }
        let mut size = 0;
        // An archive, or a chunked upload's manifest (its chunks go with the chunk sweep, once nothing names them).
        for key in [
            upload_key(&upload.user, &upload.job),
            manifest_key(&upload.user, &upload.job),
        ] {
            if let Some(o) = gateway.store.head(&key).await? {
                size += o.size;
                gateway.store.delete(&key).await?;
            }
        }
        gateway
            .bus
            .forget_upload(&gateway.store_scope, &upload)
            .await?;
        count("declared", size);
        tracing::info!(job = %upload.job, user = %upload.user, "deleted an upload that was never submitted");
    }
    Ok(())
}

/// The job id in a store key (`kind/user/<job>.ext`).
fn job_of(key: &str) -> Option<&str> {
    key.rsplit('/').next()?.split('.').next()
}

/// Deletes uploads, outputs and logs past their retention at `now`, keeping graded submissions' as the course says.
async fn sweep_store(gateway: &Gateway, now: DateTime<Utc>) -> Result<(), SweepError> {
    let retention = &gateway.config.store.retention;
    let kinds = [
        ("uploads", "uploads/", retention.uploads),
        ("uploads", "manifests/", retention.uploads),
        ("outputs", "outputs/", retention.outputs),
        ("logs", "logs/", retention.logs),
    ];
    if kinds.iter().all(|(_, _, keep)| keep.0.is_zero()) {
        return Ok(());
    }
    let keep_until = gateway
        .course
        .as_ref()
        .and_then(|c| c.current().keep_submissions_until);
    let graded: HashSet<String> = if keep_until.is_none_or(|until| now < until) {
        gateway
            .store
            .list("submissions/")
            .await?
            .iter()
            .filter_map(|o| job_of(&o.key).map(str::to_string))
            .collect()
    } else {
        HashSet::new()
    };
    let mut deleted = 0usize;
    for (kind, prefix, keep) in kinds {
        if keep.0.is_zero() {
            continue;
        }
        let cutoff = now - chrono::Duration::from_std(keep.0)?;
        for object in gateway.store.list(prefix).await? {
            let old = object.modified.is_some_and(|m| m < cutoff);
            if !old || job_of(&object.key).is_some_and(|job| graded.contains(job)) {
                continue;
            }
            gateway.store.delete(&object.key).await?;
            count(kind, object.size);
            deleted += 1;
        }
    }
    deleted += sweep_chunks(gateway, now).await?;
    tracing::info!(deleted, "swept the store");
    Ok(())
}

/// How long a chunk nothing names is kept: a submit in progress has sent its chunks before its manifest is kept.
const CHUNK_GRACE: chrono::Duration = chrono::Duration::days(1);

/// Deletes the chunks that no kept manifest of their owner names and that are older than [`CHUNK_GRACE`], and
/// forgets them in the owner's set (so a later submit sends them again). Returns how many were deleted.
async fn sweep_chunks(gateway: &Gateway, now: DateTime<Utc>) -> Result<usize, SweepError> {
    let chunks = gateway.store.list("chunks/").await?;
    if chunks.is_empty() {
        return Ok(0);
    }
    let limits = super::projects::limits(gateway);
    let mut named: HashSet<(String, rai_common::project::ChunkId)> = HashSet::new();
    for object in gateway.store.list("manifests/").await? {
        let Some(user) = object.key.split('/').nth(1) else {
            continue;
        };
        let bytes = gateway.store.get_bytes(&object.key).await?;
        // A manifest the gateway kept was checked when it was declared; one that no longer reads names nothing.
        if let Ok(m) = rai_common::project::Manifest::from_json(&bytes, &limits) {
            named.extend(m.chunk_ids().into_iter().map(|id| (user.to_string(), id)));
        }
    }
    let mut deleted = 0;
    for object in chunks {
        let mut parts = object.key.split('/').skip(1);
        let (Some(user), Some(name)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(Ok(id)) = name.strip_suffix(".zst").map(str::parse) else {
            continue;
        };
        let recent = object.modified.is_none_or(|m| m > now - CHUNK_GRACE);
        if recent || named.contains(&(user.to_string(), id)) {
            continue;
        }
        gateway.bus.forget_chunk(user, &id).await?;
        gateway.store.delete(&object.key).await?;
        count("chunks", object.size);
        deleted += 1;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keys_job_is_its_file_name_without_extensions() {
        assert_eq!(
            job_of("outputs/ana/01J00000000000000000000000.tar.zst"),
            Some("01J00000000000000000000000")
        );
        assert_eq!(
            job_of("submissions/m1/team-a/01J00000000000000000000000.json"),
            Some("01J00000000000000000000000")
        );
    }
}
