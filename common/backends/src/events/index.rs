//! The job index and dashboard sessions: what the staff dashboard reads, kept in Redis beside the job states.
//!
//! The gateway adds every job it accepts to a sorted set scored by acceptance time, and to one per user, team and
//! assignment, so that a page of the newest jobs, or of one team's, costs one range read and one pipelined read of
//! that page's states, however many jobs the term has (the records in the store would need a listing of every
//! object). Entries older than the events' retention are trimmed as new ones arrive; a job whose state has expired
//! is skipped. A status filter is applied to the states read, in batches, so a page is always full when enough
//! jobs match.
//!
//! Dashboard sessions are random tokens with a lifetime; a login link's nonce is kept once used, so a link works
//! once.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rai_common::event::JobStatus;
use rai_common::job::JobId;
use rai_common::state::JobState;

use super::EventBus;
use crate::errors::EventError;
use crate::keys;

/// Which jobs a listing shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub user: Option<String>,
    pub team: Option<String>,
    pub assignment: Option<String>,
    pub status: Option<JobStatus>,
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    pub jobs: Vec<(JobId, JobState)>,
    /// Where the next page starts, when there may be one.
    pub next: Option<u64>,
}

/// How many index entries one round of a filtered listing reads.
const BATCH: usize = 200;

impl EventBus {
    /// Adds an accepted job to the index (and its user's, team's and assignment's).
    pub async fn index_job(
        &self,
        job: &JobId,
        at: DateTime<Utc>,
        user: &str,
        team: &str,
        assignment: Option<&str>,
    ) -> Result<(), EventError> {
        let score = at.timestamp_millis();
        let oldest = score - self.retention().as_millis() as i64;
        let mut sets = vec![
            keys::JOB_INDEX.to_string(),
            keys::job_index_by("user", user),
        ];
        if !team.is_empty() {
            sets.push(keys::job_index_by("team", team));
        }
        if let Some(a) = assignment {
            sets.push(keys::job_index_by("assignment", a));
        }
        let mut pipe = redis::pipe();
        for set in &sets {
            pipe.zadd(set, job.to_string(), score)
                .ignore()
                .cmd("ZREMRANGEBYSCORE")
                .arg(set)
                .arg("-inf")
                .arg(oldest)
                .ignore()
                .expire(set, self.retention().as_secs() as i64)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }

    /// Jobs matching `filter`, newest first, starting `from` entries into the index.
    pub async fn list_jobs(
        &self,
        filter: &JobFilter,
        from: u64,
        limit: usize,
    ) -> Result<JobPage, EventError> {
        let set = if let Some(a) = &filter.assignment {
            keys::job_index_by("assignment", a)
        } else if let Some(t) = &filter.team {
            keys::job_index_by("team", t)
        } else if let Some(u) = &filter.user {
            keys::job_index_by("user", u)
        } else {
            keys::JOB_INDEX.to_string()
        };
        let mut conn = self.connection();
        let mut jobs = Vec::new();
        if limit == 0 {
            return Ok(JobPage { jobs, next: None });
        }
        let mut at = from;
        loop {
            let want = if filter_is_plain(filter, &set) {
                limit - jobs.len()
            } else {
                BATCH
            };
            let ids: Vec<String> = redis::cmd("ZREVRANGE")
                .arg(&set)
                .arg(at)
                .arg(at + want as u64 - 1)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.error(e))?;
            if ids.is_empty() {
                return Ok(JobPage { jobs, next: None });
            }
            let mut pipe = redis::pipe();
            for id in &ids {
                // An entry that is not a job id reads as an empty state and is skipped below.
                let key = id
                    .parse::<JobId>()
                    .map_or_else(|_| String::new(), |j| keys::job_state(&j));
                pipe.hgetall(key);
            }
            let states: Vec<HashMap<String, String>> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| self.error(e))?;
            let read = ids.len();
            for (i, (id, fields)) in ids.into_iter().zip(states).enumerate() {
                let (Ok(job), Some(state)) = (id.parse::<JobId>(), JobState::from_fields(&fields))
                else {
                    continue;
                };
                if matches(filter, &state) {
                    jobs.push((job, state));
                    if jobs.len() == limit {
                        return Ok(JobPage {
                            jobs,
                            next: Some(at + i as u64 + 1),
                        });
                    }
                }
            }
            at += read as u64;
            if read < want {
                return Ok(JobPage { jobs, next: None });
            }
        }
    }

    /// Starts a dashboard session for `user`; returns its token and CSRF token.
    pub async fn open_session(
        &self,
        user: &str,
        lifetime: Duration,
    ) -> Result<(String, String), EventError> {
        let token = random_token();
        let csrf = random_token();
        let value = format!("{user}\n{csrf}");
        redis::cmd("SET")
            .arg(keys::ui_session(&token))
            .arg(value)
            .arg("PX")
            .arg(lifetime.as_millis().max(1) as u64)
            .query_async::<()>(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        Ok((token, csrf))
    }

    /// The user and CSRF token of a live session.
    pub async fn session(&self, token: &str) -> Result<Option<(String, String)>, EventError> {
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Ok(None);
        }
        let value: Option<String> = redis::cmd("GET")
            .arg(keys::ui_session(token))
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        Ok(value.and_then(|v| {
            let (user, csrf) = v.split_once('\n')?;
            Some((user.to_string(), csrf.to_string()))
        }))
    }

    /// Ends a session.
    pub async fn close_session(&self, token: &str) -> Result<(), EventError> {
        redis::cmd("DEL")
            .arg(keys::ui_session(token))
            .query_async::<()>(&mut self.connection())
            .await
            .map_err(|e| self.error(e))
    }

    /// Marks a login link's nonce used; false when it already was.
    pub async fn use_link_once(&self, nonce: &str, keep: Duration) -> Result<bool, EventError> {
        let set: Option<String> = redis::cmd("SET")
            .arg(keys::ui_link(nonce))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(keep.as_millis().max(1) as u64)
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        Ok(set.is_some())
    }
}

/// Whether the set alone decides the listing (no status filter, and no second name to check).
fn filter_is_plain(filter: &JobFilter, set: &str) -> bool {
    let by_set = |by: &str, name: &Option<String>| {
        name.as_ref()
            .is_none_or(|n| set == keys::job_index_by(by, n))
    };
    filter.status.is_none()
        && by_set("assignment", &filter.assignment)
        && by_set("team", &filter.team)
        && by_set("user", &filter.user)
}

fn matches(filter: &JobFilter, state: &JobState) -> bool {
    let same = |want: &Option<String>, have: &Option<String>| {
        want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
    };
    same(&filter.user, &state.user)
        && same(&filter.team, &state.team)
        && same(&filter.assignment, &state.assignment)
        && filter.status.is_none_or(|s| state.status == Some(s))
}

/// 256 random bits, as hex.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
