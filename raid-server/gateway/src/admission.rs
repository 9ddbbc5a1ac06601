//! Step 2 of a job's life at the gateway: a student's signed job admitted, or refused with what to do. One
//! service, which `POST /v1/jobs` calls (and anything else that admits a job would), in steps that each have their
//! function, cheap before expensive (after the first, each a method of the [`Admission`] they share):
//!
//! 1. [`verified`]: the student's own signature, their own name, their own upload or manifest;
//! 2. [`Admission::arrived`]: the upload declared for this id by this user, and stored whole (a manifest's chunks
//!    all sent);
//! 3. [`Admission::as_sweep`]: a sweep's job is one of its matrix's combinations, within the course's size;
//! 4. [`Admission::within_rate`]: the per-minute limit (a sweep counts once);
//! 5. [`Admission::accepted_once`]: the once-only mark, so an id is accepted once (an acceptance that died half-way
//!    is taken over);
//! 6. [`Admission::judged`]: a graded submission against the course file, the queue, the policy, the datasets; then
//!    the course quotas. A refusal from here on takes the mark back, so the job may be submitted again;
//! 7. [`Admission::queued`]: stamped with the gateway's clock, attested with its key, its state written and sent in
//!    its fair-share turn;
//! 8. [`Admission::noted`]: what follows from being queued (the upload's retention, the dashboard's index, the
//!    graded submission's record), each logged when it fails, since the job is queued either way.
//!
//! Over 450 lines: the eight steps of admitting a job, one function each, in order, with their tests.

use rai_common::api::Accepted;
use rai_common::event::JobStatus;
use rai_common::job::{AttestedJob, JobRequest, Owner, SignedJob};
use rai_common::objects::{manifest_key, upload_key};
use rai_common::state::JobState;

use crate::auth::Caller;
use crate::submissions::Judged;
use crate::{ApiError, Gateway};

/// Admits `signed` from `caller`: queued, with the gateway's `accepted_at` and a note for the student, or refused.
pub(super) async fn admit(
    gateway: &Gateway,
    caller: &Caller,
    signed: SignedJob,
) -> Result<Accepted, ApiError> {
    let (request, chunked) = verified(gateway, caller, &signed)?;
    let job = request.id;
    let admission = Admission {
        gateway,
        caller,
        request,
        signed,
        chunked,
        now: gateway.clock.now(),
    };
    let now = admission.now;
    admission.arrived().await?;
    let counts_as_submission = admission.as_sweep().await?;
    admission.within_rate(counts_as_submission).await?;
    admission.accepted_once().await?;
    // After the once-only mark: a client's retry of a submission whose answer was lost gets the conflict of
    // `accepted_once` (which it reads as accepted), not a quota refusal of its own job.
    let admitted = async {
        let admitted = admission.judged().await?;
        super::quotas::check(gateway, caller, &job, now, counts_as_submission).await?;
        Ok::<_, ApiError>(admitted)
    }
    .await;
    let admitted = match admitted {
        Ok(admitted) => admitted,
        Err(refusal) => {
            let _ = gateway.bus.unmark_accepted(&job).await;
            return Err(refusal);
        }
    };
    admission.queued(&admitted).await?;
    tracing::info!(job = %job, user = %caller.user, queue = %admitted.queue_name, assignment = ?admission.request.assignment, "job accepted");
    admission.noted(&admitted).await;
    let mut note = unserved_note(gateway, &admitted.queue_name).await;
    if let Some(g) = admitted.judged.as_ref().map(|j| &j.graded) {
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
    Ok(Accepted {
        job,
        queue: admitted.queue_name,
        accepted_at: now,
        note,
    })
}

/// One job being admitted: who sent it, what it asks, and the gateway's time of its acceptance. Each step after the
/// first is a method that reads what it needs from here.
struct Admission<'a> {
    gateway: &'a Gateway,
    caller: &'a Caller,
    request: JobRequest,
    signed: SignedJob,
    /// Whether its input is a manifest (a chunked upload).
    chunked: bool,
    /// Its acceptance time: the gateway's clock, read once.
    now: chrono::DateTime<chrono::Utc>,
}

/// What judging a job found: the course file's verdict for a graded submission, and the queue it goes to.
struct Admitted {
    judged: Option<Judged>,
    queue_name: String,
    queue: std::sync::Arc<dyn rai_backends::queue::JobQueue>,
}

/// Step 1: the student's own signature on the job (the worker checks it again; no time window here, since the
/// gateway's `accepted_at`, not the client's `created_at`, is the time that counts), in their own name, naming
/// their own upload or manifest. Returns the request and whether its input is a manifest.
fn verified(
    gateway: &Gateway,
    caller: &Caller,
    signed: &SignedJob,
) -> Result<(JobRequest, bool), ApiError> {
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
    Ok((request, chunked))
}

/// Step 2: the id is bound to the caller, its input is the upload declared for it and is stored whole, and a
/// manifest's chunks were all sent.
impl Admission<'_> {
    async fn arrived(&self) -> Result<(), ApiError> {
        let (gateway, caller, request) = (self.gateway, self.caller, &self.request);
        let job = request.id;
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
        if self.chunked {
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
        Ok(())
    }

    /// Step 3: a sweep's job is one of its build file's combinations, within the course's size, never more jobs than
    /// the matrix makes; a build file with a matrix comes only as a sweep. Returns whether the job counts as a
    /// submission against the rate limit: a sweep counts once (its first job), each job against the caps.
    async fn as_sweep(&self) -> Result<bool, ApiError> {
        let (gateway, caller, request) = (self.gateway, self.caller, &self.request);
        let job = request.id;
        match &request.sweep {
            Some(_) if request.assignment.is_some() => Err(ApiError::bad_request(
                "a sweep cannot be a graded submission: submit the setting you chose, without a matrix",
            )),
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
                Ok(seen == 1)
            }
            None if !request.build.matrix.is_empty() => Err(ApiError::bad_request(
                "the build file has a matrix, so it is submitted as a sweep (one job per combination); \
             update rai (rai version) and submit again",
            )),
            None => Ok(true),
        }
    }

    /// Step 4: at most `gateway.submits_per_minute` submissions a minute for a student (staff are not limited).
    async fn within_rate(&self, counts_as_submission: bool) -> Result<(), ApiError> {
        let (gateway, caller, now) = (self.gateway, self.caller, self.now);
        let per_minute = gateway.config.gateway.submits_per_minute;
        if caller.is_staff() || per_minute == 0 || !counts_as_submission {
            return Ok(());
        }
        let count = gateway
            .bus
            .count_submit(&caller.user, now.timestamp() / 60)
            .await
            .map_err(|e| ApiError::unavailable("count submissions", e))?;
        if count > u64::from(per_minute) {
            crate::metrics::metrics().refused("rate");
            return Err(ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "more than {per_minute} submissions in a minute; submit again in {}s",
                    60 - now.timestamp() % 60
                ),
            ));
        }
        Ok(())
    }

    /// Step 5: the once-only mark. The expensive checks come after it: a graded submission's judgement may unpack its
    /// upload, and the same signed job posted again and again (fresh request signatures) once unpacked it every time
    /// (issue 26).
    async fn accepted_once(&self) -> Result<(), ApiError> {
        let (gateway, job, now) = (self.gateway, &self.request.id, self.now);
        let first = gateway
            .bus
            .mark_accepted(job, super::uploads::binding_ttl(gateway))
            .await
            .map_err(|e| ApiError::unavailable("accept the job", e))?;
        if !first && !unfinished_acceptance(gateway, job, now).await? {
            return Err(ApiError::conflict(format!(
                "job {job} was already submitted; a job id is accepted once"
            )));
        }
        Ok(())
    }

    /// Step 6: a graded submission judged against the course file (its deadline, its files, its queue and its build);
    /// the queue served here; an ungraded build against the policy; the datasets the build that runs asks for.
    async fn judged(&self) -> Result<Admitted, ApiError> {
        let (gateway, caller, request, now) = (self.gateway, self.caller, &self.request, self.now);
        let judged = match &request.assignment {
            Some(name) => {
                Some(super::submissions::judge(gateway, caller, request, name, now).await?)
            }
            None => None,
        };
        let queue_name = judged
            .as_ref()
            .map_or_else(|| request.queue.clone(), |j| j.queue.clone());
        let Some(queue) = gateway.queues.get(&queue_name).cloned() else {
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
        super::datasets::check(gateway, build.datasets())?;
        Ok(Admitted {
            judged,
            queue_name,
            queue,
        })
    }

    /// Step 7: the job stamped and attested, its state written, and sent in its fair-share turn. Not queued, the mark
    /// is taken back and it counts against no cap, so it may be submitted again.
    async fn queued(&self, admitted: &Admitted) -> Result<(), ApiError> {
        let (gateway, caller, request, now) = (self.gateway, self.caller, &self.request, self.now);
        let job = request.id;
        let graded = admitted.judged.as_ref().map(|j| j.graded.clone());
        let attested = AttestedJob::attest_graded(
            self.signed.clone(),
            job,
            &Owner {
                user: caller.user.clone(),
                team: caller.team.clone(),
                role: caller.role,
            },
            &admitted.queue_name,
            now,
            graded.clone(),
            &gateway.attestation_key,
        );
        let state = JobState {
            status: Some(JobStatus::Queued),
            user: Some(caller.user.clone()),
            team: Some(caller.team.clone()).filter(|t| !t.is_empty()),
            assignment: graded.as_ref().map(|g| g.assignment.clone()),
            queue: Some(admitted.queue_name.clone()),
            submitted_at: Some(now),
            sweep: request.sweep.as_ref().map(|s| s.id.to_string()),
            combination: request.sweep.as_ref().map(|s| s.combination.label()),
            ..JobState::default()
        };
        let wire = String::from_utf8(attested.to_bytes()).expect("JSON is UTF-8");
        let sent = async {
            gateway.bus.update_state(&job, &state).await?;
            Ok::<_, NotQueued>(
                send_in_turn(
                    gateway,
                    admitted.queue.as_ref(),
                    &wire,
                    &caller.user,
                    &caller.team,
                )
                .await?,
            )
        }
        .await;
        if let Err(e) = sent {
            super::quotas::withdrawn(gateway, caller, &job).await;
            let _ = gateway.bus.unmark_accepted(&job).await;
            return Err(ApiError::unavailable("queue the job", e));
        }
        Ok(())
    }

    /// Step 8: what follows from being queued. An ungraded job's upload may be expired by the store's own rules (a
    /// graded one is kept for the course); the upload is no longer pending; the dashboard indexes the job; a graded
    /// submission keeps the student's signed job, so that staff can run it again (`rai regrade`).
    async fn noted(self, admitted: &Admitted) {
        let (gateway, caller, request, now) = (self.gateway, self.caller, &self.request, self.now);
        let job = request.id;
        let graded = admitted.judged.as_ref().map(|j| &j.graded);
        if graded.is_none()
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
        let assignment = graded.map(|g| g.assignment.as_str());
        if let Err(e) = gateway
            .bus
            .index_job(&job, now, &caller.user, &caller.team, assignment)
            .await
        {
            tracing::warn!(job = %job, error = %e, "cannot add the job to the dashboard's index");
        }
        if let Some(graded) = graded
            && let Err(e) =
                super::submissions::record(gateway, caller, job, graded, self.signed, now).await
        {
            tracing::error!(job = %job, error = %e.message, "cannot record the submission");
        }
    }
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

/// Queues a job of `user` in `team` in its fair-share group (docs/instructor.md, "Fair share"): the queue serves
/// users (or teams) in turn.
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
