//! What the gateway knows of each job and each request, kept in Redis beside the job's state: the user a job id is
//! bound to (set once, so one student can never take over another's id), the upload that was declared for it,
//! whether it was accepted, the request nonces seen within the signature window, and per-user submit counts.

use std::time::Duration;

use rai_common::job::JobId;

use super::EventBus;
use crate::errors::EventError;
use crate::keys;

/// Binding a job id to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// The id was free and is now this user's.
    New,
    /// The id was already this user's (a retried request).
    Same,
    /// The id belongs to someone else.
    Taken,
}

impl EventBus {
    /// `SET key value NX EX ttl`: whether the key was free (and is now set).
    async fn set_if_free(
        &self,
        key: String,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, EventError> {
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("NX")
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        Ok(set.is_some())
    }

    /// Binds `job` to `user` for `ttl` unless it is bound already.
    pub async fn bind_owner(
        &self,
        job: &JobId,
        user: &str,
        ttl: Duration,
    ) -> Result<Binding, EventError> {
        if self.set_if_free(keys::owner(job), user, ttl).await? {
            return Ok(Binding::New);
        }
        Ok(match self.owner(job).await?.as_deref() {
            Some(owner) if owner == user => Binding::Same,
            _ => Binding::Taken,
        })
    }

    /// The user `job` is bound to, if any.
    pub async fn owner(&self, job: &JobId) -> Result<Option<String>, EventError> {
        redis::cmd("GET")
            .arg(keys::owner(job))
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }

    /// Notes the size and SHA-256 declared for `job`'s upload.
    pub async fn declare_upload(
        &self,
        job: &JobId,
        size: u64,
        sha256: &str,
        ttl: Duration,
    ) -> Result<(), EventError> {
        redis::cmd("SET")
            .arg(keys::upload(job))
            .arg(format!("{size} {sha256}"))
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .query_async::<()>(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }

    /// The size and SHA-256 declared for `job`'s upload.
    pub async fn declared_upload(&self, job: &JobId) -> Result<Option<(u64, String)>, EventError> {
        let text: Option<String> = redis::cmd("GET")
            .arg(keys::upload(job))
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        Ok(text.and_then(|t| {
            let (size, sha) = t.split_once(' ')?;
            Some((size.parse().ok()?, sha.to_string()))
        }))
    }

    /// Marks `job` accepted; `false` when it already was (the id was submitted before).
    pub async fn mark_accepted(&self, job: &JobId, ttl: Duration) -> Result<bool, EventError> {
        self.set_if_free(keys::accepted(job), "1", ttl).await
    }

    /// Undoes [`EventBus::mark_accepted`] when the job could not be queued after all, so a retry may submit it.
    pub async fn unmark_accepted(&self, job: &JobId) -> Result<(), EventError> {
        redis::cmd("DEL")
            .arg(keys::accepted(job))
            .query_async::<()>(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }

    /// Remembers `nonce` from `user` for `window`; `false` when it was seen already (a replayed request).
    pub async fn first_use_of_nonce(
        &self,
        user: &str,
        nonce: &str,
        window: Duration,
    ) -> Result<bool, EventError> {
        self.set_if_free(keys::nonce(user, nonce), "1", window)
            .await
    }

    /// Counts one submission by `user` in the minute `minute`; returns the minute's count so far.
    pub async fn count_submit(&self, user: &str, minute: i64) -> Result<u64, EventError> {
        let key = keys::submit_count(user, minute);
        let (count, _): (u64, i64) = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg(&key)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(120)
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        Ok(count)
    }

    /// Counts `job` among the jobs of `user`'s sweep `sweep` (once however often it is submitted); returns how many
    /// jobs the sweep has so far, this one included.
    pub async fn count_sweep_job(
        &self,
        user: &str,
        sweep: &str,
        job: &str,
    ) -> Result<u64, EventError> {
        let key = keys::sweep_jobs(user, sweep);
        let (_, _, members): (u64, i64, Vec<String>) = redis::pipe()
            .atomic()
            .cmd("SADD")
            .arg(&key)
            .arg(job)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(7 * 24 * 3600)
            .cmd("SMEMBERS")
            .arg(&key)
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        Ok(members.len() as u64)
    }

    /// The jobs of `user`'s sweep `sweep` so far (none for a sweep of someone else's, or an unknown one).
    pub async fn sweep_jobs(&self, user: &str, sweep: &str) -> Result<Vec<String>, EventError> {
        redis::cmd("SMEMBERS")
            .arg(keys::sweep_jobs(user, sweep))
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }
}
