//! Who may touch which job. Every job id is bound to its owner when the gateway first hears of it (the upload);
//! from then on the owner reads and cancels it, the owner's teammates read it, and course staff (ta, instructor,
//! admin) read and cancel every job. Anyone else gets the same 404 as for an id that does not exist, so job ids
//! cannot be probed.

use rai_common::job::JobId;

use crate::auth::Caller;
use crate::{ApiError, Gateway};

/// What the caller wants to do with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// State, events, artifact.
    Read,
    /// Cancel.
    Write,
}

/// Whether `caller` may `access` a job owned by `owner`.
pub fn allowed(gateway: &Gateway, caller: &Caller, owner: &str, access: Access) -> bool {
    if caller.user == owner || caller.is_staff() {
        return true;
    }
    if access == Access::Write || caller.team.is_empty() {
        return false;
    }
    gateway
        .registry
        .current()
        .get(owner)
        .is_some_and(|o| o.team == caller.team)
}

/// The owner of `job` if `caller` may `access` it; the "no such job" 404 otherwise.
pub async fn authorize(
    gateway: &Gateway,
    caller: &Caller,
    job: &JobId,
    access: Access,
) -> Result<String, ApiError> {
    let owner = gateway
        .bus
        .owner(job)
        .await
        .map_err(|e| ApiError::unavailable("look up the job", e))?
        .ok_or_else(|| ApiError::no_such_job(job))?;
    if allowed(gateway, caller, &owner, access) {
        Ok(owner)
    } else {
        Err(ApiError::no_such_job(job))
    }
}

/// Parses a job id from a path, with a 404 that says what a job id looks like.
pub fn job_id(text: &str) -> Result<JobId, ApiError> {
    text.parse().map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            format!("\"{text}\" is not a job id (26 characters, as `rai submit` prints)"),
        )
    })
}
