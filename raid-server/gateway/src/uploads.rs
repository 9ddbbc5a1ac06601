//! Step 1 of a job's life at the gateway: the project archive. `POST /v1/uploads` binds a new job id to its
//! owner (an id already bound to someone else is refused) and notes the archive's size and SHA-256; then either
//! the gateway presigns one PUT per part of a multipart upload of `uploads/<user>/<job>.tar.zst`, that key only,
//! valid for `gateway.link_lifetime` (S3), or the client streams the body to the gateway, which checks its size
//! and digest as it stores it (fs). Once a job is accepted, its upload can no longer be replaced.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use futures::TryStreamExt;
use rai_backends::events::Binding;
use rai_common::api::{self, CompleteUpload, UploadPlan, UploadRequest};
use rai_common::httpsig;
use rai_common::job::JobId;
use rai_common::objects::upload_key;
use tokio::io::AsyncReadExt;

use crate::access::job_id;
use crate::auth::{Caller, SignedJson};
use crate::{ApiError, Gateway};

/// How long a job id stays bound to its owner: as long as its events and state live.
pub(super) fn binding_ttl(gateway: &Gateway) -> std::time::Duration {
    gateway.config.events.retention.as_duration() + std::time::Duration::from_secs(86_400)
}

/// `POST /v1/uploads`.
pub async fn create(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    SignedJson(request): SignedJson<UploadRequest>,
) -> Result<Json<UploadPlan>, ApiError> {
    let max = gateway.config.raid.limits.upload_bytes.0;
    if request.size == 0 || request.size > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the project archive is {} bytes; the course allows 1 to {max} bytes; leave large data out of the project directory (.raiignore)",
                request.size
            ),
        ));
    }
    if request.sha256.len() != 64 || !request.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request("sha256 must be 64 hex digits"));
    }
    super::datasets::check(&gateway, request.datasets.iter().map(String::as_str))?;
    let job = request.job;
    id_in_time(&gateway, &job)?;
    admit(&gateway, &caller, &job, request.size).await?;
    let binding = gateway
        .bus
        .bind_owner(&job, &caller.user, binding_ttl(&gateway))
        .await
        .map_err(|e| ApiError::unavailable("take the upload", e))?;
    if binding == Binding::Taken {
        return Err(ApiError::conflict(format!(
            "job id {job} is already in use; submit again (rai makes a new id each time)"
        )));
    }
    refuse_if_accepted(&gateway, &job).await?;
    let lifetime = gateway.config.gateway.link_lifetime.as_duration();
    gateway
        .bus
        .declare_upload(
            &job,
            request.size,
            &request.sha256.to_ascii_lowercase(),
            binding_ttl(&gateway),
        )
        .await
        .map_err(|e| ApiError::unavailable("take the upload", e))?;
    let key = upload_key(&caller.user, &job);
    if gateway.store.presigns_uploads() {
        let presigned = gateway
            .store
            .presign_upload(&key, request.size, lifetime)
            .await
            .map_err(|e| ApiError::unavailable("start the upload", e))?;
        Ok(Json(UploadPlan::Parts {
            upload_id: presigned.upload_id,
            part_size: presigned.part_size,
            urls: presigned.part_urls,
            complete: api::UPLOAD_COMPLETE.path(job),
        }))
    } else {
        Ok(Json(UploadPlan::Stream {
            path: api::UPLOAD.path(job),
        }))
    }
}

/// Counts the upload against `caller`'s caps on uploads pending and bytes per day (`gateway.uploads`), or refuses
/// it with a 429 that says when to try again.
pub(super) async fn admit(
    gateway: &Gateway,
    caller: &Caller,
    job: &JobId,
    size: u64,
) -> Result<(), ApiError> {
    use rai_backends::events::uploads::UploadAdmission;
    let limits = &gateway.config.gateway.uploads;
    let now = gateway.clock.now();
    let admission = gateway
        .bus
        .admit_upload(
            &gateway.store_scope,
            &caller.user,
            job,
            size,
            limits.max_pending,
            limits.bytes_per_day.0,
            limits.expire.as_duration(),
            now,
        )
        .await
        .map_err(|e| ApiError::unavailable("take the upload", e))?;
    let refuse = |message: String, at: chrono::DateTime<chrono::Utc>| {
        crate::metrics::metrics().refused("uploads");
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, message)
            .retry_after((at - now).to_std().unwrap_or_default())
    };
    match admission {
        UploadAdmission::Admitted => Ok(()),
        UploadAdmission::TooManyPending {
            pending,
            oldest_expires,
        } => Err(refuse(
            format!(
                "you have {pending} uploads that were started and not submitted, the most one student may; \
                 submit one of them, or try again after {} when the oldest expires",
                oldest_expires.format("%H:%M:%S UTC")
            ),
            oldest_expires,
        )),
        UploadAdmission::TooManyBytes { used } => {
            let tomorrow = (now.date_naive() + chrono::Days::new(1))
                .and_hms_opt(0, 0, 0)
                .expect("midnight exists")
                .and_utc();
            Err(refuse(
                format!(
                    "you uploaded {} today and this project is {}; the course allows {} a day. Try again after \
                     {} (leave large data out of the project directory with .raiignore)",
                    rai_common::units::Bytes(used),
                    rai_common::units::Bytes(size),
                    limits.bytes_per_day,
                    tomorrow.format("%Y-%m-%d %H:%M UTC")
                ),
                tomorrow,
            ))
        }
    }
}

/// How far in the past a new job id's time may be: `rai` makes the id just before it packs and declares the upload.
pub(super) const ID_MAX_AGE: chrono::Duration = chrono::Duration::hours(1);

/// Refuses a job id whose time (a ULID's first 48 bits) is far from the gateway's clock. Ids order job listings
/// before their records are read, and the student chooses theirs: one from the future would pin a row at the top
/// of staff listings for as long as its record lives (issue 26).
pub(super) fn id_in_time(gateway: &Gateway, job: &JobId) -> Result<(), ApiError> {
    let now = gateway.clock.now();
    let skew = chrono::Duration::from_std(gateway.config.gateway.clock_skew.as_duration())
        .unwrap_or_default();
    let made = job.created();
    if made > now + skew || made < now - ID_MAX_AGE {
        return Err(ApiError::bad_request(format!(
            "job id {job} was made at {}, not within {} of the gateway's clock ({}); check your computer's clock, \
             then submit again (rai makes a new id each time)",
            made.format("%Y-%m-%d %H:%M:%S UTC"),
            if made > now {
                "the allowed clock skew"
            } else {
                "an hour"
            },
            now.format("%Y-%m-%d %H:%M:%S UTC")
        )));
    }
    Ok(())
}

pub(super) async fn refuse_if_accepted(gateway: &Gateway, job: &JobId) -> Result<(), ApiError> {
    let state = gateway.job_state(job).await?;
    if state.is_some() {
        return Err(ApiError::conflict(format!(
            "job {job} was already submitted; its upload cannot be replaced"
        )));
    }
    Ok(())
}

/// Whether `caller` owns `job`, which is not submitted yet (else the refusal to answer).
pub(super) async fn owned(gateway: &Gateway, caller: &Caller, job: &JobId) -> Result<(), ApiError> {
    let owner = gateway
        .bus
        .owner(job)
        .await
        .map_err(|e| ApiError::unavailable("look up the upload", e))?;
    if owner.as_deref() != Some(caller.user.as_str()) {
        return Err(ApiError::no_such_job(job));
    }
    refuse_if_accepted(gateway, job).await
}

/// The declared upload of `job`, if `caller` owns it.
async fn declared(
    gateway: &Gateway,
    caller: &Caller,
    job: &JobId,
) -> Result<(u64, String), ApiError> {
    owned(gateway, caller, job).await?;
    gateway
        .bus
        .declared_upload(job)
        .await
        .map_err(|e| ApiError::unavailable("look up the upload", e))?
        .ok_or_else(|| {
            ApiError::conflict(format!(
                "no upload was started for job {job}; POST /v1/uploads first"
            ))
        })
}

/// `PUT /v1/uploads/{job}` (fs store): the archive itself, checked against the declared size and digest while it
/// is stored; a body that does not match is deleted.
pub async fn stream(
    State(gateway): State<Arc<Gateway>>,
    Path(job): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let job = job_id(&job)?;
    let (size, sha256) = declared(&gateway, &caller, &job).await?;
    // Held until the body is stored or dropped: one student cannot hold every upload buffer (issue 26).
    let _slot = gateway.streaming.take(&caller.user)?;
    let expected = hex::decode(&sha256)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(|d| httpsig::content_digest_of(&d));
    let digest = headers.get("content-digest").and_then(|v| v.to_str().ok());
    if expected.as_deref() != digest {
        return Err(ApiError::bad_request(
            "the upload's Content-Digest is not the SHA-256 declared for it",
        ));
    }
    let key = upload_key(&caller.user, &job);
    let reader = tokio_util::io::StreamReader::new(
        body.into_data_stream()
            .map_err(|e| std::io::Error::other(e.to_string())),
    )
    // One byte more than declared is enough to tell a body that is too long.
    .take(size + 1);
    let put = gateway.store.put(&key, Box::pin(reader)).await;
    let put = match put {
        Ok(p) => p,
        Err(e) => {
            let _ = gateway.store.delete(&key).await;
            tracing::warn!(job = %job, error = %e, "an upload failed");
            return Err(ApiError::bad_request(format!(
                "the upload did not arrive whole ({e}); submit again"
            )));
        }
    };
    if put.size != size || put.sha256 != sha256 {
        let _ = gateway.store.delete(&key).await;
        return Err(ApiError::bad_request(format!(
            "the upload is {} bytes with SHA-256 {}, not the {size} bytes and {sha256} declared; submit again",
            put.size, put.sha256
        )));
    }
    crate::metrics::metrics().upload_bytes.inc_by(size);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/uploads/{job}/complete` (S3): the parts' ETags; the upload is finished and its size checked.
pub async fn complete(
    State(gateway): State<Arc<Gateway>>,
    Path(job): Path<String>,
    caller: Caller,
    SignedJson(done): SignedJson<CompleteUpload>,
) -> Result<StatusCode, ApiError> {
    let job = job_id(&job)?;
    let (size, _) = declared(&gateway, &caller, &job).await?;
    let key = upload_key(&caller.user, &job);
    let parts: Vec<(u32, String)> = done.parts.into_iter().map(|p| (p.number, p.etag)).collect();
    gateway
        .store
        .complete_upload(&key, &done.upload_id, &parts)
        .await
        .map_err(|e| {
            ApiError::bad_request(format!(
                "the upload could not be completed ({e}); submit again"
            ))
        })?;
    let stored = gateway
        .store
        .head(&key)
        .await
        .map_err(|e| ApiError::unavailable("check the upload", e))?;
    if stored.as_ref().map(|o| o.size) != Some(size) {
        let _ = gateway.store.delete(&key).await;
        return Err(ApiError::bad_request(format!(
            "the upload is not the {size} bytes declared; submit again"
        )));
    }
    crate::metrics::metrics().upload_bytes.inc_by(size);
    Ok(StatusCode::NO_CONTENT)
}
