//! Dead letters: jobs the queue gave up on after workers took them again and again without finishing (a job that
//! crashes its worker, a worker lost mid-job each time). They are not lost: they wait in the queue's dead-letter
//! place for staff, and their owners are told.
//!
//! - `GET /v1/deadletters` (staff): each one with its owner, assignment and why.
//! - `POST /v1/deadletters/{job}/requeue` (staff): sent back to its queue, re-attested by this gateway with
//!   `requeued_at` (its age counts from then, its first acceptance's time and judgement stay), then taken out of the
//!   dead letters: a crash between the two leaves a copy, never nothing.
//! - `POST /v1/deadletters/{job}/drop` (staff): taken out and ended as `error`, saying who dropped it and why; the
//!   owner's follower gets the end, and a record is written, so history and usage count it.
//! - [`tell_owners`], from the gateway's sweep: a job that reaches the dead letters gets its reason in its state and
//!   a `✱` line on its stream, so `rai status` and a waiting `rai submit` say it could not be run.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use rai_backends::queue::{DeadLetter, JobQueue};
use rai_common::api::{DeadLetterView, DeadLetters};
use rai_common::event::{EventBody, JobStatus};
use rai_common::job::{Acceptance, AttestedJob, JobId};
use rai_common::objects::record_key;
use rai_common::record::JobRecord;
use rai_common::state::JobState;

use crate::access::job_id;
use crate::auth::Caller;
use crate::{ApiError, Gateway};

/// The most dead letters read from one queue.
const LISTED: usize = 1000;
/// How every owner's message starts: a state whose reason starts so has been told.
const TOLD: &str = "could not be run: ";

/// The acceptance in a dead letter's message, read without verifying it (for listing; requeue verifies).
fn acceptance(letter: &DeadLetter) -> Option<Acceptance> {
    let env: AttestedJob = serde_json::from_str(&letter.body).ok()?;
    serde_json::from_str(&env.acceptance).ok()
}

/// Why a job is in the dead letters, as its owner and staff read it.
fn reason(letter: &DeadLetter, last: Option<&str>) -> String {
    let times = match letter.deliveries {
        0 => "several times".to_string(),
        n => format!("{n} times"),
    };
    let last = last
        .filter(|r| !r.starts_with(TOLD))
        .map(|r| format!(" (last: {r})"))
        .unwrap_or_default();
    format!(
        "{TOLD}workers took it {times} and none finished it: each stopped or lost it mid-run{last}. Course staff \
         are told and may run it again (rai deadletters)"
    )
}

fn staff_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_staff() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "dead letters are for course staff; `rai status JOB` says what happened to your job",
        ))
    }
}

/// Every queue's dead letters, with their queue.
async fn letters(gateway: &Gateway) -> Result<Vec<(Arc<dyn JobQueue>, DeadLetter)>, ApiError> {
    let mut names: Vec<&String> = gateway.queues.keys().collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let queue = &gateway.queues[name];
        let dead = queue
            .dead_letters(LISTED)
            .await
            .map_err(|e| ApiError::unavailable("read the dead letters", e))?;
        out.extend(dead.into_iter().map(|d| (queue.clone(), d)));
    }
    Ok(out)
}

/// The dead letters, each as staff see it.
pub async fn views(gateway: &Gateway) -> Result<Vec<DeadLetterView>, ApiError> {
    let mut out = Vec::new();
    for (queue, letter) in letters(gateway).await? {
        let a = acceptance(&letter);
        let last = match &a {
            Some(a) => gateway
                .bus
                .state(&a.job)
                .await
                .ok()
                .flatten()
                .and_then(|s| s.reason),
            None => None,
        };
        out.push(DeadLetterView {
            queue: queue.name().to_string(),
            message: letter.id.clone(),
            job: a.as_ref().map(|a| a.job),
            user: a.as_ref().map(|a| a.user.clone()),
            team: a.as_ref().map(|a| a.team.clone()).filter(|t| !t.is_empty()),
            assignment: a
                .as_ref()
                .and_then(|a| a.graded.as_ref().map(|g| g.assignment.clone())),
            accepted_at: a.as_ref().map(|a| a.accepted_at),
            deliveries: letter.deliveries,
            reason: match &a {
                Some(_) => reason(&letter, last.as_deref()),
                None => "the message does not read as a job (drop it)".to_string(),
            },
        });
    }
    Ok(out)
}

/// `GET /v1/deadletters`.
pub async fn list(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
) -> Result<Json<DeadLetters>, ApiError> {
    staff_only(&caller)?;
    Ok(Json(DeadLetters {
        letters: views(&gateway).await?,
    }))
}

/// The dead letter of `job`, with its queue, or a 404 that says where to look.
async fn find(
    gateway: &Gateway,
    job: &JobId,
) -> Result<(Arc<dyn JobQueue>, DeadLetter, Acceptance), ApiError> {
    letters(gateway)
        .await?
        .into_iter()
        .find_map(|(q, d)| {
            let a = acceptance(&d).filter(|a| a.job == *job)?;
            Some((q, d, a))
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("job {job} is not in the dead letters (`rai deadletters` lists them)"),
            )
        })
}

/// Sends the job back to its queue: `POST /v1/deadletters/{job}/requeue`.
pub async fn requeue(
    State(gateway): State<Arc<Gateway>>,
    Path(job): Path<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    staff_only(&caller)?;
    let job = job_id(&job)?;
    let (queue, letter, _) = find(&gateway, &job).await?;
    let mut trusted = Vec::new();
    for text in &gateway.config.raid.gateway_keys {
        trusted.extend(rai_common::account::decode_public_key(text));
    }
    trusted.push(gateway.attestation_key.verifying_key());
    let now = gateway.clock.now();
    let (attested, acceptance) = {
        let registry = gateway.registry.current();
        AttestedJob::requeue(
            letter.body.as_bytes(),
            &registry,
            &trusted,
            now,
            &gateway.attestation_key,
        )
        .map_err(|e| {
            ApiError::conflict(format!(
                "job {job} cannot be sent again: {e}; drop it (`rai deadletters --drop {job}`)"
            ))
        })?
    };
    let wire = String::from_utf8(attested.to_bytes()).expect("JSON is UTF-8");
    gateway
        .bus
        .update_state(
            &job,
            &JobState {
                status: Some(JobStatus::Queued),
                reason: Some(format!(
                    "sent back to the queue by {} at {now}",
                    caller.user
                )),
                ..JobState::default()
            },
        )
        .await
        .map_err(|e| ApiError::unavailable("update the job's state", e))?;
    super::admission::send_in_turn(
        &gateway,
        queue.as_ref(),
        &wire,
        &acceptance.user,
        &acceptance.team,
    )
    .await
    .map_err(|e| ApiError::unavailable("queue the job again", e))?;
    queue
        .remove_dead_letter(&letter.id)
        .await
        .map_err(|e| ApiError::unavailable("take the job out of the dead letters", e))?;
    if let Ok(mut p) = gateway.bus.publisher(job).await {
        let _ = p
            .publish(&[EventBody::System {
                data: format!(
                    "✱ Course staff sent the job back to the queue ({}).",
                    caller.user
                ),
            }])
            .await;
    }
    tracing::info!(%job, by = %caller.user, "requeued from the dead letters");
    Ok(StatusCode::ACCEPTED)
}

/// Ends the job as `error`: `POST /v1/deadletters/{job}/drop`.
pub async fn drop(
    State(gateway): State<Arc<Gateway>>,
    Path(job): Path<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    staff_only(&caller)?;
    let job = job_id(&job)?;
    let (queue, letter, a) = find(&gateway, &job).await?;
    let last = gateway
        .bus
        .state(&job)
        .await
        .ok()
        .flatten()
        .and_then(|s| s.reason);
    let why = format!(
        "dropped by {} from the dead letters: {}",
        caller.user,
        reason(&letter, last.as_deref()).trim_start_matches(TOLD)
    );
    let now = Utc::now();
    let record = JobRecord {
        id: job.to_string(),
        user: a.user.clone(),
        team: a.team.clone(),
        queue: a.queue.clone(),
        worker: String::new(),
        status: JobStatus::Error,
        exit_code: None,
        reason: Some(why.clone()),
        image: String::new(),
        accepted_at: a.accepted_at,
        started_at: now,
        finished_at: now,
        output_key: None,
        output_truncated: false,
        assignment: a.graded.as_ref().map(|g| g.assignment.clone()),
        late: a.graded.as_ref().is_some_and(|g| g.late),
        commands: Vec::new(),
        gpus: Vec::new(),
        gpu_use: Vec::new(),
        results: None,
        regrade_of: a
            .graded
            .as_ref()
            .and_then(|g| g.regrade_of)
            .map(|j| j.to_string()),
        // The letter keeps the acceptance, not the signed request: a dropped sweep job is listed on its own.
        sweep: None,
        combination: None,
    };
    // The record and the end first, then out of the dead letters: a crash between leaves it listed, to drop again.
    let bytes = serde_json::to_vec(&record).expect("a record serializes");
    gateway
        .store
        .put_bytes(&record_key(&a.user, &job), bytes)
        .await
        .map_err(|e| ApiError::unavailable("write the job's record", e))?;
    gateway
        .bus
        .update_state(
            &job,
            &JobState {
                status: Some(JobStatus::Error),
                finished_at: Some(now),
                reason: Some(why.clone()),
                ..JobState::default()
            },
        )
        .await
        .map_err(|e| ApiError::unavailable("update the job's state", e))?;
    gateway
        .bus
        .mark_done(&job)
        .await
        .map_err(|e| ApiError::unavailable("mark the job done", e))?;
    let mut p = gateway
        .bus
        .publisher(job)
        .await
        .map_err(|e| ApiError::unavailable("end the job's stream", e))?;
    p.publish(&[EventBody::End {
        status: JobStatus::Error,
        exit_code: None,
        reason: Some(why),
    }])
    .await
    .map_err(|e| ApiError::unavailable("end the job's stream", e))?;
    queue
        .remove_dead_letter(&letter.id)
        .await
        .map_err(|e| ApiError::unavailable("take the job out of the dead letters", e))?;
    tracing::info!(%job, by = %caller.user, "dropped from the dead letters");
    Ok(StatusCode::OK)
}

/// Tells the owner of each job newly in the dead letters: its state's reason, and a `✱` line on its stream.
pub async fn tell_owners(gateway: &Gateway) -> Result<usize, ApiError> {
    let mut told = 0;
    for (_, letter) in letters(gateway).await? {
        let Some(a) = acceptance(&letter) else {
            continue;
        };
        let state = gateway
            .bus
            .state(&a.job)
            .await
            .map_err(|e| ApiError::unavailable("read a job's state", e))?;
        let last = state.as_ref().and_then(|s| s.reason.clone());
        if last.as_deref().is_some_and(|r| r.starts_with(TOLD))
            || state
                .and_then(|s| s.status)
                .is_some_and(JobStatus::is_final)
        {
            continue;
        }
        let why = reason(&letter, last.as_deref());
        gateway
            .bus
            .update_state(
                &a.job,
                &JobState {
                    reason: Some(why.clone()),
                    ..JobState::default()
                },
            )
            .await
            .map_err(|e| ApiError::unavailable("update a job's state", e))?;
        if let Ok(mut p) = gateway.bus.publisher(a.job).await {
            let _ = p
                .publish(&[EventBody::System {
                    data: format!("✱ This job {why}."),
                }])
                .await;
        }
        tracing::warn!(job = %a.job, user = %a.user, "a job is in the dead letters; its owner is told");
        told += 1;
    }
    Ok(told)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_says_how_often_and_what_to_do() {
        let letter = DeadLetter {
            id: "m".into(),
            body: String::new(),
            deliveries: 3,
        };
        let r = reason(&letter, Some("handed back: the worker is shutting down"));
        assert_eq!(
            r,
            "could not be run: workers took it 3 times and none finished it: each stopped or lost it mid-run (last: \
             handed back: the worker is shutting down). Course staff are told and may run it again (rai deadletters)"
        );
        // Told once: the reason does not nest.
        assert_eq!(reason(&letter, Some(&r)), reason(&letter, None));
        assert!(acceptance(&letter).is_none());
    }
}
