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

use rai_common::event::Event;
use rai_common::job::JobId;
use rai_common::objects::log_key;

use super::EventBus;
use crate::errors::{ArchiveError, EventError, StoreError};
use crate::keys;
use crate::store::ObjectStore;

/// The most events one archived log holds (the worker's output cap keeps a job far below this).
const MOST_EVENTS: usize = 2_000_000;

/// Copies `job`'s complete log to the store, then lets Redis keep it only `keep_live` longer. Returns how many
/// events were archived.
pub async fn archive_log(
    bus: &EventBus,
    store: &dyn ObjectStore,
    user: &str,
    job: &JobId,
    keep_live: Duration,
) -> Result<usize, ArchiveError> {
    let events = bus.history(job, 0, MOST_EVENTS).await?;
    if !events.last().is_some_and(Event::is_end) {
        return Err(ArchiveError::NotFinished {
            last: events.last().map_or(0, |e| e.seq),
        });
    }
    let mut lines = Vec::with_capacity(events.len() * 64);
    for e in &events {
        serde_json::to_writer(&mut lines, e).expect("an event always serializes");
        lines.push(b'\n');
    }
    let mut z =
        zstd::Encoder::new(Vec::with_capacity(lines.len() / 4), 3).expect("zstd accepts level 3");
    z.write_all(&lines).expect("writing to memory cannot fail");
    let packed = z.finish().expect("writing to memory cannot fail");
    store.put_bytes(&log_key(user, job), packed).await?;
    bus.keep_log_for(job, keep_live).await?;
    Ok(events.len())
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
