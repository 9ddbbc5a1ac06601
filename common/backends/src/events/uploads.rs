//! Per-user limits on project uploads, and the uploads that were declared and never submitted (issue 26).
//!
//! An upload costs the store its bytes whether or not its job is ever submitted, and `POST /v1/uploads` is cheap to
//! call, so a gateway counts each user's uploads in Redis, shared by every gateway: those declared and not yet
//! submitted (a sorted set per user, scored by when each was declared) and the bytes declared per UTC day (a
//! counter per user and day). The count and the admission are one script, so parallel requests cannot all pass.
//! Every declared upload is also in one course-wide sorted set, which a gateway's sweep reads to delete those
//! never submitted once they expire.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rai_common::job::JobId;

use super::EventBus;
use crate::errors::EventError;
use crate::keys;

/// Whether an upload may be declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadAdmission {
    Admitted,
    /// The user has this many uploads declared and not submitted (the cap); the oldest expires at this time.
    TooManyPending {
        pending: u32,
        oldest_expires: DateTime<Utc>,
    },
    /// The user declared this many bytes today; this upload would pass the day's cap.
    TooManyBytes {
        used: u64,
    },
}

/// A declared upload the sweep found expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredUpload {
    pub user: String,
    pub job: JobId,
}

/// KEYS: the user's pending uploads, every pending upload, the user's bytes today. ARGV: now (ms), how long a
/// declaration counts (ms), the job, the course-wide member, the size, max pending, max bytes, how long to keep the
/// day's counter (s).
const ADMIT_UPLOAD: &str = r"
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
local again = redis.call('ZSCORE', KEYS[1], ARGV[3])
local pending = redis.call('ZCARD', KEYS[1])
local max_pending = tonumber(ARGV[6])
if not again and max_pending > 0 and pending >= max_pending then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {1, pending, tonumber(oldest[2])}
end
local used = tonumber(redis.call('GET', KEYS[3]) or '0')
local size, max_bytes = tonumber(ARGV[5]), tonumber(ARGV[7])
if max_bytes > 0 and used + size > max_bytes then return {2, used, 0} end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[4])
redis.call('INCRBY', KEYS[3], size)
redis.call('EXPIRE', KEYS[3], ARGV[8])
return {0, pending, 0}
";

/// The course-wide member of a pending upload: `user job` (a user name has no space).
fn member(user: &str, job: &JobId) -> String {
    format!("{user} {job}")
}

impl EventBus {
    /// Admits `user`'s upload of `size` bytes for `job` at `now` against the caps on uploads pending (declared, not
    /// submitted, younger than `expire`) and bytes per UTC day, 0 meaning no cap; an admitted upload is counted.
    /// Declaring the same job again (a retried request) does not count it twice as pending.
    #[allow(clippy::too_many_arguments)]
    pub async fn admit_upload(
        &self,
        scope: &str,
        user: &str,
        job: &JobId,
        size: u64,
        max_pending: u32,
        bytes_per_day: u64,
        expire: Duration,
        now: DateTime<Utc>,
    ) -> Result<UploadAdmission, EventError> {
        let day = now.format("%Y-%m-%d").to_string();
        let (verdict, count, at): (u8, u64, i64) = redis::Script::new(ADMIT_UPLOAD)
            .key(keys::pending_uploads(user))
            .key(keys::pending_uploads_index(scope))
            .key(keys::upload_bytes(user, &day))
            .arg(now.timestamp_millis())
            .arg(expire.as_millis().max(1) as u64)
            .arg(job.to_string())
            .arg(member(user, job))
            .arg(size)
            .arg(max_pending)
            .arg(bytes_per_day)
            .arg(2 * 86_400)
            .invoke_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        Ok(match verdict {
            0 => UploadAdmission::Admitted,
            1 => UploadAdmission::TooManyPending {
                pending: count as u32,
                oldest_expires: DateTime::from_timestamp_millis(at).unwrap_or(now)
                    + chrono::Duration::from_std(expire).unwrap_or_default(),
            },
            _ => UploadAdmission::TooManyBytes { used: count },
        })
    }

    /// `job`'s upload was submitted: it no longer counts as pending, and the sweep leaves it alone.
    pub async fn upload_submitted(
        &self,
        scope: &str,
        user: &str,
        job: &JobId,
    ) -> Result<(), EventError> {
        redis::pipe()
            .cmd("ZREM")
            .arg(keys::pending_uploads(user))
            .arg(job.to_string())
            .ignore()
            .cmd("ZREM")
            .arg(keys::pending_uploads_index(scope))
            .arg(member(user, job))
            .ignore()
            .query_async::<()>(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }

    /// Up to `max` uploads declared before `before` and never submitted.
    pub async fn expired_uploads(
        &self,
        scope: &str,
        before: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<ExpiredUpload>, EventError> {
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(keys::pending_uploads_index(scope))
            .arg("-inf")
            .arg(before.timestamp_millis())
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(max)
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        Ok(members
            .iter()
            .filter_map(|m| {
                let (user, job) = m.split_once(' ')?;
                Some(ExpiredUpload {
                    user: user.to_string(),
                    job: job.parse().ok()?,
                })
            })
            .collect())
    }

    /// Forgets an expired upload's declaration: its body can no longer be sent, nor its job submitted.
    pub async fn forget_upload(
        &self,
        scope: &str,
        upload: &ExpiredUpload,
    ) -> Result<(), EventError> {
        redis::pipe()
            .cmd("DEL")
            .arg(keys::upload(&upload.job))
            .ignore()
            .cmd("ZREM")
            .arg(keys::pending_uploads_index(scope))
            .arg(member(&upload.user, &upload.job))
            .ignore()
            .query_async::<()>(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }

    /// Takes the sweep's turn of the store `scope` for `every`: `true` for one gateway of the course per period.
    pub async fn take_sweep_turn(&self, scope: &str, every: Duration) -> Result<bool, EventError> {
        let set: Option<String> = redis::cmd("SET")
            .arg(keys::sweep_turn(scope))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(every.as_millis().max(1) as u64)
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        Ok(set.is_some())
    }
}
