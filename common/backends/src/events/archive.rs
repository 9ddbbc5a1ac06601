//! A finished job's event log, kept in the object store for as long as its record, so Redis holds only the live
//! part.
//!
//! When a job ends, its worker copies the complete log (every event, `seq` 1 to the `end` event) to
//! `logs/<user>/<job>.jsonl.zst`, one JSON event per line, before it acks the job; then it shortens the life of the
//! log in Redis to `events.live_retention` (an hour by default) from the usual `events.retention`. A gateway serves a
//! job's events from Redis while they are there and from the stored copy after that; the `seq` numbers are the
//! same, so a follower's `Last-Event-ID` works across the switch. A log that cannot be stored stays in Redis for the
//! full retention: nothing is lost, Redis merely holds it longer.

use std::io::Write;
use std::time::Duration;

use futures::SinkExt;
use rai_common::event::Event;
use rai_common::job::JobId;
use rai_common::objects::log_key;

use super::EventBus;
use crate::errors::{ArchiveError, EventError, StoreError};
use crate::keys;
use crate::store::ObjectStore;

/// Events read from Redis and compressed at a time. An event holds at most one output batch (64 KiB and a line), so a
/// page is a few MiB at most, whatever the log's size: archiving a log at the 16 MiB output cap must not cost the
/// worker several copies of it at once (issue 25 measured 158 MiB peak from that).
const PAGE_EVENTS: usize = 32;

/// Copies `job`'s complete log to the store, then lets Redis keep it only `keep_live` longer. Returns how many
/// events were archived. The log streams from Redis through zstd into the store a page at a time.
pub async fn archive_log(
    bus: &EventBus,
    store: &dyn ObjectStore,
    user: &str,
    job: &JobId,
    keep_live: Duration,
) -> Result<usize, ArchiveError> {
    // Compressed pages travel to the store through a small channel; an error sent down it (Redis failed, or the log
    // has no end yet) fails the upload, so a log cut short is never stored as if whole.
    let (mut tx, rx) = futures::channel::mpsc::channel::<std::io::Result<bytes::Bytes>>(2);
    let produce = async move {
        let result = compress_pages(bus, job, &mut tx).await;
        if let Err(e) = &result {
            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
        }
        result
    };
    let reader = tokio_util::io::StreamReader::new(rx);
    let key = log_key(user, job);
    let (produced, put) = tokio::join!(produce, store.put(&key, Box::pin(reader)));
    // Redis's error first (it also failed the upload); then the store's, which stops the pages (`None`).
    let events = produced?;
    put?;
    let events = events.expect("the store read the whole log, since it stored it");
    bus.keep_log_for(job, keep_live).await?;
    Ok(events)
}

/// Reads `job`'s log page by page and sends it zstd-compressed, one JSON event per line; returns how many events, or
/// `None` when the store stopped reading (its upload failed, and says why).
async fn compress_pages(
    bus: &EventBus,
    job: &JobId,
    tx: &mut futures::channel::mpsc::Sender<std::io::Result<bytes::Bytes>>,
) -> Result<Option<usize>, ArchiveError> {
    let mut z = zstd::Encoder::new(Vec::new(), 3).expect("zstd accepts level 3");
    let (mut after, mut count, mut ended) = (0u64, 0usize, false);
    loop {
        let page = bus.history(job, after, PAGE_EVENTS).await?;
        let Some(last) = page.last() else { break };
        (after, ended) = (last.seq, last.is_end());
        count += page.len();
        for e in &page {
            serde_json::to_writer(&mut z, e).expect("an event always serializes");
            z.write_all(b"\n").expect("writing to memory cannot fail");
        }
        let out = std::mem::take(z.get_mut());
        if !out.is_empty() && tx.send(Ok(out.into())).await.is_err() {
            return Ok(None);
        }
        if page.len() < PAGE_EVENTS || ended {
            break;
        }
    }
    if !ended {
        return Err(ArchiveError::NotFinished { last: after });
    }
    let out = z.finish().expect("writing to memory cannot fail");
    Ok(tx.send(Ok(out.into())).await.ok().map(|_| count))
}

/// The stored log of `job` from the event after `after`, or `None` when none is stored.
pub async fn read_archived(
    store: &dyn ObjectStore,
    user: &str,
    job: &JobId,
    after: u64,
) -> Result<Option<Vec<Event>>, ArchiveError> {
    let key = log_key(user, job);
    let packed = match store.get_bytes(&key).await {
        Ok(b) => b,
        Err(StoreError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let damaged = |reason: String| ArchiveError::Damaged {
        key: key.clone(),
        reason,
    };
    let lines = zstd::decode_all(packed.as_slice()).map_err(|e| damaged(e.to_string()))?;
    let mut events = Vec::new();
    for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let event: Event = serde_json::from_slice(line).map_err(|e| damaged(e.to_string()))?;
        if event.seq > after {
            events.push(event);
        }
    }
    Ok(Some(events))
}

impl EventBus {
    /// Whether Redis still holds `job`'s log.
    pub async fn log_is_live(&self, job: &JobId) -> Result<bool, EventError> {
        redis::cmd("EXISTS")
            .arg(keys::event_seq(job))
            .query_async::<u64>(&mut self.connection())
            .await
            .map(|n| n > 0)
            .map_err(|e| self.error(e))
    }

    /// Lets Redis keep `job`'s log (its stream and counter) for `ttl` from now.
    pub async fn keep_log_for(&self, job: &JobId, ttl: Duration) -> Result<(), EventError> {
        let secs = ttl.as_secs().max(1) as i64;
        let mut pipe = redis::pipe();
        pipe.expire(keys::event_seq(job), secs)
            .ignore()
            .expire(keys::event_log(job), secs)
            .ignore();
        pipe.query_async::<()>(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }
}

/// How much memory Redis uses, and the job logs that take the most of it (`raid doctor`, `/metrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryReport {
    /// `used_memory` of `INFO memory`.
    pub used_bytes: u64,
    /// `maxmemory`; 0 when none is set.
    pub max_bytes: u64,
    /// Job logs still in Redis.
    pub live_logs: u64,
    /// The largest of them, largest first: job and bytes (`MEMORY USAGE`).
    pub largest_logs: Vec<(String, u64)>,
}

/// The most job logs one report measures.
const MOST_LOGS_MEASURED: usize = 20_000;

impl EventBus {
    /// Redis's memory use and the `top` largest job logs in it.
    pub async fn memory_report(&self, top: usize) -> Result<MemoryReport, EventError> {
        let mut conn = self.connection();
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let mut report = MemoryReport {
            used_bytes: field("used_memory"),
            max_bytes: field("maxmemory"),
            ..MemoryReport::default()
        };
        let mut cursor: u64 = 0;
        let mut sizes = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("rai:job:*:log")
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.error(e))?;
            if !batch.is_empty() && sizes.len() < MOST_LOGS_MEASURED {
                let mut pipe = redis::pipe();
                for key in &batch {
                    pipe.cmd("MEMORY").arg("USAGE").arg(key);
                }
                let bytes: Vec<Option<u64>> = pipe
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| self.error(e))?;
                for (key, b) in batch.iter().zip(bytes) {
                    let job = key
                        .trim_start_matches("rai:job:")
                        .trim_end_matches(":log")
                        .to_string();
                    sizes.push((job, b.unwrap_or(0)));
                }
            }
            report.live_logs += batch.len() as u64;
            if next == 0 {
                break;
            }
            cursor = next;
        }
        sizes.sort_by_key(|s| std::cmp::Reverse(s.1));
        sizes.truncate(top);
        report.largest_logs = sizes;
        Ok(report)
    }
}
