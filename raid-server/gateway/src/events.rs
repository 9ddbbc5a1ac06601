//! Step 3 as a student sees it: `GET /v1/jobs/{job}/events`, the job's events as Server-Sent Events, each with its
//! `seq` as the SSE `id`. A client that lost its connection reconnects (to this gateway or another) with
//! `Last-Event-ID` and gets every event after it, exactly once, in order, then the live ones; the stream ends after
//! the `end` event. Comments keep an idle connection open through proxies. Once a finished job's log has left Redis
//! (`events.live_retention` after it was stored), its events come from the stored copy, numbered the same.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use rai_backends::events::FollowOptions;
use serde::Deserialize;

use crate::access::{Access, authorize, job_id};
use crate::auth::Caller;
use crate::{ApiError, Gateway};

#[derive(Debug, Default, Deserialize)]
pub struct After {
    /// Events after this `seq` (the same as `Last-Event-ID`, for clients that cannot set headers).
    pub after: Option<u64>,
    /// `false`: only the events stored so far, then the stream ends (`rai logs` without `-f`).
    pub live: Option<bool>,
}

/// The most events one history-only stream sends.
const HISTORY_MAX: usize = 1_000_000;

/// `GET /v1/jobs/{job}/events`.
pub async fn follow(
    State(gateway): State<Arc<Gateway>>,
    Path(job): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    Query(query): Query<After>,
) -> Result<Response, ApiError> {
    let job = job_id(&job)?;
    let owner = authorize(&gateway, &caller, &job, Access::Read).await?;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let after = last_event_id.or(query.after).unwrap_or(0);
    let sse = |event: &rai_common::event::Event| {
        let data = serde_json::to_string(event).expect("an event always serializes");
        Ok::<_, std::convert::Infallible>(SseEvent::default().id(event.seq.to_string()).data(data))
    };
    // A finished job whose log Redis no longer holds: the stored copy, with the same numbering.
    if !gateway.bus.log_is_live(&job).await.unwrap_or(true) {
        let stored = rai_backends::events::archive::read_archived(
            gateway.store.as_ref(),
            &owner,
            &job,
            after,
        )
        .await
        .map_err(|e| ApiError::unavailable("read the job's stored log", e))?;
        if let Some(events) = stored {
            let items: Vec<_> = events.iter().map(sse).collect();
            return Ok(Sse::new(futures::stream::iter(items)).into_response());
        }
    }
    if query.live == Some(false) {
        let history = gateway
            .bus
            .history(&job, after, HISTORY_MAX)
            .await
            .map_err(|e| ApiError::unavailable("read the job's events", e))?;
        let items: Vec<_> = history.iter().map(sse).collect();
        return Ok(Sse::new(futures::stream::iter(items)).into_response());
    }
    // An id whose upload was declared but that was never submitted has no state and never will: following it would
    // wait forever (issue 26). A submitted job's state is written before its submission is answered.
    let state = gateway.job_state(&job).await?;
    if state.is_none() {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            format!(
                "job {job} was never submitted (its upload was started, or its records have expired); submit the \
                 project again with `rai submit`"
            ),
        ));
    }
    // Held as long as the stream: one student cannot hold every connection the gateway has (issue 26).
    let slot = gateway.followers.take(&caller.user)?;
    let events = gateway.hub.follow(job, after, FollowOptions::default());
    let stream = futures::stream::unfold((events, slot), move |(mut events, slot)| async move {
        match events.next().await? {
            Ok(event) => Some((sse(&event), (events, slot))),
            Err(e) => {
                // Redis stayed away: end the stream; the client reconnects with Last-Event-ID.
                tracing::warn!(job = %job, error = %e, "ending an event stream");
                None
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
