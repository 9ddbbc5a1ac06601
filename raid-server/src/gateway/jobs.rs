//! Step 2 of a job's life at the gateway, and what students ask of a job afterwards. `POST /v1/jobs` takes the
//! student's signed job, checks it (signature, signer, its own upload, queue, the course's policy, rate), stamps it
//! with the gateway's clock, attests it with the gateway's key and queues it; an id is accepted once. The other
//! handlers read a job's state, cancel it, list a user's finished jobs, and say who is asking.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use rai_common::api::{Accepted, History, HistoryQuery, WhoAmI};
use rai_common::event::JobStatus;
use rai_common::job::{AttestedJob, Owner, SignedJob};
use rai_common::objects::{manifest_key, upload_key};
use rai_common::record::JobRecord;
use rai_common::state::JobState;

use super::access::{Access, authorize, job_id};
use super::auth::{Caller, SignedJson};
use super::{ApiError, Gateway};

/// `POST /v1/jobs`: the student's [`SignedJob`].
pub async fn submit(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    SignedJson(signed): SignedJson<SignedJob>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    // The student's own signature on the job (the worker checks it again): no time window here, since
    // `accepted_at` below, not the client's `created_at`, is the time that counts.
    let request = signed
        .verify_signature(&gateway.registry.current())
        .map_err(|e| ApiError::forbidden(e.to_string()))?;
    let job = request.id;
    if request.user != caller.user {
        return Err(ApiError::forbidden(format!(
            "the job is signed for user \"{}\" but the request comes from \"{}\"; submit your own jobs",
            request.user, caller.user
        )));
    }
    let chunked = request.input.key == manifest_key(&caller.user, &job);
    if request.input.key != upload_key(&caller.user, &job) && !chunked {
        return Err(ApiError::forbidden(format!(
            "the job's input is {}, which is not its own upload",
            request.input.key
        )));
    }
    let owner = gateway
        .bus
        .owner(&job)
        .await
        .map_err(|e| ApiError::unavailable("look up the job", e))?;
    if owner.as_deref() != Some(caller.user.as_str()) {
        return Err(ApiError::conflict(format!(
            "job {job} has no upload of yours; upload the project first (rai submit does both)"
        )));
    }
    let declared = gateway
        .bus
        .declared_upload(&job)
        .await
        .map_err(|e| ApiError::unavailable("look up the upload", e))?;
    if declared != Some((request.input.size, request.input.sha256.clone())) {
        return Err(ApiError::conflict(
            "the job's input is not the upload declared for it; submit again",
        ));
    }
    let stored = gateway
        .store
        .head(&request.input.key)
        .await
        .map_err(|e| ApiError::unavailable("check the upload", e))?;
    if stored.map(|o| o.size) != Some(request.input.size) {
        return Err(ApiError::conflict(
            "the job's upload has not arrived (whole); upload it, then submit",
        ));
    }
    if chunked {
        let unsent = gateway
            .bus
            .missing_chunks(&job)
            .await
            .map_err(|e| ApiError::unavailable("look up the upload", e))?;
        if !unsent.is_empty() {
            return Err(ApiError::conflict(format!(
                "{} chunk(s) of the project were not sent and completed; send them, then submit",
                unsent.len()
            )));
        }
    }
    let now = gateway.clock.now();
    // A sweep's job: one of its build file's combinations, within the course's size, never more jobs than the
    // matrix makes; the sweep counts once against the rate limit (its first job), each job against the caps.
    let mut counts_as_submission = true;
    match &request.sweep {
        Some(_) if request.assignment.is_some() => {
            return Err(ApiError::bad_request(
                "a sweep cannot be a graded submission: submit the setting you chose, without a matrix",
            ));
        }
        Some(sweep) => {
            sweep
                .check(&request.build.matrix)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            let cap = gateway.config.gateway.max_sweep;
            if sweep.size > cap {
                return Err(ApiError::bad_request(format!(
                    "the matrix makes {} jobs; this course allows at most {cap} in one sweep \
                     (gateway.max_sweep): list fewer values",
                    sweep.size
                )));
            }
            let seen = gateway
                .bus
                .count_sweep_job(&caller.user, &sweep.id.to_string(), &job.to_string())
                .await
                .map_err(|e| ApiError::unavailable("count the sweep's jobs", e))?;
            if seen > u64::from(sweep.size) {
                return Err(ApiError::conflict(format!(
                    "sweep {} already has its {} jobs",
                    sweep.id, sweep.size
                )));
            }
            counts_as_submission = seen == 1;
        }
        None if !request.build.matrix.is_empty() => {
            return Err(ApiError::bad_request(
                "the build file has a matrix, so it is submitted as a sweep (one job per combination); \
                 update rai (rai version) and submit again",
            ));
        }
        None => {}
    }
    let per_minute = gateway.config.gateway.submits_per_minute;
    if !caller.is_staff() && per_minute > 0 && counts_as_submission {
        let count = gateway
            .bus
            .count_submit(&caller.user, now.timestamp() / 60)
            .await
            .map_err(|e| ApiError::unavailable("count submissions", e))?;
        if count > u64::from(per_minute) {
            crate::metrics::metrics().refused("rate");
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "more than {per_minute} submissions in a minute; submit again in {}s",
                    60 - now.timestamp() % 60
                ),
            ));
        }
    }
    let first = gateway
        .bus
        .mark_accepted(&job, super::uploads::binding_ttl(&gateway))
        .await
        .map_err(|e| ApiError::unavailable("accept the job", e))?;
    if !first && !unfinished_acceptance(&gateway, &job, now).await? {
        return Err(ApiError::conflict(format!(
            "job {job} was already submitted; a job id is accepted once"
        )));
    }
    // The expensive checks come after the cheap ones and the once-only mark: a graded submission's judgement may
    // unpack its upload, and the same signed job posted again and again (fresh request signatures) once unpacked
    // it every time (issue 26). A refusal from here on takes the mark back, so the job may be submitted again.
    let judged_and_queued = async {
        // A graded submission is judged against the course file: its deadline, its files, its queue and its build.
        let judged = match &request.assignment {
            Some(name) => {
                Some(super::submissions::judge(&gateway, &caller, &request, name, now).await?)
            }
            None => None,
        };
        let queue_name = judged
            .as_ref()
            .map_or_else(|| request.queue.clone(), |j| j.queue.clone());
        let Some(queue) = gateway.queues.get(&queue_name) else {
            let mut names: Vec<&str> = gateway.queues.keys().map(String::as_str).collect();
            names.sort();
            return Err(ApiError::bad_request(format!(
                "there is no queue \"{}\" here; the course's queues are: {}",
                request.queue,
                names.join(", ")
            ))
            .with_code(rai_common::api::ErrorCode::NoSuchQueue));
        };
        if judged.is_none() {
            crate::policy::admit(&request.build, &gateway.config.raid)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
        }
        // The build that runs: the instructor's for a graded submission.
        let build = judged
            .as_ref()
            .and_then(|j| j.graded.build.as_ref())
            .unwrap_or(&request.build);
        super::datasets::check(&gateway, build.datasets())?;
        Ok::<_, ApiError>((judged, queue_name, queue))
    }
    .await;
    let (judged, queue_name, queue) = match judged_and_queued {
        Ok(j) => j,
        Err(refusal) => {
            let _ = gateway.bus.unmark_accepted(&job).await;
            return Err(refusal);
        }
    };
    // After the once-only mark: a client's retry of a submission whose answer was lost gets the conflict above
    // (which it reads as accepted), not a quota refusal of its own job.
    if let Err(refusal) =
        super::quotas::check(&gateway, &caller, &job, now, counts_as_submission).await
    {
        let _ = gateway.bus.unmark_accepted(&job).await;
        return Err(refusal);
    }
    let graded = judged.as_ref().map(|j| j.graded.clone());
    // A graded submission keeps the student's signed job, so that staff can run it again (`rai regrade`).
    let kept_signed = signed.clone();
    let attested = AttestedJob::attest_graded(
        signed,
        job,
        &Owner {
            user: caller.user.clone(),
            team: caller.team.clone(),
            role: caller.role,
        },
        &queue_name,
        now,
        graded.clone(),
        &gateway.attestation_key,
    );
    let state = JobState {
        status: Some(JobStatus::Queued),
        user: Some(caller.user.clone()),
        team: Some(caller.team.clone()).filter(|t| !t.is_empty()),
        assignment: graded.as_ref().map(|g| g.assignment.clone()),
        queue: Some(queue_name.clone()),
        submitted_at: Some(now),
        sweep: request.sweep.as_ref().map(|s| s.id.to_string()),
        combination: request.sweep.as_ref().map(|s| s.combination.label()),
        ..JobState::default()
    };
    let wire = String::from_utf8(attested.to_bytes()).expect("JSON is UTF-8");
    let queued = async {
        gateway.bus.update_state(&job, &state).await?;
        Ok::<_, NotQueued>(
            send_in_turn(&gateway, queue.as_ref(), &wire, &caller.user, &caller.team).await?,
        )
    }
    .await;
    if let Err(e) = queued {
        // Not queued: the id may be submitted again, and counts against no cap.
        super::quotas::withdrawn(&gateway, &caller, &job).await;
        let _ = gateway.bus.unmark_accepted(&job).await;
        return Err(ApiError::unavailable("queue the job", e));
    }
    // An ungraded job's upload may be expired by the store's own rules; a graded one is kept for the course.
    if judged.is_none()
        && let Err(e) = gateway.store.mark_expirable(&request.input.key).await
    {
        tracing::warn!(job = %job, error = %e, "cannot mark the upload expirable; the store sweep deletes it later");
    }
    if let Err(e) = gateway
        .bus
        .upload_submitted(&gateway.store_scope, &caller.user, &job)
        .await
    {
        // It stays counted as pending until it expires; the sweep then sees its state and keeps the upload.
        tracing::warn!(job = %job, error = %e, "cannot take the upload off the pending ones");
    }
    let assignment = graded.as_ref().map(|g| g.assignment.as_str());
    if let Err(e) = gateway
        .bus
        .index_job(&job, now, &caller.user, &caller.team, assignment)
        .await
    {
        tracing::warn!(job = %job, error = %e, "cannot add the job to the dashboard's index");
    }
    if let Some(graded) = &graded {
        // Queued already: a failure here is logged, and the job record still names the assignment.
        if let Err(e) =
            super::submissions::record(&gateway, &caller, job, graded, kept_signed, now).await
        {
            tracing::error!(job = %job, error = %e.message, "cannot record the submission");
        }
    }
    tracing::info!(job = %job, user = %caller.user, queue = %queue_name, assignment = ?request.assignment, "job accepted");
    let mut note = unserved_note(&gateway, &queue_name).await;
    if let Some(g) = &graded {
        let judged = format!(
            "Submitted for {}{}{}.",
            g.assignment,
            if g.late { ", marked late" } else { ", on time" },
            if g.build.is_some() {
                "; the course's own build file runs it"
            } else {
                ""
            }
        );
        note = Some(match note {
            Some(n) => format!("{judged} {n}"),
            None => judged,
        });
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            job,
            queue: queue_name,
            accepted_at: now,
            note,
        }),
    ))
}

/// Whether `job`'s once-only mark was left by an acceptance that never finished: its gateway died, or Redis went
/// away between the mark and the queue so the mark could not be taken back. The job has no state (an acceptance
/// writes it before queueing) and its id is recent; the client's retry then takes the acceptance over. Two
/// acceptances of one id at once queue it twice at worst, and a worker runs a job id once. Found by the chaos run
/// with Redis restarts: the retry was told "already submitted" and the job was never queued.
async fn unfinished_acceptance(
    gateway: &Gateway,
    job: &rai_common::job::JobId,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool, ApiError> {
    if job.created() < now - super::uploads::ID_MAX_AGE {
        return Ok(false);
    }
    let state = gateway.job_state(job).await?;
    if state.is_none() {
        tracing::warn!(job = %job, "taking over an acceptance of this job that never finished");
    }
    Ok(state.is_none())
}

/// A note for the student when no live worker serves `queue`: the job is queued, and waits until one does. `None`
/// when one does, or when the heartbeats cannot be read (the job is queued either way).
async fn unserved_note(gateway: &Gateway, queue: &str) -> Option<String> {
    let mut workers = gateway.bus.workers().await.ok()?;
    let now = chrono::Utc::now();
    workers.retain(|w| w.is_alive(now));
    note_for(&workers, queue)
}

/// [`unserved_note`] over the live workers' heartbeats.
fn note_for(workers: &[rai_common::state::WorkerInfo], queue: &str) -> Option<String> {
    if workers.iter().any(|w| w.queues.iter().any(|q| q == queue)) {
        return None;
    }
    let mut served: Vec<&str> = workers
        .iter()
        .flat_map(|w| w.queues.iter().map(String::as_str))
        .collect();
    served.sort();
    served.dedup();
    Some(format!(
        "No worker serves the queue {queue} right now; the job waits until one starts ({}). Ask your course \
         staff, or cancel it and name another queue with -q.",
        if served.is_empty() {
            "no worker is running".to_string()
        } else {
            format!("queues served now: {}", served.join(", "))
        }
    ))
}

/// `GET /v1/jobs/{job}`: the job's state.
pub async fn status(
    State(gateway): State<Arc<Gateway>>,
    Path(job): Path<String>,
    caller: Caller,
) -> Result<Json<JobState>, ApiError> {
    let job = job_id(&job)?;
    authorize(&gateway, &caller, &job, Access::Read).await?;
    let state = gateway
        .bus
        .state(&job)
        .await
        .map_err(|e| ApiError::unavailable("read the job's state", e))?
        .ok_or_else(|| ApiError::no_such_job(job))?;
    Ok(Json(state))
}

/// `POST /v1/jobs/{job}/cancel`: the owner or staff ask the worker to stop the job.
pub async fn cancel(
    State(gateway): State<Arc<Gateway>>,
    Path(job): Path<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    let job = job_id(&job)?;
    authorize(&gateway, &caller, &job, Access::Write).await?;
    gateway
        .bus
        .request_cancel(&job, &caller.user)
        .await
        .map_err(|e| ApiError::unavailable("cancel the job", e))?;
    tracing::info!(job = %job, by = %caller.user, "cancel requested");
    Ok(StatusCode::ACCEPTED)
}

/// Queues a job of `user` in `team` in its fair-share group (docs/instructor.md, "Fair share"): the queue serves
/// users (or teams) in turn.
/// Why an accepted job was not queued: its state could not be written, or the queue did not take it.
#[derive(Debug, thiserror::Error)]
enum NotQueued {
    #[error(transparent)]
    State(#[from] rai_backends::errors::EventError),
    #[error(transparent)]
    Queue(#[from] rai_backends::errors::QueueError),
}

impl rai_backends::errors::Backend for NotQueued {
    fn backend(&self) -> &'static str {
        match self {
            NotQueued::State(e) => e.backend(),
            NotQueued::Queue(e) => e.backend(),
        }
    }
}

pub(super) async fn send_in_turn(
    gateway: &Gateway,
    queue: &dyn rai_backends::queue::JobQueue,
    wire: &str,
    user: &str,
    team: &str,
) -> Result<String, rai_backends::errors::QueueError> {
    match gateway.config.gateway.fair_share.group(user, team) {
        Some(group) => queue.send_in_group(wire, &group).await,
        None => queue.send(wire).await,
    }
}

/// The most records one history request returns.
const HISTORY_MAX: usize = 500;

/// `GET /v1/jobs?user=U | team=T | all=true &limit=N`: finished jobs, newest first. A student sees their own,
/// a teammate's and their own team's; staff see anyone's, any team's, or everyone's.
pub async fn history(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<History>, ApiError> {
    let limit = query.limit.unwrap_or(20).min(HISTORY_MAX);
    let name_ok = |n: &str| !n.is_empty() && !n.contains('/') && !n.contains("..");
    // Whose records to read: one user's folder, or every folder (sorted by job id across users).
    let users: Option<Vec<String>> = if query.all {
        if !caller.is_staff() {
            return Err(ApiError::forbidden(
                "only course staff may list everyone's jobs",
            ));
        }
        None
    } else if let Some(team) = query.team.as_deref().map(str::trim) {
        let members = || -> Vec<String> {
            let registry = gateway.registry.current();
            let in_team = registry.users.iter().filter(|a| a.team == team);
            in_team.map(|a| a.username.clone()).collect()
        };
        // A user without a team is a team of one: "no team" names no group of people (a student's `--team ''`
        // once listed every team-less user's jobs).
        match (team.is_empty(), caller.is_staff()) {
            (true, true) => {
                return Err(ApiError::bad_request(
                    "name a team (`--team NAME`); list a user without a team with `--user NAME`",
                ));
            }
            (true, false) => Some(vec![caller.user.clone()]),
            (false, true) => Some(members()),
            (false, false) if team == caller.team => Some(members()),
            (false, false) if caller.team.is_empty() => {
                return Err(ApiError::forbidden(format!(
                    "you are in no team, so you may list only your own jobs, not team \"{team}\"'s"
                )));
            }
            (false, false) => {
                return Err(ApiError::forbidden(format!(
                    "you may list your own team's jobs, not team \"{team}\"'s"
                )));
            }
        }
    } else {
        let user = query.user.clone().unwrap_or_else(|| caller.user.clone());
        if !super::access::allowed(&gateway, &caller, &user, Access::Read) {
            return Err(ApiError::forbidden(format!(
                "you may list your own and your team's jobs, not user \"{user}\"'s"
            )));
        }
        if !name_ok(&user) {
            return Err(ApiError::bad_request("not a username"));
        }
        Some(vec![user])
    };
    let mut objects = Vec::new();
    match users {
        None => objects = list_records(&gateway, "records/").await?,
        Some(users) => {
            for user in users.iter().filter(|u| name_ok(u)) {
                objects.extend(list_records(&gateway, &format!("records/{user}/")).await?);
            }
        }
    }
    // Job ids sort by time (the gateway refuses ids far from its clock): newest first across users by the key's
    // file name picks the page; the page itself is ordered by the server's `accepted_at`.
    objects.sort_by(|a, b| {
        let id = |k: &str| k.rsplit('/').next().unwrap_or_default().to_string();
        id(&b.key).cmp(&id(&a.key))
    });
    let mut records = Vec::new();
    for object in objects.into_iter().take(limit) {
        let bytes = gateway
            .store
            .get_bytes(&object.key)
            .await
            .map_err(|e| ApiError::unavailable("read a record", e))?;
        match serde_json::from_slice::<JobRecord>(&bytes) {
            Ok(record) => records.push(super::results::shown(&gateway, &caller, record)),
            Err(e) => {
                tracing::warn!(key = %object.key, error = %e, "skipping an unreadable record")
            }
        }
    }
    records.sort_by(|a, b| {
        b.accepted_at
            .cmp(&a.accepted_at)
            .then_with(|| b.id.cmp(&a.id))
    });
    Ok(Json(History { records }))
}

async fn list_records(
    gateway: &Gateway,
    prefix: &str,
) -> Result<Vec<rai_backends::store::ObjectInfo>, ApiError> {
    gateway
        .store
        .list(prefix)
        .await
        .map_err(|e| ApiError::unavailable("list the records", e))
}

/// `GET /v1/whoami`.
pub async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        user: caller.user,
        team: caller.team,
        role: caller.role,
    })
}

/// `GET /readyz`: whether Redis answers (the queue and store are checked when used).
pub async fn ready(State(gateway): State<Arc<Gateway>>) -> Result<&'static str, ApiError> {
    gateway
        .bus
        .state(&rai_common::job::JobId::new())
        .await
        .map_err(|e| ApiError::unavailable("reach Redis", e))?;
    Ok("ready\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use rai_common::state::WorkerInfo;

    fn worker(queues: &[&str]) -> WorkerInfo {
        WorkerInfo {
            name: "gpu1".into(),
            queues: queues.iter().map(|q| q.to_string()).collect(),
            slots: 1,
            running: vec![],
            gpus: 1,
            version: "0".into(),
            started_at: Utc::now(),
            jobs: vec![],
            beat_at: Some(Utc::now()),
        }
    }

    #[test]
    fn a_queue_no_worker_serves_gets_a_note() {
        assert_eq!(
            note_for(&[worker(&["rai", "rai_amd64"])], "rai_amd64"),
            None
        );
        let note = note_for(
            &[worker(&["rai"]), worker(&["rai", "exclusive"])],
            "rai_amd64",
        )
        .unwrap();
        assert!(
            note.starts_with("No worker serves the queue rai_amd64 right now")
                && note.contains("queues served now: exclusive, rai"),
            "{note}"
        );
        assert!(
            note_for(&[], "rai")
                .unwrap()
                .contains("no worker is running")
        );
    }
}
