//! The jobs API: `POST /v1/jobs` hands the student's signed job to [`super::admission`] (step 2 of a job's life at
//! the gateway); the other handlers read a job's state, cancel it, list a user's finished jobs, and say who is
//! asking.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use rai_common::api::{Accepted, History, HistoryQuery, WhoAmI};
use rai_common::job::SignedJob;
use rai_common::record::JobRecord;
use rai_common::state::JobState;

use crate::access::{Access, authorize, job_id};
use crate::auth::{Caller, SignedJson};
use crate::{ApiError, Gateway};

/// `POST /v1/jobs`: the student's [`SignedJob`], admitted or refused ([`super::admission`]).
pub async fn submit(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    SignedJson(signed): SignedJson<SignedJob>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let accepted = super::admission::admit(&gateway, &caller, signed).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
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
    request_cancel(&gateway, &caller, &job_id(&job)?).await?;
    Ok(StatusCode::ACCEPTED)
}

/// A cancel request for `job` in `caller`'s name, if they may cancel it: the API's and the dashboard's.
pub(super) async fn request_cancel(
    gateway: &Gateway,
    caller: &Caller,
    job: &rai_common::job::JobId,
) -> Result<(), ApiError> {
    authorize(gateway, caller, job, Access::Write).await?;
    gateway
        .bus
        .request_cancel(job, &caller.user)
        .await
        .map_err(|e| ApiError::unavailable("cancel the job", e))?;
    tracing::info!(job = %job, by = %caller.user, "cancel requested");
    Ok(())
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
