//! Step 6 as a student sees it: `GET /v1/jobs/{job}/artifact`, the job's stored `/build`. From S3 it is a
//! redirect to a presigned link valid for `gateway.link_lifetime` (the bytes never pass through the gateway);
//! from an fs store the gateway streams the file.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use rai_common::objects::output_key;

use crate::access::{Access, authorize, job_id};
use crate::auth::Caller;
use crate::{ApiError, Gateway};

/// `GET /v1/jobs/{job}/artifact`.
pub async fn download(
    State(gateway): State<Arc<Gateway>>,
    Path(job): Path<String>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let job = job_id(&job)?;
    let owner = authorize(&gateway, &caller, &job, Access::Read).await?;
    let key = output_key(&owner, &job);
    let info = gateway
        .store
        .head(&key)
        .await
        .map_err(|e| ApiError::unavailable("look up the job's /build", e))?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("job {job} has no stored /build (it has not finished, wrote nothing, or it expired)"),
            )
        })?;
    if gateway.store.presigns_uploads() {
        let link = gateway
            .store
            .download_link(&key, gateway.config.gateway.link_lifetime.as_duration())
            .await
            .map_err(|e| ApiError::unavailable("make a download link", e))?;
        return Ok(Redirect::temporary(&link).into_response());
    }
    let reader = gateway
        .store
        .get(&key)
        .await
        .map_err(|e| ApiError::unavailable("read the job's /build", e))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/zstd".to_string()),
            (header::CONTENT_LENGTH, info.size.to_string()),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(reader)),
    )
        .into_response())
}
