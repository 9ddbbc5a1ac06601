//! A job's scores as their viewer may see them: `GET /v1/jobs/{job}/results`, and the filter every answer that
//! carries a job record passes through (`rai history --json` must not show a student a hidden test).
//!
//! The worker keeps the whole `results.json` in the record; what a caller sees is decided here, on the server's
//! clock, from the course file's times (the assignment's due time, and when it publishes its results) and the
//! caller's role from the registry: staff see everything, a student what each test's `visibility` allows now.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use chrono::Utc;
use rai_common::api::JobResults;
use rai_common::course::Assignment;
use rai_common::objects::record_key;
use rai_common::record::JobRecord;
use rai_common::results::{Results, Viewing};

use crate::access::{Access, authorize, job_id};
use crate::auth::Caller;
use crate::{ApiError, Gateway};

/// The course file's assignment a graded job was for, if the course still has it.
fn assignment_of(gateway: &Gateway, record: &JobRecord) -> Option<Assignment> {
    let name = record.assignment.as_deref()?;
    let course = gateway.course.as_ref()?.current();
    course.assignment(name).ok().cloned()
}

/// How `caller` views results of a job of `assignment` now.
fn viewing(caller: &Caller, assignment: Option<&Assignment>) -> Viewing {
    Viewing {
        staff: caller.is_staff(),
        now: Utc::now(),
        // A student's tests shown after the due time wait for their own (extended) due time.
        due: assignment.map(|a| {
            a.deadline(&caller.user, &super::submissions::team_of(caller))
                .due
        }),
        published: assignment.and_then(|a| a.results_publish),
    }
}

/// The part of `record`'s scores `caller` may see now (`None`: none kept, or none to see yet).
pub fn seen(gateway: &Gateway, caller: &Caller, record: &JobRecord) -> Option<Results> {
    let results = record.results.as_ref()?;
    results.seen_by(&viewing(caller, assignment_of(gateway, record).as_ref()))
}

/// `record` with its scores cut to what `caller` may see now.
pub fn shown(gateway: &Gateway, caller: &Caller, mut record: JobRecord) -> JobRecord {
    record.results = seen(gateway, caller, &record);
    record
}

/// `GET /v1/jobs/{job}/results`: the owner, a teammate or staff.
pub async fn get(
    State(gateway): State<Arc<Gateway>>,
    Path(job): Path<String>,
    caller: Caller,
) -> Result<Json<JobResults>, ApiError> {
    let job = job_id(&job)?;
    let owner = authorize(&gateway, &caller, &job, Access::Read).await?;
    let bytes = gateway
        .store
        .get_bytes(&record_key(&owner, &job))
        .await
        .map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                format!("job {job} has not ended yet (its scores come with its end): follow it with `rai logs {job}`"),
            )
        })?;
    let record: JobRecord = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::unavailable("read the job's record", e))?;
    let assignment = assignment_of(&gateway, &record);
    let view = viewing(&caller, assignment.as_ref());
    let (results, note) = match &record.results {
        None => (
            None,
            Some("the job kept no scores (it wrote no readable /build/results.json)".to_string()),
        ),
        Some(all) => match all.seen_by(&view) {
            Some(seen) => (Some(seen), None),
            None => (None, Some(not_yet(assignment.as_ref(), all))),
        },
    };
    Ok(Json(JobResults {
        job,
        assignment: record.assignment,
        results,
        note,
    }))
}

/// Why a student cannot see the scores yet, and when they can.
fn not_yet(assignment: Option<&Assignment>, all: &Results) -> String {
    use rai_common::results::Visibility;
    match (all.visibility, assignment) {
        (Some(Visibility::AfterDueDate), Some(a)) => {
            format!(
                "the scores are shown after {} is due ({})",
                a.name,
                a.local(a.due)
            )
        }
        (Some(Visibility::AfterPublished), Some(a)) => match a.results_publish {
            Some(at) => format!("the scores of {} are published {}", a.name, a.local(at)),
            None => format!(
                "the course has not said when the scores of {} are published",
                a.name
            ),
        },
        _ => "the scores are not shown to students".to_string(),
    }
}
