//! Which chunks each user's part of the store holds (issue 30), so that "which of these do you lack" costs one set
//! lookup rather than a store listing, and never answers for another user's chunks: a set per user
//! (`rai:index:chunks:<user>`), and per job the chunks it still has to send (`rai:job:<id>:missing`, id -> size),
//! which the gateway checks chunks streamed through it against.
//!
//! A chunk enters the owner's set only once it is stored (fs: after the gateway opened and hashed it; S3: after its
//! object was seen, its content then checked by the worker on first use, which takes a lying chunk out again).

use std::time::Duration;

use rai_common::job::JobId;
use rai_common::project::{ChunkId, ChunkRef};

use super::EventBus;
use crate::errors::EventError;
use crate::keys;

impl EventBus {
    /// For each of `ids`, whether `user`'s part of the store holds it.
    pub async fn known_chunks(&self, user: &str, ids: &[ChunkId]) -> Result<Vec<bool>, EventError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("SMISMEMBER");
        cmd.arg(keys::chunks(user));
        for id in ids {
            cmd.arg(id.to_string());
        }
        let found: Vec<bool> = cmd
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        Ok(found)
    }

    /// Notes that `user`'s part of the store holds `ids`.
    pub async fn add_chunks(&self, user: &str, ids: &[ChunkId]) -> Result<(), EventError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("SADD");
        cmd.arg(keys::chunks(user));
        for id in ids {
            cmd.arg(id.to_string());
        }
        cmd.query_async::<()>(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }

    /// Notes that `user`'s part of the store no longer holds `id` (deleted: it lied, or nothing refers to it).
    pub async fn forget_chunk(&self, user: &str, id: &ChunkId) -> Result<(), EventError> {
        redis::cmd("SREM")
            .arg(keys::chunks(user))
            .arg(id.to_string())
            .query_async::<()>(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }

    /// Keeps what `job` has to send, for `ttl`.
    pub async fn note_missing_chunks(
        &self,
        job: &JobId,
        missing: &[ChunkRef],
        ttl: Duration,
    ) -> Result<(), EventError> {
        if missing.is_empty() {
            return Ok(());
        }
        let key = keys::missing_chunks(job);
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("DEL").arg(&key).ignore();
        let mut hset = redis::cmd("HSET");
        hset.arg(&key);
        for c in missing {
            hset.arg(c.id.to_string()).arg(c.size);
        }
        pipe.add_command(hset).ignore();
        pipe.cmd("EXPIRE")
            .arg(&key)
            .arg(ttl.as_secs().max(1))
            .ignore();
        pipe.query_async::<()>(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }

    /// The chunks `job` had to send when its manifest was declared.
    pub async fn missing_chunks(&self, job: &JobId) -> Result<Vec<ChunkRef>, EventError> {
        let all: std::collections::HashMap<String, u64> = redis::cmd("HGETALL")
            .arg(keys::missing_chunks(job))
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        Ok(all
            .into_iter()
            .filter_map(|(id, size)| {
                Some(ChunkRef {
                    id: id.parse().ok()?,
                    size,
                })
            })
            .collect())
    }

    /// For each of `ids`, in their order, its size if `job` has it to send (one round trip).
    pub async fn missing_chunk_sizes(
        &self,
        job: &JobId,
        ids: &[ChunkId],
    ) -> Result<Vec<Option<u64>>, EventError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut hmget = redis::cmd("HMGET");
        hmget.arg(keys::missing_chunks(job));
        for id in ids {
            hmget.arg(id.to_string());
        }
        hmget
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }

    /// Forgets what `job` had to send: it was all sent.
    pub async fn forget_missing_chunks(&self, job: &JobId) -> Result<(), EventError> {
        redis::cmd("DEL")
            .arg(keys::missing_chunks(job))
            .query_async::<()>(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }
}
