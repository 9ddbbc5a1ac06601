//! Regrades: `POST /v1/regrades` (staff) runs each team's counting submission of an assignment again (or every
//! submission, or the named teams'), from its stored upload, with the course file's build file of now: the grader
//! was fixed, and every student should be graded by the fixed one.
//!
//! A regrade is the student's own signed job (kept in the submission's record when it was accepted) attested again
//! by the gateway under a new job id, with `regrade_of` naming the original: the worker checks the student's
//! signature and runs the original's upload, so nothing a student did not submit can be graded as theirs. The
//! original's record stays; the regrade gets its own record and submission record, which point to it, and the
//! listings join the two ([`super::submissions`]). Regrades go to the queue below every student's job
//! ([`rai_backends::queue::JobQueue::send_low`]): a batch of 300 never keeps a student waiting for a free slot.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use rai_common::api::{RegradeItem, RegradeRequest, Regrades, SubmissionRecord};
use rai_common::event::JobStatus;
use rai_common::job::{AttestedJob, Graded, JobId, Owner};
use rai_common::objects::submission_key;
use rai_common::state::JobState;

use crate::auth::{Caller, SignedJson};
use crate::{ApiError, Gateway};

/// The most submissions one request regrades.
const MOST: usize = 5000;

/// `POST /v1/regrades`.
pub async fn start(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    SignedJson(ask): SignedJson<RegradeRequest>,
) -> Result<Json<Regrades>, ApiError> {
    if !caller.is_staff() {
        return Err(ApiError::forbidden("regrades are for course staff"));
    }
    let course = gateway.course.as_ref().ok_or_else(|| {
        ApiError::bad_request("this course has no assignments (the gateway has no course file)")
    })?;
    let a = course.current().assignment(&ask.assignment).cloned()?;
    let listed = super::submissions::list(
        State(gateway.clone()),
        caller.clone(),
        axum::extract::Query(rai_common::api::SubmissionsQuery {
            assignment: Some(a.name.clone()),
            team: None,
        }),
    )
    .await?
    .0
    .submissions;
    let originals: Vec<_> = listed
        .iter()
        .filter(|s| s.record.regrade_of.is_none() && (ask.all_submissions || s.counts))
        .filter(|s| ask.teams.is_empty() || ask.teams.contains(&s.record.team))
        .take(MOST)
        .collect();
    let mut items = Vec::new();
    for team in &ask.teams {
        if !originals.iter().any(|s| &s.record.team == team) {
            items.push(RegradeItem {
                team: team.clone(),
                original: None,
                job: None,
                refused: Some(format!("team {team} has no submission for {}", a.name)),
            });
        }
    }
    let queue_name = a
        .queue
        .clone()
        .unwrap_or_else(|| gateway.config.gateway.queues[0].clone());
    let Some(queue) = gateway.queues.get(&queue_name) else {
        return Err(ApiError::bad_request(format!(
            "the course file sends {} to the queue \"{queue_name}\", which this gateway does not serve",
            a.name
        )));
    };
    let now = gateway.clock.now();
    for s in originals {
        let original = &s.record;
        let refuse = |why: String| RegradeItem {
            team: original.team.clone(),
            original: Some(original.job),
            job: None,
            refused: Some(why),
        };
        let Some(signed) = original.signed.clone() else {
            items.push(refuse(format!(
                "job {} was submitted before regrades were kept; it cannot be run again",
                original.job
            )));
            continue;
        };
        // The student's signature, checked again now: a revoked student's work is not run for them.
        let verified = signed.verify_signature(&gateway.registry.current());
        let request = match verified {
            Ok(r) if r.id == original.job => r,
            Ok(_) => {
                items.push(refuse(format!(
                    "job {}'s record holds another job",
                    original.job
                )));
                continue;
            }
            Err(e) => {
                items.push(refuse(format!(
                    "job {} cannot be verified: {e}",
                    original.job
                )));
                continue;
            }
        };
        match gateway.store.head(&request.input.key).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                items.push(refuse(format!(
                    "the upload of job {} is gone (the store keeps graded uploads until the course file's \
                     keep_submissions_until)",
                    original.job
                )));
                continue;
            }
            Err(e) => return Err(ApiError::unavailable("find the upload", e)),
        }
        let account = gateway.registry.current().get(&original.user).cloned();
        let Some(account) = account.filter(|a| a.revoked.is_none()) else {
            items.push(refuse(format!(
                "{} is no longer in the course's registry (or is revoked): their job cannot be verified",
                original.user
            )));
            continue;
        };
        let job = JobId::new();
        let graded = Graded {
            assignment: a.name.clone(),
            late: original.late,
            build: a.build.clone(),
            results_required: a.results_required,
            regrade_of: Some(original.job),
        };
        let attested = AttestedJob::attest_graded(
            signed,
            job,
            &Owner {
                user: account.username.clone(),
                team: account.team.clone(),
                role: account.role,
            },
            &queue_name,
            now,
            Some(graded),
            &gateway.attestation_key,
        );
        let queued = async {
            gateway
                .bus
                .bind_owner(
                    &job,
                    &account.username,
                    super::uploads::binding_ttl(&gateway),
                )
                .await
                .map_err(|e| ApiError::unavailable("bind the regrade to its student", e))?;
            gateway
                .bus
                .update_state(
                    &job,
                    &JobState {
                        status: Some(JobStatus::Queued),
                        user: Some(account.username.clone()),
                        team: Some(account.team.clone()).filter(|t| !t.is_empty()),
                        assignment: Some(a.name.clone()),
                        queue: Some(queue_name.clone()),
                        submitted_at: Some(now),
                        reason: Some(format!("a regrade of {} by {}", original.job, caller.user)),
                        ..JobState::default()
                    },
                )
                .await
                .map_err(|e| ApiError::unavailable("record the regrade", e))?;
            let record = SubmissionRecord {
                job,
                assignment: a.name.clone(),
                team: original.team.clone(),
                user: original.user.clone(),
                accepted_at: now,
                late: original.late,
                signed: None,
                regrade_of: Some(original.job),
            };
            gateway
                .store
                .put_bytes(
                    &submission_key(&a.name, &original.team, &job),
                    serde_json::to_vec(&record).expect("a submission record serializes"),
                )
                .await
                .map_err(|e| ApiError::unavailable("record the regrade", e))?;
            let wire = String::from_utf8(attested.to_bytes()).expect("JSON is UTF-8");
            queue
                .send_low(&wire, &format!("regrade:{}", a.name))
                .await
                .map_err(|e| ApiError::unavailable("queue the regrade", e))?;
            let _ = gateway
                .bus
                .index_job(&job, now, &account.username, &account.team, Some(&a.name))
                .await;
            Ok::<_, ApiError>(())
        };
        match queued.await {
            Ok(()) => items.push(RegradeItem {
                team: original.team.clone(),
                original: Some(original.job),
                job: Some(job),
                refused: None,
            }),
            Err(e) => items.push(refuse(e.message)),
        }
    }
    tracing::info!(assignment = %a.name, by = %caller.user, queued = items.iter().filter(|i| i.job.is_some()).count(), "regrades queued");
    Ok(Json(Regrades { items }))
}
