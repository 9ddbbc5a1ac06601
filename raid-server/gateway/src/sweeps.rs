//! A student's sweeps (issue 31): `GET /v1/sweeps/{sweep}` lists a sweep's jobs with their states, and
//! `POST /v1/sweeps/{sweep}/cancel` stops them all. A sweep is the caller's own: its jobs are the ones the gateway
//! took for it (counted at submit, `count_sweep_job`), and each is still checked as a job of the caller's before it
//! is read or cancelled; a sweep of someone else's looks exactly like one that does not exist.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use rai_common::api::{Sweep, SweepJob};

use crate::access::{Access, authorize, job_id};
use crate::auth::Caller;
use crate::{ApiError, Gateway};

/// `GET /v1/sweeps/{sweep}`.
pub async fn status(
    State(gateway): State<Arc<Gateway>>,
    Path(sweep): Path<String>,
    caller: Caller,
) -> Result<Json<Sweep>, ApiError> {
    Ok(Json(jobs(&gateway, &caller, &sweep, Access::Read).await?))
}

/// `POST /v1/sweeps/{sweep}/cancel`: a cancel request for each job of the sweep that has not ended; answers with
/// the jobs as they were.
pub async fn cancel(
    State(gateway): State<Arc<Gateway>>,
    Path(sweep): Path<String>,
    caller: Caller,
) -> Result<Json<Sweep>, ApiError> {
    let found = jobs(&gateway, &caller, &sweep, Access::Write).await?;
    for job in &found.jobs {
        if job.state.status.is_some_and(|s| s.is_final()) {
            continue;
        }
        let id = job_id(&job.job)?;
        gateway
            .bus
            .request_cancel(&id, &caller.user)
            .await
            .map_err(|e| ApiError::unavailable("cancel the sweep's jobs", e))?;
    }
    tracing::info!(sweep = %found.sweep, by = %caller.user, jobs = found.jobs.len(), "sweep cancel requested");
    Ok(Json(found))
}

/// The caller's sweep `sweep`, each job checked for `access`, in the matrix's order (as submitted).
async fn jobs(
    gateway: &Gateway,
    caller: &Caller,
    sweep: &str,
    access: Access,
) -> Result<Sweep, ApiError> {
    let sweep = job_id(sweep)?;
    let ids = gateway
        .bus
        .sweep_jobs(&caller.user, &sweep.to_string())
        .await
        .map_err(|e| ApiError::unavailable("look up the sweep", e))?;
    if ids.is_empty() {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            format!("no sweep {sweep} of yours; check the id (rai submit printed it)"),
        )
        .with_code(rai_common::api::ErrorCode::NoSuchJob));
    }
    let mut jobs = Vec::with_capacity(ids.len());
    for id in ids {
        let job = job_id(&id)?;
        authorize(gateway, caller, &job, access).await?;
        let state = gateway
            .bus
            .state(&job)
            .await
            .map_err(|e| ApiError::unavailable("read the job's state", e))?
            .unwrap_or_default();
        jobs.push(SweepJob { job: id, state });
    }
    // A sweep's jobs are submitted one after another, in the matrix's order.
    jobs.sort_by(|a, b| (a.state.submitted_at, &a.job).cmp(&(b.state.submitted_at, &b.job)));
    Ok(Sweep {
        sweep: sweep.to_string(),
        jobs,
    })
}
