//! Job state, job claims, cancel requests and worker heartbeats, kept in Redis beside the events: the small facts
//! `rai status` and `rai cancel` read and write, and the claim that keeps one job on one worker.

use std::collections::HashMap;
use std::time::Duration;

use rai_common::job::JobId;
use rai_common::state::{JobState, WorkerInfo};

use super::EventBus;
use crate::errors::EventError;
use crate::keys;

/// What a worker learns when it claims a job id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The job's first run.
    Fresh,
    /// An earlier run (by the named worker) died or was handed back: this is a rerun.
    Rerun { previous: String },
    /// The job already finished: the message is a redelivery or a replay, to be dropped.
    Finished,
    /// Another worker holds the job and is alive (its claim is fresh): a duplicate delivery, to be left alone.
    Busy { holder: String },
}

/// Claims a job for a worker in one step: finished jobs stay finished (their done mark, or an `end` event last in
/// their log: a worker killed after publishing the end but before marking it done must not cause a second run; the
/// mark is set then); a job another worker holds (its claim has not expired) stays with it; otherwise the claim
/// moves to this worker.
const CLAIM: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return {'finished', ''} end
local last = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1)[1]
if last then
  local ok, event = pcall(cjson.decode, last[2][2])
  if ok and type(event) == 'table' and event['kind'] == 'end' then
    redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
    return {'finished', ''}
  end
end
local prev = redis.call('GET', KEYS[1])
if prev and prev ~= ARGV[1] then return {'busy', prev} end
local seq = tonumber(redis.call('GET', KEYS[3]) or '0')
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if prev then return {'rerun', prev} end
if seq > 0 then return {'rerun', ''} end
return {'fresh', ''}
";

impl EventBus {
    /// Claims `job` for `worker` (for `ttl`, renewed by calling again).
    pub async fn claim(
        &self,
        job: &JobId,
        worker: &str,
        ttl: Duration,
    ) -> Result<Claim, EventError> {
        let (what, prev): (String, String) = redis::Script::new(CLAIM)
            .key(keys::claim(job))
            .key(keys::done(job))
            .key(keys::event_seq(job))
            .key(keys::event_log(job))
            .arg(worker)
            .arg(ttl.as_secs().max(1))
            .arg(self.retention().as_secs().max(1))
            .invoke_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        Ok(match what.as_str() {
            "finished" => Claim::Finished,
            "rerun" => Claim::Rerun { previous: prev },
            "busy" => Claim::Busy { holder: prev },
            _ => Claim::Fresh,
        })
    }

    /// Marks `job` finished (its claim is dropped).
    pub async fn mark_done(&self, job: &JobId) -> Result<(), EventError> {
        let mut pipe = redis::pipe();
        // SET with EX rather than SETEX: the gateway's ACL user, which ends dropped dead letters, has SET alone.
        pipe.atomic()
            .cmd("SET")
            .arg(keys::done(job))
            .arg("1")
            .arg("EX")
            .arg(self.retention().as_secs().max(1))
            .ignore()
            .del(keys::claim(job))
            .ignore();
        pipe.query_async::<()>(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }

    /// Drops this worker's claim on `job` (it hands the job back).
    pub async fn unclaim(&self, job: &JobId) -> Result<(), EventError> {
        redis::cmd("DEL")
            .arg(keys::claim(job))
            .query_async::<()>(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }

    /// Sets the fields `update` holds in a job's state hash (and renews its expiry); the others stay as they were.
    pub async fn update_state(&self, job: &JobId, update: &JobState) -> Result<(), EventError> {
        let fields = update.to_fields();
        if fields.is_empty() {
            return Ok(());
        }
        let key = keys::job_state(job);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(&key, &fields)
            .ignore()
            .expire(&key, self.retention().as_secs() as i64)
            .ignore();
        pipe.query_async::<()>(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }

    /// A job's state, if Redis knows the job.
    pub async fn state(&self, job: &JobId) -> Result<Option<JobState>, EventError> {
        let h: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(keys::job_state(job))
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        Ok(JobState::from_fields(&h))
    }

    /// Asks the worker running `job` to cancel it.
    pub async fn request_cancel(&self, job: &JobId, by: &str) -> Result<(), EventError> {
        redis::cmd("SET")
            .arg(keys::cancel(job))
            .arg(by)
            .arg("EX")
            .arg(self.retention().as_secs().max(1))
            .query_async::<()>(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }

    /// Who asked to cancel `job`, if anyone.
    pub async fn cancel_requested(&self, job: &JobId) -> Result<Option<String>, EventError> {
        redis::cmd("GET")
            .arg(keys::cancel(job))
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }

    /// Records that a worker is alive, for `ttl`.
    pub async fn heartbeat(&self, info: &WorkerInfo, ttl: Duration) -> Result<(), EventError> {
        redis::cmd("SET")
            .arg(keys::worker(&info.name))
            .arg(serde_json::to_string(info).expect("worker info serializes"))
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async::<()>(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }

    /// Removes a worker's heartbeat (it stopped cleanly).
    pub async fn forget_worker(&self, name: &str) -> Result<(), EventError> {
        redis::cmd("DEL")
            .arg(keys::worker(name))
            .query_async::<()>(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }

    /// Every worker whose last heartbeat is still kept (a day; [`WorkerInfo::is_alive`] tells a live one from one
    /// that stopped beating).
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, EventError> {
        let mut conn = self.connection();
        let mut names: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(keys::WORKER_PATTERN)
                .arg("COUNT")
                .arg(200)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.error(e))?;
            names.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut out = Vec::new();
        for name in names {
            let v: Option<String> = redis::cmd("GET")
                .arg(&name)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.error(e))?;
            if let Some(info) = v.and_then(|v| serde_json::from_str(&v).ok()) {
                out.push(info);
            }
        }
        out.sort_by(|a: &WorkerInfo, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
