//! Publishing and following job events over Redis.

use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use redis::Script;
use redis::aio::ConnectionManager;
use redis::streams::StreamRangeReply;
use tokio::sync::mpsc;

use crate::errors::EventError;
use crate::keys;
use crate::redis_link::{RedisTarget, is_transient, manager};
use rai_common::event::{Event, EventBody, unsequenced_json};
use rai_common::job::JobId;

/// Appends events to a job's log and publishes them, numbering them from the job's counter, but only if the counter
/// is where the publisher last left it. That check makes a retry after a lost reply safe: if the first attempt went
/// through, the retry sees the counter already moved by exactly this batch and reports success without publishing
/// twice.
const PUBLISH: &str = r#"
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur ~= tonumber(ARGV[4]) then return {0, cur} end
local n = cur
for i = 5, #ARGV do
  n = redis.call('INCR', KEYS[1])
  local e = '{"seq":' .. n .. ',' .. string.sub(ARGV[i], 2)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '0-' .. n, 'e', e)
  redis.call('PUBLISH', ARGV[1], e)
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return {1, n}
"#;

static PUBLISH_SCRIPT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(PUBLISH));

/// The most events a job's history keeps (the worker's log cap bounds a job's output well below this).
const LOG_MAX_EVENTS: u64 = 1_000_000;
/// How many history events one read fetches: up to 128 output batches of 64 KiB, 8 MiB (2,000 could be 128 MiB for
/// a job at the log cap).
const REPLAY_PAGE: usize = 128;

/// How long a publish keeps retrying through a dropped connection or a restarting Redis before the job is handed
/// back: long enough for a Redis restart with its data loaded.
const PUBLISH_RETRY_FOR: Duration = Duration::from_secs(30);

/// The job event bus on one Redis.
#[derive(Clone)]
pub struct EventBus {
    target: RedisTarget,
    endpoint: String,
    conn: ConnectionManager,
    retention: Duration,
}

/// How a follower behaves when Redis goes away.
#[derive(Debug, Clone, Copy)]
pub struct FollowOptions {
    /// After this long without a working connection, the stream yields [`EventError::Unreachable`] and ends.
    pub give_up_after: Duration,
    /// With no live message for this long, the follower re-reads the history in case a message was missed.
    pub quiet_check: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            give_up_after: Duration::from_secs(60),
            quiet_check: Duration::from_secs(2),
        }
    }
}

impl EventBus {
    /// Connects to the Redis at `url`; histories expire `retention` after a job's last event.
    pub async fn connect(
        target: impl Into<RedisTarget>,
        retention: Duration,
    ) -> Result<EventBus, EventError> {
        let target = target.into();
        let endpoint = target.endpoint();
        let conn = manager(&target, false)
            .await
            .map_err(|source| EventError::Unreachable {
                endpoint: endpoint.clone(),
                source,
            })?;
        Ok(EventBus {
            target,
            endpoint,
            conn,
            retention,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The Redis this bus talks to.
    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    pub(crate) fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub(crate) fn error(&self, e: redis::RedisError) -> EventError {
        if is_transient(&e) {
            EventError::Unreachable {
                endpoint: self.endpoint.clone(),
                source: e,
            }
        } else {
            EventError::Backend {
                endpoint: self.endpoint.clone(),
                source: e,
            }
        }
    }

    pub(crate) fn retention(&self) -> Duration {
        self.retention
    }

    /// A publisher for `job`, continuing its numbering (a rerun job keeps counting where the last run stopped).
    pub async fn publisher(&self, job: JobId) -> Result<JobPublisher, EventError> {
        let last: Option<u64> = redis::cmd("GET")
            .arg(keys::event_seq(&job))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.error(e))?;
        Ok(JobPublisher {
            bus: self.clone(),
            job,
            last_seq: last.unwrap_or(0),
        })
    }

    /// Reads a job's history: events with `seq > after`, at most `max`.
    pub async fn history(
        &self,
        job: &JobId,
        after: u64,
        max: usize,
    ) -> Result<Vec<Event>, EventError> {
        read_history(&mut self.conn.clone(), job, after, max)
            .await
            .map_err(|e| self.error(e))
    }

    /// Follows a job from the event after `after_seq` (0: from the start) until its `end` event.
    pub fn follow(&self, job: JobId, after_seq: u64, opts: FollowOptions) -> EventStream {
        let (tx, rx) = mpsc::channel(64);
        let bus = self.clone();
        let task = tokio::spawn(async move { bus.follow_task(job, after_seq, opts, tx).await });
        EventStream { rx, task }
    }

    async fn follow_task(
        self,
        job: JobId,
        after_seq: u64,
        opts: FollowOptions,
        tx: mpsc::Sender<Result<Event, EventError>>,
    ) {
        let mut last = after_seq;
        let channel = keys::events_channel(&job);
        let mut down_since: Option<tokio::time::Instant> = None;
        let mut delays = crate::retry::forever();
        loop {
            // Subscribe first, then replay: nothing published in between can fall through the crack.
            let subscribed = async {
                let client = self.target.client()?;
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&channel).await?;
                Ok::<_, redis::RedisError>(pubsub)
            }
            .await;
            let mut pubsub = match subscribed {
                Ok(p) => p,
                Err(e) => {
                    let since = *down_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= opts.give_up_after {
                        let _ = tx.send(Err(self.error_after(e, opts.give_up_after))).await;
                        return;
                    }
                    tokio::time::sleep(delays.next().unwrap_or(crate::retry::LONGEST)).await;
                    continue;
                }
            };
            match self.catch_up(&job, &mut last, &tx).await {
                Ok(true) | Err(()) => return,
                Ok(false) => {}
            }
            down_since = None;
            delays = crate::retry::forever();
            let mut messages = pubsub.on_message();
            loop {
                match tokio::time::timeout(opts.quiet_check, messages.next()).await {
                    Ok(Some(msg)) => {
                        let Ok(payload) = msg.get_payload::<String>() else {
                            continue;
                        };
                        let Ok(event) = serde_json::from_str::<Event>(&payload) else {
                            continue;
                        };
                        if event.seq <= last {
                            continue;
                        }
                        if event.seq == last + 1 {
                            last = event.seq;
                            let end = event.is_end();
                            if tx.send(Ok(event)).await.is_err() || end {
                                return;
                            }
                        } else {
                            // A gap: some live messages were missed. The history has them, in order.
                            match self.catch_up(&job, &mut last, &tx).await {
                                Ok(true) | Err(()) => return,
                                Ok(false) => {}
                            }
                        }
                    }
                    // The connection dropped (CLIENT KILL, a restart): subscribe again and fill the gap.
                    Ok(None) => break,
                    // Quiet: cheap insurance against a message lost between Redis and us.
                    Err(_) => match self.catch_up(&job, &mut last, &tx).await {
                        Ok(true) | Err(()) => return,
                        Ok(false) => {}
                    },
                }
                if tx.is_closed() {
                    return;
                }
            }
        }
    }

    fn error_after(&self, e: redis::RedisError, waited: Duration) -> EventError {
        tracing::warn!(endpoint = %self.endpoint, waited = ?waited, error = %e, "giving up following a job's events");
        EventError::Unreachable {
            endpoint: self.endpoint.clone(),
            source: e,
        }
    }

    /// Sends every history event after `last`; `Ok(true)` when the end was sent, `Err(())` when the receiver is
    /// gone. Read errors are left to the caller's reconnect loop (returns `Ok(false)`).
    async fn catch_up(
        &self,
        job: &JobId,
        last: &mut u64,
        tx: &mpsc::Sender<Result<Event, EventError>>,
    ) -> Result<bool, ()> {
        match replay(&mut self.conn.clone(), job, last, tx).await {
            Ok(Replayed::Ended) => Ok(true),
            Ok(Replayed::ReceiverGone) => Err(()),
            Ok(Replayed::UpToDate) | Err(_) => Ok(false),
        }
    }
}

/// How a replay of the history ended.
pub(super) enum Replayed {
    /// The `end` event was sent.
    Ended,
    /// Everything in the history was sent; the job goes on.
    UpToDate,
    /// The follower went away.
    ReceiverGone,
}

/// Sends every history event after `last` to `tx`, advancing `last`.
pub(super) async fn replay(
    conn: &mut ConnectionManager,
    job: &JobId,
    last: &mut u64,
    tx: &mpsc::Sender<Result<Event, EventError>>,
) -> Result<Replayed, redis::RedisError> {
    loop {
        let page = read_history(conn, job, *last, REPLAY_PAGE).await?;
        let full = page.len() == REPLAY_PAGE;
        for event in page {
            if event.seq <= *last {
                continue;
            }
            *last = event.seq;
            let end = event.is_end();
            if tx.send(Ok(event)).await.is_err() {
                return Ok(Replayed::ReceiverGone);
            }
            if end {
                return Ok(Replayed::Ended);
            }
        }
        if !full {
            return Ok(Replayed::UpToDate);
        }
    }
}

async fn read_history(
    conn: &mut ConnectionManager,
    job: &JobId,
    after: u64,
    max: usize,
) -> Result<Vec<Event>, redis::RedisError> {
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(keys::event_log(job))
        .arg(format!("0-{}", after + 1))
        .arg("+")
        .arg("COUNT")
        .arg(max)
        .query_async(conn)
        .await?;
    // Each entry holds one event, in the field `e` (see PUBLISH).
    Ok(reply
        .ids
        .iter()
        .filter_map(|entry| entry.get::<Vec<u8>>("e"))
        .filter_map(|json| serde_json::from_slice::<Event>(&json).ok())
        .collect())
}

/// Publishes one job's events, keeping their numbering gap-free.
pub struct JobPublisher {
    bus: EventBus,
    job: JobId,
    last_seq: u64,
}

impl JobPublisher {
    /// The `seq` of the last event published.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Publishes a batch in one round trip, retrying through dropped connections. Fails with
    /// [`EventError::Conflict`] if someone else published for this job meanwhile (another worker took it over).
    pub async fn publish(&mut self, batch: &[EventBody]) -> Result<u64, EventError> {
        if batch.is_empty() {
            return Ok(self.last_seq);
        }
        let ts = Utc::now();
        let mut script = PUBLISH_SCRIPT.prepare_invoke();
        script
            .key(keys::event_seq(&self.job))
            .key(keys::event_log(&self.job))
            .arg(keys::events_channel(&self.job))
            .arg(self.bus.retention().as_secs().max(1))
            .arg(LOG_MAX_EVENTS)
            .arg(self.last_seq);
        for body in batch {
            script.arg(unsequenced_json(ts, body));
        }
        let expected_after = self.last_seq + batch.len() as u64;
        let mut delays = crate::retry::for_up_to(PUBLISH_RETRY_FOR);
        let mut attempts = 0;
        loop {
            attempts += 1;
            match script
                .invoke_async::<(i64, u64)>(&mut self.bus.connection())
                .await
            {
                Ok((1, n)) => {
                    self.last_seq = n;
                    return Ok(n);
                }
                // An earlier attempt whose reply was lost did go through.
                Ok((_, cur)) if attempts > 1 && cur == expected_after => {
                    self.last_seq = cur;
                    return Ok(cur);
                }
                Ok((_, cur)) => {
                    return Err(EventError::Conflict {
                        job: self.job.to_string(),
                        expected: self.last_seq,
                        found: cur,
                    });
                }
                Err(e) if is_transient(&e) => match delays.next() {
                    Some(delay) => tokio::time::sleep(delay).await,
                    None => return Err(self.bus.error(e)),
                },
                Err(e) => return Err(self.bus.error(e)),
            }
        }
    }

    /// Publishes one event.
    pub async fn send(&mut self, body: EventBody) -> Result<u64, EventError> {
        self.publish(std::slice::from_ref(&body)).await
    }
}

/// A job's events in order, each exactly once, ending after the `end` event.
pub struct EventStream {
    pub(super) rx: mpsc::Receiver<Result<Event, EventError>>,
    pub(super) task: tokio::task::JoinHandle<()>,
}

impl EventStream {
    /// The next event; `None` after the end (or when the follower gave up, after yielding the error).
    pub async fn next(&mut self) -> Option<Result<Event, EventError>> {
        self.rx.recv().await
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
