//! The per-user facts behind a course's quotas (docs/instructor.md, "Fair share and quotas"), in Redis beside the
//! gateway's rate counts: the jobs a user has waiting or running, when they may submit next, and the GPU time their
//! finished jobs used in each day and week. The gateway reads them before it accepts a job; the worker adds a
//! job's GPU time when it ends. Nothing here is the client's to say.

use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use rai_common::event::JobStatus;
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

    /// Remembers that `user` has `job` waiting or running.
    pub async fn add_active(&self, user: &str, job: &JobId) -> Result<(), EventError> {
        let key = keys::active_jobs(user);
        redis::pipe()
            .cmd("SADD")
            .arg(&key)
            .arg(job.to_string())
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(KEEP.as_secs())
            .ignore()
            .query_async::<()>(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }

    /// `user`'s jobs that have not ended, each with its status (`Queued`, `Requeued`, `Running`); ended and
    /// forgotten ones are dropped from the set on the way.
    pub async fn active_jobs(&self, user: &str) -> Result<Vec<(JobId, JobStatus)>, EventError> {
        let key = keys::active_jobs(user);
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&key)
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        let mut active = Vec::new();
        for member in members {
            let Ok(job) = member.parse::<JobId>() else {
                continue;
            };
            let status = self.state(&job).await?.and_then(|s| s.status);
            match status {
                Some(s) if !s.is_final() => active.push((job, s)),
                _ => {
                    redis::cmd("SREM")
                        .arg(&key)
                        .arg(&member)
                        .query_async::<()>(&mut self.connection())
                        .await
                        .map_err(|e| self.error(e))?;
                }
            }
        }
        Ok(active)
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
