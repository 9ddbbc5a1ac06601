//! Graded submissions: `rai submit --submit NAME` judged against the course file, the team's submissions, and an
//! assignment's leaderboard.
//!
//! The original class client wrote its own submission records and ranking times (to Mongo), so a student could forge
//! either. Here the gateway judges a submission with its own clock and records it under the assignment and team
//! (`submissions/<assignment>/<team>/<job>.json`) when it queues it; the worker writes how the job ended, with each
//! command timed by the worker, into the job's record. Listings and leaderboards join the two.
//!
//! Over 450 lines: judging, recording, listing and ranking submissions share the course and the record.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rai_common::api::{
    Leaderboard, RankRow, RankingQuery, Submission, SubmissionRecord, Submissions, SubmissionsQuery,
};
use rai_common::course::{Assignment, Better, Counts, RankBy, Timeliness};
use rai_common::event::JobStatus;
use rai_common::job::{Graded, JobId, JobRequest};
use rai_common::objects::{record_key, submission_key, submissions_prefix};
use rai_common::record::JobRecord;
use sha2::Digest;

use crate::auth::Caller;
use crate::{ApiError, Gateway};

/// A graded submission the gateway accepts: the queue it goes to and the judgement the worker receives.
pub(crate) struct Judged {
    pub queue: String,
    pub graded: Graded,
}

/// A team's name in the store: a student without a team is a team of one.
pub(super) fn team_of(caller: &Caller) -> String {
    if caller.team.is_empty() {
        caller.user.clone()
    } else {
        caller.team.clone()
    }
}

/// The course's assignment `name`, or why there is none.
fn assignment(gateway: &Gateway, name: &str) -> Result<Assignment, ApiError> {
    let course = gateway.course.as_ref().ok_or_else(|| {
        ApiError::bad_request(
            "this course takes no graded submissions (the gateway has no course file); submit without --submit",
        )
    })?;
    course
        .current()
        .assignment(name)
        .cloned()
        .map_err(ApiError::from)
}

/// Judges a graded submission accepted `now`: the assignment exists, it is on time or may still be late, its queue
/// is served here, the project holds the files the assignment requires, and the build that will run passes the
/// policy.
pub(super) async fn judge(
    gateway: &Gateway,
    caller: &Caller,
    request: &JobRequest,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Judged, ApiError> {
    let a = assignment(gateway, name)?;
    let deadline = a.deadline(&caller.user, &team_of(caller));
    let late = match a.judge(&deadline, now) {
        Ok(Timeliness::OnTime) => false,
        Ok(Timeliness::Late) => true,
        Err(why) => return Err(why.into()),
    };
    let queue = a.queue.clone().unwrap_or_else(|| request.queue.clone());
    if !gateway.queues.contains_key(&queue) {
        return Err(ApiError::bad_request(format!(
            "the course file sends {name} to the queue \"{queue}\", which this gateway does not serve; tell your \
             course staff"
        )));
    }
    let missing = missing_files(
        gateway,
        &request.input.key,
        &request.input.sha256,
        &a.required_files,
    )
    .await?;
    if !missing.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{name} needs {} in your project folder; missing: {}. Add {} and submit again",
            a.required_files.join(", "),
            missing.join(", "),
            if missing.len() == 1 { "it" } else { "them" }
        )));
    }
    let build = a.build.clone().unwrap_or_else(|| request.build.clone());
    crate::policy::admit(&build, &gateway.config.raid)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Judged {
        queue,
        graded: Graded {
            assignment: a.name.clone(),
            late,
            build: a.build.clone(),
            results_required: a.results_required,
            regrade_of: None,
        },
    })
}

/// The most uploads the gateway unpacks at once, each into its own scratch folder of at most 4x
/// `raid.limits.upload_bytes`: the scratch space in use is bounded by both.
const UNPACKS_AT_ONCE: usize = 2;
/// The most time unpacking one upload may take; past it the submission is refused and the folder removed.
const UNPACK_TIME: std::time::Duration = std::time::Duration::from_secs(30);
/// How many verdicts the gateway remembers (the oldest are forgotten first).
const VERDICTS_KEPT: usize = 4096;

/// A required-files check's result: the files missing, or why the upload is refused.
type Verdict = Result<Vec<String>, String>;

/// Verdicts by key, and their keys oldest first.
type Verdicts = (
    std::collections::HashMap<String, Verdict>,
    std::collections::VecDeque<String>,
);

/// What checking uploads for an assignment's required files found, so an upload is unpacked once, however often
/// its job is posted (issue 26: the same signed job posted again and again unpacked it every time), and the
/// unpacking itself, bounded in how many run at once and for how long.
pub struct UnpackedUploads {
    /// (upload key, its SHA-256, the files asked for) -> the files missing, or why the upload is refused.
    verdicts: std::sync::Mutex<Verdicts>,
    unpacking: tokio::sync::Semaphore,
    unpacks: std::sync::atomic::AtomicU64,
}

impl Default for UnpackedUploads {
    fn default() -> Self {
        UnpackedUploads {
            verdicts: Default::default(),
            unpacking: tokio::sync::Semaphore::new(UNPACKS_AT_ONCE),
            unpacks: Default::default(),
        }
    }
}

impl UnpackedUploads {
    /// How many uploads this gateway has unpacked.
    pub fn unpacks(&self) -> u64 {
        self.unpacks.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn remembered(&self, key: &str) -> Option<Verdict> {
        let verdicts = self.verdicts.lock().expect("verdicts are never poisoned");
        verdicts.0.get(key).cloned()
    }

    fn remember(&self, key: String, verdict: Verdict) {
        let mut verdicts = self.verdicts.lock().expect("verdicts are never poisoned");
        let (map, order) = &mut *verdicts;
        if map.insert(key.clone(), verdict).is_none() {
            order.push_back(key);
        }
        while order.len() > VERDICTS_KEPT {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }
}

/// A reader that fails once its deadline has passed, so an unpack that runs too long stops on its own thread.
struct Deadline<R> {
    inner: R,
    until: std::time::Instant,
}

impl<R: std::io::Read> std::io::Read for Deadline<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if std::time::Instant::now() > self.until {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "unpacking took too long",
            ));
        }
        self.inner.read(buf)
    }
}

/// Which of `required` are not regular files in the upload at `key` (whose SHA-256 is `sha256`). The upload is
/// unpacked once, into the gateway's scratch folder (`gateway.scratch`), by the same guarded unpacker the worker
/// uses (a hostile archive is refused, not trusted for its file list), at most [`UNPACKS_AT_ONCE`] at a time and
/// for [`UNPACK_TIME`]; the verdict is remembered.
async fn missing_files(
    gateway: &Gateway,
    key: &str,
    sha256: &str,
    required: &[String],
) -> Result<Vec<String>, ApiError> {
    if required.is_empty() {
        return Ok(Vec::new());
    }
    let memo = format!("{key} {sha256} {}", required.join("\n"));
    let refused =
        |why: String| ApiError::bad_request(format!("the upload is not a safe archive: {why}"));
    if let Some(verdict) = gateway.unpacked.remembered(&memo) {
        return verdict.map_err(refused);
    }
    if rai_common::objects::is_manifest_key(key) {
        // A chunked upload: its manifest lists every file, so nothing is unpacked.
        let missing = required_in_manifest(gateway, key, sha256, required).await?;
        gateway.unpacked.remember(memo, Ok(missing.clone()));
        return Ok(missing);
    }
    let _permit = gateway
        .unpacked
        .unpacking
        .acquire()
        .await
        .expect("the semaphore is never closed");
    let reader = gateway
        .store
        .get(key)
        .await
        .map_err(|e| ApiError::unavailable("read the upload", e))?;
    let scratch_root = gateway
        .config
        .gateway
        .scratch
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    let wanted = required.to_vec();
    let max_bytes = gateway.config.raid.limits.upload_bytes.0.saturating_mul(4);
    let until = std::time::Instant::now() + UNPACK_TIME;
    crate::metrics::metrics().upload_unpacks.inc();
    gateway
        .unpacked
        .unpacks
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let unpacked = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&scratch_root)
            .map_err(|e| ApiError::unavailable("make a scratch folder", e))?;
        let scratch = tempfile::Builder::new()
            .prefix("raid-required-")
            .tempdir_in(&scratch_root)
            .map_err(|e| ApiError::unavailable("make a scratch folder", e))?;
        let input = Deadline {
            inner: tokio_util::io::SyncIoBridge::new(reader),
            until,
        };
        let limits = rai_common::archive::UnpackLimits {
            max_bytes,
            ..Default::default()
        };
        if let Err(e) = rai_common::archive::unpack(input, scratch.path(), limits) {
            if std::time::Instant::now() > until {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "checking the project's files took more than {}s; leave large data out of the project \
                         directory (.raiignore) and submit again",
                        UNPACK_TIME.as_secs()
                    ),
                ));
            }
            return Ok(Err(e.to_string()));
        }
        Ok(Ok(wanted
            .into_iter()
            .filter(|f| !std::fs::symlink_metadata(scratch.path().join(f)).is_ok_and(|m| m.is_file()))
            .collect()))
    })
    .await
    .map_err(|e| ApiError::unavailable("check the upload's files", e))??;
    gateway.unpacked.remember(memo, unpacked.clone());
    unpacked.map_err(refused)
}

/// Which of `required` are not regular files in the manifest at `key` (a chunked upload, checked when it was
/// declared), read whole and checked against its SHA-256 and this gateway's limits again before it is trusted.
async fn required_in_manifest(
    gateway: &Gateway,
    key: &str,
    sha256: &str,
    required: &[String],
) -> Result<Vec<String>, ApiError> {
    use sha2::Digest;
    let bytes = gateway
        .store
        .get_bytes_up_to(key, super::projects::MAX_DECLARATION)
        .await
        .map_err(|e| ApiError::unavailable("read the project's manifest", e))?;
    if hex::encode(sha2::Sha256::digest(&bytes)) != sha256 {
        return Err(ApiError::bad_request(
            "the project's manifest is not the one the job names; submit again",
        ));
    }
    let manifest =
        rai_common::project::Manifest::from_json(&bytes, &super::projects::limits(gateway))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let files: std::collections::HashSet<&str> =
        manifest.files().map(|(path, _, _)| path).collect();
    Ok(required
        .iter()
        .filter(|f| !files.contains(f.trim_start_matches("./")))
        .cloned()
        .collect())
}

/// Records an accepted graded submission under its assignment and team.
pub(super) async fn record(
    gateway: &Gateway,
    caller: &Caller,
    job: JobId,
    graded: &Graded,
    signed: rai_common::job::SignedJob,
    accepted_at: DateTime<Utc>,
) -> Result<(), ApiError> {
    let team = team_of(caller);
    let record = SubmissionRecord {
        job,
        assignment: graded.assignment.clone(),
        team: team.clone(),
        user: caller.user.clone(),
        accepted_at,
        late: graded.late,
        signed: Some(signed),
        regrade_of: None,
    };
    let bytes = serde_json::to_vec(&record).expect("a submission record serializes");
    gateway
        .store
        .put_bytes(&submission_key(&graded.assignment, &team, &job), bytes)
        .await
        .map_err(|e| ApiError::unavailable("record the submission", e))?;
    Ok(())
}

/// Every submission under `prefix`, each with its job's record when the job has ended.
async fn load(
    gateway: &Gateway,
    prefix: &str,
) -> Result<Vec<(SubmissionRecord, Option<JobRecord>)>, ApiError> {
    let objects = gateway
        .store
        .list(prefix)
        .await
        .map_err(|e| ApiError::unavailable("list the submissions", e))?;
    let mut out = Vec::with_capacity(objects.len());
    for object in objects {
        let bytes = gateway
            .store
            .get_bytes(&object.key)
            .await
            .map_err(|e| ApiError::unavailable("read a submission", e))?;
        let Ok(sub) = serde_json::from_slice::<SubmissionRecord>(&bytes) else {
            tracing::warn!(key = %object.key, "skipping an unreadable submission record");
            continue;
        };
        let record = match gateway.store.head(&record_key(&sub.user, &sub.job)).await {
            Ok(Some(_)) => gateway
                .store
                .get_bytes(&record_key(&sub.user, &sub.job))
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<JobRecord>(&b).ok()),
            _ => None,
        };
        out.push((sub, record));
    }
    Ok(out)
}

/// The worker-measured time of the ranked command of a job that succeeded.
fn ranked_seconds(a: &Assignment, record: Option<&JobRecord>) -> Option<f64> {
    let ranking = a.ranking?;
    let record = record.filter(|r| r.status == JobStatus::Succeeded)?;
    match ranking.command {
        Some(command) => {
            let timed = record.commands.get(command - 1)?;
            (timed.exit_code == Some(0)).then_some(timed.seconds)
        }
        // A ranking by score without a timed command: its ties go by the commands' time together.
        None => Some(record.commands.iter().map(|c| c.seconds).sum()),
    }
}

/// Marks, per team, the submission that is graded: the latest on time (or, with none on time, the latest late
/// one), or the latest of all when the course counts late ones alike.
fn mark_counted(a: &Assignment, subs: &mut [Submission]) {
    let mut best: BTreeMap<String, usize> = BTreeMap::new();
    // A regrade is a run of a submission, not a submission: it never counts on its own.
    for (i, s) in subs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.record.regrade_of.is_none())
    {
        let better = |other: &Submission| match a.counts {
            Counts::Latest => s.record.accepted_at > other.record.accepted_at,
            Counts::LatestOnTime => {
                (!s.record.late, s.record.accepted_at)
                    > (!other.record.late, other.record.accepted_at)
            }
        };
        match best.get(&s.record.team) {
            Some(&j) if !better(&subs[j]) => {}
            _ => {
                best.insert(s.record.team.clone(), i);
            }
        }
    }
    for i in best.into_values() {
        subs[i].counts = true;
    }
}

/// Joins each regrade to the submission it ran again: the submission names its latest regrade, and once that has
/// ended, shows the regrade's score, keeping its own as `original_score`. The regrade stays a row of its own (for
/// `--every`).
fn attach_regrades(subs: &mut [Submission]) {
    let mut latest: BTreeMap<JobId, usize> = BTreeMap::new();
    for (i, s) in subs.iter().enumerate() {
        if let Some(of) = s.record.regrade_of {
            match latest.get(&of) {
                Some(&j) if subs[j].record.accepted_at >= s.record.accepted_at => {}
                _ => {
                    latest.insert(of, i);
                }
            }
        }
    }
    for (of, r) in latest {
        let (job, ended, score, max) = {
            let r = &subs[r];
            (r.record.job, r.status.is_some(), r.score, r.max_score)
        };
        if let Some(original) = subs.iter_mut().find(|s| s.record.job == of) {
            original.regraded_by = Some(job);
            if ended {
                original.original_score = original.score;
                original.score = score;
                original.max_score = max.or(original.max_score);
            }
        }
    }
}

/// `GET /v1/submissions?assignment=A[&team=T]`: a student's own team's submissions; staff may name a team or list
/// every team's (newest first).
pub async fn list(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Query(query): Query<SubmissionsQuery>,
) -> Result<Json<Submissions>, ApiError> {
    listed(gateway, caller, query).await.map(Json)
}

/// The submissions `caller` may list (the API's and the dashboard's).
pub(super) async fn listed(
    gateway: Arc<Gateway>,
    caller: Caller,
    query: SubmissionsQuery,
) -> Result<Submissions, ApiError> {
    let team = match (&query.team, caller.is_staff()) {
        (Some(t), true) => Some(t.clone()),
        (None, true) => None,
        (Some(t), false) if *t != team_of(&caller) => {
            return Err(ApiError::forbidden(format!(
                "you may list your own team's submissions, not team \"{t}\"'s"
            )));
        }
        (_, false) => Some(team_of(&caller)),
    };
    let course = gateway
        .course
        .as_ref()
        .map(|c| c.current())
        .ok_or_else(|| {
            ApiError::bad_request("this course takes no graded submissions (no course file)")
        })?;
    let names: Vec<String> = match &query.assignment {
        Some(name) => vec![course.assignment(name)?.name.clone()],
        None => course.assignments.keys().cloned().collect(),
    };
    let mut all = Vec::new();
    let mut deadlines = Vec::new();
    for name in names {
        let a = &course.assignments[&name];
        // A student's own deadline (their extension, or their team's); for staff, the listed team's or the course's.
        let deadline = match (&team, caller.is_staff()) {
            (Some(t), false) => a.deadline(&caller.user, t),
            (Some(t), true) => a.deadline(t, t),
            (None, _) => a.course_deadline(),
        };
        deadlines.push(super::extensions::shown(a, deadline));
        let prefix = submissions_prefix(&name, team.as_deref());
        let mut subs: Vec<Submission> = load(&gateway, &prefix)
            .await?
            .into_iter()
            .map(|(record, job)| {
                // The total as this caller may see it now (a student's whole results may not be shown yet).
                let seen = job
                    .as_ref()
                    .and_then(|j| super::results::seen(&gateway, &caller, j));
                Submission {
                    status: job.as_ref().map(|j| j.status),
                    ranked_seconds: ranked_seconds(a, job.as_ref()),
                    record,
                    counts: false,
                    score: seen.as_ref().and_then(|r| r.total()),
                    max_score: seen.as_ref().and_then(|r| r.max_total()),
                    regraded_by: None,
                    original_score: None,
                }
            })
            .collect();
        attach_regrades(&mut subs);
        mark_counted(a, &mut subs);
        all.extend(subs);
    }
    all.sort_by_key(|s| std::cmp::Reverse(s.record.accepted_at));
    let teams = if caller.is_staff() && team.is_none() {
        let registry = gateway.registry.current();
        registry
            .users
            .iter()
            .filter(|u| u.role == rai_common::account::Role::Student && u.revoked.is_none())
            .map(|u| {
                let team = if u.team.is_empty() {
                    &u.username
                } else {
                    &u.team
                };
                (u.username.clone(), team.clone())
            })
            .collect()
    } else {
        BTreeMap::new()
    };
    Ok(Submissions {
        submissions: all,
        deadlines,
        teams,
    })
}

/// A team's name as other students see it on a leaderboard: stable for the assignment, unguessable without the
/// gateway's key.
fn anonymous(gateway: &Gateway, assignment: &str, team: &str) -> String {
    let mut h = sha2::Sha256::new();
    h.update(gateway.attestation_key.to_bytes());
    h.update(assignment.as_bytes());
    h.update([0]);
    h.update(team.as_bytes());
    format!("team-{}", &hex::encode(h.finalize())[..6])
}

/// Ranks `rows` (team, key, job) by `order` (best first); equal keys share a rank (1, 1, 3); ties in order by team.
fn rank_by<K: PartialEq>(
    mut rows: Vec<(String, K, JobId)>,
    order: impl Fn(&K, &K) -> std::cmp::Ordering,
) -> Vec<(usize, String, K, JobId)> {
    rows.sort_by(|a, b| order(&a.1, &b.1).then_with(|| a.0.cmp(&b.0)));
    let mut out: Vec<(usize, String, K, JobId)> = Vec::with_capacity(rows.len());
    for (i, (team, key, job)) in rows.into_iter().enumerate() {
        let rank = match out.last() {
            Some(prev) if prev.2 == key => prev.0,
            _ => i + 1,
        };
        out.push((rank, team, key, job));
    }
    out
}

/// What a leaderboard ranks a run by: its score (a ranking by score) and the worker's seconds.
type RankKey = (Option<f64>, f64);

/// The order of a ranking's keys, best first: (score, seconds) for a ranking by score (higher score, then less
/// time), or the seconds alone (`score` `None`) as `better` says.
fn key_order(better: Better) -> impl Fn(&RankKey, &RankKey) -> std::cmp::Ordering {
    move |a, b| match (a.0, b.0) {
        (Some(x), Some(y)) => y.total_cmp(&x).then_with(|| a.1.total_cmp(&b.1)),
        _ if better == Better::Higher => b.1.total_cmp(&a.1),
        _ => a.1.total_cmp(&b.1),
    }
}

/// `GET /v1/rankings/{assignment}?n=N`: each team's best worker-measured time of the ranked command among its
/// successful on-time submissions. Students see their own team by name and the others anonymized; staff see names.
pub async fn leaderboard(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<RankingQuery>,
) -> Result<Json<Leaderboard>, ApiError> {
    ranked(gateway, caller, name, query).await.map(Json)
}

/// An assignment's leaderboard as `caller` may see it (the API's and the dashboard's).
pub(super) async fn ranked(
    gateway: Arc<Gateway>,
    caller: Caller,
    name: String,
    query: RankingQuery,
) -> Result<Leaderboard, ApiError> {
    let a = assignment(&gateway, &name)?;
    let Some(ranking) = a.ranking else {
        return Err(ApiError::bad_request(format!(
            "{name} is not ranked (its course file entry has no ranking)"
        )));
    };
    let subs = load(&gateway, &submissions_prefix(&name, None)).await?;
    // A submission whose regrade has ended ranks by the regrade (the grader was fixed), not by its first run.
    let superseded: std::collections::HashSet<JobId> = subs
        .iter()
        .filter(|(sub, record)| record.is_some() && sub.regrade_of.is_some())
        .filter_map(|(sub, _)| sub.regrade_of)
        .collect();
    let by_score = ranking.by == RankBy::Score;
    let order = key_order(ranking.better);
    // Each team's best key: (score, seconds) by score, (None, seconds) by time.
    let mut teams: BTreeMap<String, Option<(RankKey, JobId)>> = BTreeMap::new();
    for (sub, record) in &subs {
        let entry = teams.entry(sub.team.clone()).or_insert(None);
        if sub.late || superseded.contains(&sub.job) {
            continue;
        }
        let Some(secs) = ranked_seconds(&a, record.as_ref()) else {
            continue;
        };
        let key = if by_score {
            // The score as this caller may see it now: a board by score waits for the scores to be shown.
            let seen = record
                .as_ref()
                .and_then(|r| super::results::seen(&gateway, &caller, r));
            match seen.and_then(|r| r.total()) {
                Some(score) => (Some(score), secs),
                None => continue,
            }
        } else {
            (None, secs)
        };
        let improves = match entry {
            None => true,
            Some((best, _)) => order(&key, best) == std::cmp::Ordering::Less,
        };
        if improves {
            *entry = Some((key, sub.job));
        }
    }
    let unranked = teams.values().filter(|t| t.is_none()).count();
    let keys: Vec<(String, RankKey, JobId)> = teams
        .into_iter()
        .filter_map(|(team, best)| best.map(|(k, j)| (team, k, j)))
        .collect();
    let own = team_of(&caller);
    let n = query.n.unwrap_or(10).max(1);
    let rows: Vec<RankRow> = rank_by(keys, &order)
        .into_iter()
        .enumerate()
        .filter(|(i, (_, team, _, _))| *i < n || *team == own)
        .map(|(_, (rank, team, (score, seconds), job))| {
            let named = caller.is_staff() || team == own;
            RankRow {
                rank,
                yours: team == own,
                team: if named {
                    team
                } else {
                    anonymous(&gateway, &name, &team)
                },
                seconds,
                score,
                job: named.then_some(job),
            }
        })
        .collect();
    Ok(Leaderboard {
        assignment: name,
        command: ranking.command,
        lower_is_better: ranking.better == Better::Lower,
        by_score,
        rows,
        unranked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_times_share_a_rank_and_higher_may_be_better() {
        let job = JobId::new();
        let times = vec![
            ("c".to_string(), 2.0, job),
            ("a".to_string(), 1.0, job),
            ("b".to_string(), 1.0, job),
            ("d".to_string(), 3.0, job),
        ];
        let keyed = |times: &[(String, f64, JobId)]| -> Vec<(String, RankKey, JobId)> {
            times
                .iter()
                .map(|(t, s, j)| (t.clone(), (None, *s), *j))
                .collect()
        };
        let ranked: Vec<(usize, String)> = rank_by(keyed(&times), key_order(Better::Lower))
            .into_iter()
            .map(|r| (r.0, r.1))
            .collect();
        assert_eq!(
            ranked,
            [
                (1, "a".into()),
                (1, "b".into()),
                (3, "c".into()),
                (4, "d".into())
            ]
        );
        let ranked: Vec<(usize, String)> = rank_by(keyed(&times), key_order(Better::Higher))
            .into_iter()
            .map(|r| (r.0, r.1))
            .collect();
        assert_eq!(ranked[0], (1, "d".into()));
    }

    #[test]
    fn by_score_higher_first_and_equal_scores_by_time() {
        let job = JobId::new();
        let rows = vec![
            ("a".to_string(), (Some(8.0), 3.0), job),
            ("b".to_string(), (Some(10.0), 9.0), job),
            ("c".to_string(), (Some(8.0), 1.0), job),
            ("d".to_string(), (Some(8.0), 1.0), job),
        ];
        // `better` is about time; a score ranks higher first whatever it says.
        for better in [Better::Lower, Better::Higher] {
            let ranked: Vec<(usize, String)> = rank_by(rows.clone(), key_order(better))
                .into_iter()
                .map(|r| (r.0, r.1))
                .collect();
            assert_eq!(
                ranked,
                [
                    (1, "b".into()),
                    (2, "c".into()),
                    (2, "d".into()),
                    (4, "a".into())
                ]
            );
        }
    }
}
