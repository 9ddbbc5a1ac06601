//! The per-user facts behind a course's quotas (docs/instructor.md, "Fair share and quotas"), in Redis beside the
//! gateway's rate counts: the jobs a user has waiting or running, when they may submit next, and the GPU time their
//! finished jobs used in each day and week. The gateway reads them before it accepts a job; the worker adds a
//! job's GPU time when it ends. Nothing here is the client's to say.

use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use rai_common::job::JobId;

use super::EventBus;
use crate::errors::EventError;
use crate::keys;

/// How long the facts are kept: longer than any window and any job's life.
const KEEP: Duration = Duration::from_secs(9 * 24 * 3600);

/// The windows a GPU-time budget may be counted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The UTC day.
    Day,
    /// The ISO week (Monday to Sunday, UTC).
    Week,
}

impl Window {
    /// The window's name for `at`: `d2026-12-03`, `w2026-49`.
    pub fn id(self, at: DateTime<Utc>) -> String {
        match self {
            Window::Day => format!("d{}", at.format("%Y-%m-%d")),
            Window::Week => {
                let w = at.iso_week();
                format!("w{}-{:02}", w.year(), w.week())
            }
        }
    }

    /// When the window holding `at` ends (its budget starts again).
    pub fn end(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let midnight = at
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc();
        match self {
            Window::Day => midnight + chrono::Duration::days(1),
            Window::Week => {
                midnight
                    + chrono::Duration::days(7 - i64::from(at.weekday().num_days_from_monday()))
            }
        }
    }
}

/// How long an admitted job may go without a state before it no longer counts: an acceptance takes milliseconds.
pub const ACCEPTING: Duration = Duration::from_secs(60);

/// What [`EventBus::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// The user has this many jobs waiting to start, the cap.
    TooManyWaiting(u32),
    /// The user has this many jobs waiting or running, the cap.
    TooManyActive(u32),
}

/// Counts a user's admitted jobs by their state, drops those that ended, and admits the new one if the caps allow.
/// KEYS[1]: the user's admitted jobs (a sorted set scored by admission time, ms). ARGV: the job state key prefix,
/// max_queued, max_active, the job, now (ms), how long a job without state counts (ms), how long to keep the set (s).
const ADMIT: &str = r"
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local now = tonumber(ARGV[5])
local waiting, total = 0, 0
for i = 1, #members, 2 do
  local job, at = members[i], tonumber(members[i + 1])
  local status = redis.call('HGET', ARGV[1] .. job, 'status')
  if not status then
    if now - at < tonumber(ARGV[6]) then
      waiting = waiting + 1
      total = total + 1
    else
      redis.call('ZREM', KEYS[1], job)
    end
  elseif status == 'queued' or status == 'requeued' or status == 'uploading' then
    waiting = waiting + 1
    total = total + 1
  elseif status == 'running' then
    total = total + 1
  else
    redis.call('ZREM', KEYS[1], job)
  end
end
local max_queued, max_active = tonumber(ARGV[2]), tonumber(ARGV[3])
if max_queued > 0 and waiting >= max_queued then return {1, waiting, total} end
if max_active > 0 and total >= max_active then return {2, waiting, total} end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[7])
return {0, waiting, total}
";

impl EventBus {
    /// Starts `user`'s interval between submissions: `Some(wait)` (and nothing set) when their last submission was
    /// less than `interval` ago.
    pub async fn start_submit_interval(
        &self,
        user: &str,
        interval: Duration,
    ) -> Result<Option<Duration>, EventError> {
        let key = keys::next_submit(user);
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(interval.as_millis().max(1) as u64)
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        if set.is_some() {
            return Ok(None);
        }
        let left: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        Ok(Some(Duration::from_millis(left.max(1) as u64)))
    }

    /// Admits `job` against `user`'s caps on jobs waiting (`max_queued`) and waiting or running (`max_active`), 0
    /// meaning no cap: the count and the admission are one step in Redis, so parallel submissions cannot all read
    /// the same count before any is added (issue 26: 19 of 20 got past caps of 2). Ended jobs leave the count on the
    /// way; a job admitted less than [`ACCEPTING`] ago whose state is not written yet counts as waiting (its
    /// acceptance is under way), and after that as gone (the gateway died accepting it).
    pub async fn admit(
        &self,
        user: &str,
        job: &JobId,
        max_queued: u32,
        max_active: u32,
        now: DateTime<Utc>,
    ) -> Result<Admission, EventError> {
        let state_prefix = keys::job_state(job);
        let state_prefix = state_prefix
            .strip_suffix(&job.to_string())
            .expect("a job's state key ends with its id");
        let (verdict, waiting, total): (u8, u32, u32) = redis::Script::new(ADMIT)
            .key(keys::admitted_jobs(user))
            .arg(state_prefix)
            .arg(max_queued)
            .arg(max_active)
            .arg(job.to_string())
            .arg(now.timestamp_millis())
            .arg(ACCEPTING.as_millis() as u64)
            .arg(KEEP.as_secs())
            .invoke_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        Ok(match verdict {
            0 => Admission::Admitted,
            1 => Admission::TooManyWaiting(waiting),
            _ => Admission::TooManyActive(total),
        })
    }

    /// Takes back an admission whose job was not accepted after all (a later check refused it, or it could not be
    /// queued).
    pub async fn withdraw(&self, user: &str, job: &JobId) -> Result<(), EventError> {
        redis::cmd("ZREM")
            .arg(keys::admitted_jobs(user))
            .arg(job.to_string())
            .query_async::<()>(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }

    /// Adds a finished job's GPU time (GPU-seconds: seconds times GPUs) to `user`'s day and week of `at`.
    pub async fn add_gpu_seconds(
        &self,
        user: &str,
        at: DateTime<Utc>,
        gpu_seconds: f64,
    ) -> Result<(), EventError> {
        let mut pipe = redis::pipe();
        for window in [Window::Day, Window::Week] {
            let key = keys::gpu_seconds(user, &window.id(at));
            pipe.cmd("INCRBYFLOAT")
                .arg(&key)
                .arg(gpu_seconds)
                .ignore()
                .cmd("EXPIRE")
                .arg(&key)
                .arg(KEEP.as_secs())
                .ignore();
        }
        pipe.query_async::<()>(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }

    /// The GPU-seconds `user`'s finished jobs used in the `window` holding `at`.
    pub async fn gpu_seconds(
        &self,
        user: &str,
        window: Window,
        at: DateTime<Utc>,
    ) -> Result<f64, EventError> {
        let used: Option<String> = redis::cmd("GET")
            .arg(keys::gpu_seconds(user, &window.id(at)))
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        Ok(used.and_then(|u| u.parse().ok()).unwrap_or(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_named_and_end_at_utc_midnight() {
        let at = DateTime::parse_from_rfc3339("2026-12-03T17:20:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(Window::Day.id(at), "d2026-12-03");
        assert_eq!(Window::Week.id(at), "w2026-49");
        assert_eq!(
            Window::Day.end(at).to_rfc3339(),
            "2026-12-04T00:00:00+00:00"
        );
        // 3 December 2026 is a Thursday: the week ends on Monday the 7th.
        assert_eq!(
            Window::Week.end(at).to_rfc3339(),
            "2026-12-07T00:00:00+00:00"
        );
    }
}
