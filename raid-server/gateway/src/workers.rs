//! `GET /v1/workers` (staff): every worker's last heartbeat, and whether it is recent. A worker that crashed or
//! lost Redis keeps its last heartbeat for a day, shown as stopped, so that staff see what went missing; one that
//! stopped cleanly removed its own.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use rai_common::api::{WorkerView, Workers};

use crate::auth::Caller;
use crate::{ApiError, Gateway};

pub async fn list(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
) -> Result<Json<Workers>, ApiError> {
    if !caller.is_staff() {
        return Err(ApiError::forbidden(
            "the list of workers is for course staff; ask them how busy the queue is",
        ));
    }
    Ok(Json(workers(&gateway).await?))
}

/// The workers' heartbeats, judged by the gateway's clock.
pub async fn workers(gateway: &Gateway) -> Result<Workers, ApiError> {
    let now = chrono::Utc::now();
    let workers = gateway
        .bus
        .workers()
        .await
        .map_err(|e| ApiError::unavailable("read the workers' heartbeats", e))?
        .into_iter()
        .map(|info| WorkerView {
            alive: info.is_alive(now),
            info,
        })
        .collect();
    Ok(Workers { now, workers })
}
