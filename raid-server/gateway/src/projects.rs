//! Step 1 of a job's life for a chunked upload (issue 30): the project as a manifest, and only the chunks the
//! owner's store lacks.
//!
//! `POST /v1/projects` binds a new job id to its owner as `POST /v1/uploads` does, checks the manifest as a worker
//! will (paths, links, sizes, caps), stores it as the job's input (`manifests/<user>/<job>.json`, declared with its
//! size and SHA-256 so that the signed job can name it), and answers which chunks are missing from the owner's set
//! of known chunks, with a presigned PUT each (S3) or a route on the gateway (fs). `PUT .../chunks` (fs) takes a
//! batch of sealed chunks the job declared missing, opens each within its declared size and checks its hash before
//! storing any; the store makes them durable together when the upload completes, not one by one.
//! `POST .../complete` checks every missing chunk is stored (S3: its object exists and is no larger than a sealed
//! chunk can be; a worker checks its content on first use) and adds them to the owner's set; only then can the job
//! be submitted. Chunks are never shared between users: the set and the store keys are per user, so the answer
//! tells a student nothing about what anyone else uploaded.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use futures::StreamExt;
use rai_common::api::{self, ChunkSending, ProjectPlan, ProjectRequest};
use rai_common::httpsig;
use rai_common::objects::{chunk_key, manifest_key};
use rai_common::project::{ChunkId, ChunkRef, ManifestLimits, batch, chunker};
use sha2::{Digest, Sha256};

use crate::access::job_id;
use crate::auth::{Caller, SignedJson};
use crate::uploads::{admit, binding_ttl, id_in_time, owned, refuse_if_accepted};
use crate::{ApiError, Gateway};

/// The largest declaration: a manifest of the protocol's most entries, each with a path and a chunk or two.
pub(super) const MAX_DECLARATION: usize = 64 << 20;
/// Store requests at once when a plan or a completion checks many chunks.
const PARALLEL: usize = 16;

/// The caps a manifest is checked against: the course's upload limit on what the files add up to.
pub(super) fn limits(gateway: &Gateway) -> ManifestLimits {
    ManifestLimits {
        max_entries: rai_common::project::manifest::MAX_ENTRIES,
        max_bytes: gateway.config.raid.limits.upload_bytes.0.saturating_mul(4),
        ..ManifestLimits::default()
    }
}

/// `POST /v1/projects`.
pub async fn create(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    SignedJson(request): SignedJson<ProjectRequest>,
) -> Result<Json<ProjectPlan>, ApiError> {
    let summary = request
        .manifest
        .check(&limits(&gateway))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    super::datasets::check(&gateway, request.datasets.iter().map(String::as_str))?;
    let job = request.job;
    id_in_time(&gateway, &job)?;
    let distinct = request.manifest.distinct_chunks();
    let ids: Vec<ChunkId> = distinct.iter().map(|c| c.id).collect();
    let known = gateway
        .bus
        .known_chunks(&caller.user, &ids)
        .await
        .map_err(|e| ApiError::unavailable("look up your chunks", e))?;
    let missing: Vec<ChunkRef> = distinct
        .iter()
        .zip(known)
        .filter(|(_, known)| !known)
        .map(|(c, _)| *c)
        .collect();
    // What this submit sends counts against the upload caps, not what the owner sent before.
    let sending: u64 = missing.iter().map(|c| c.size).sum();
    admit(&gateway, &caller, &job, sending.max(1)).await?;
    let binding = gateway
        .bus
        .bind_owner(&job, &caller.user, binding_ttl(&gateway))
        .await
        .map_err(|e| ApiError::unavailable("take the upload", e))?;
    if binding == rai_backends::events::Binding::Taken {
        return Err(ApiError::conflict(format!(
            "job id {job} is already in use; submit again (rai makes a new id each time)"
        )));
    }
    refuse_if_accepted(&gateway, &job).await?;
    let json = request.manifest.to_json();
    let sha256 = hex::encode(Sha256::digest(&json));
    let key = manifest_key(&caller.user, &job);
    let size = json.len() as u64;
    gateway
        .store
        .put_bytes(&key, json)
        .await
        .map_err(|e| ApiError::unavailable("store the manifest", e))?;
    let ttl = binding_ttl(&gateway);
    gateway
        .bus
        .declare_upload(&job, size, &sha256, ttl)
        .await
        .map_err(|e| ApiError::unavailable("take the upload", e))?;
    gateway
        .bus
        .note_missing_chunks(&job, &missing, ttl)
        .await
        .map_err(|e| ApiError::unavailable("take the upload", e))?;
    let send = if gateway.store.presigns_uploads() {
        let lifetime = gateway.config.gateway.link_lifetime.as_duration();
        let store = gateway.store.clone();
        let user = caller.user.clone();
        // Collected first: a stream over a borrowing closure makes the handler's future too general for axum.
        let signs: Vec<_> = missing
            .iter()
            .map(|c| {
                let (store, key) = (store.clone(), chunk_key(&user, &c.id));
                async move { store.presign_put(&key, lifetime).await }
            })
            .collect();
        let urls: Vec<String> = futures::stream::iter(signs)
            .buffered(PARALLEL)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|e| ApiError::unavailable("start the upload", e))?;
        ChunkSending::Presigned { urls }
    } else {
        ChunkSending::Stream {
            at_once: gateway.config.gateway.uploads.max_chunks_at_once.max(1) as usize,
        }
    };
    tracing::info!(
        job = %job,
        user = %caller.user,
        files = summary.files,
        bytes = summary.bytes,
        chunks = summary.chunks,
        missing = missing.len(),
        missing_bytes = sending,
        "a project was declared"
    );
    Ok(Json(ProjectPlan {
        key,
        missing,
        send,
        complete: api::PROJECT_COMPLETE.path(job),
    }))
}

/// `PUT /v1/projects/{job}/chunks` (fs store): a batch of sealed chunks ([`batch`]) the job declared missing. The
/// body's frames must match their signed index (`api::BATCH_INDEX`; an older client's whole-body `Content-Digest`
/// instead), every chunk in it must be one the job still has to send, and each
/// must open within its declared size to its id; only then is any stored.
pub async fn chunks(
    State(gateway): State<Arc<Gateway>>,
    Path(job): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let job = job_id(&job)?;
    let started = std::time::Instant::now();
    owned(&gateway, &caller, &job).await?;
    let _slot = gateway.chunks.take(&caller.user)?;
    let body = to_bytes(body, batch::max_batch()).await.map_err(|_| {
        ApiError::bad_request(format!(
            "the batch is larger than {} bytes; send at most {} of chunks in one (rai submit does)",
            batch::max_batch(),
            batch::BATCH_BYTES
        ))
    })?;
    let received_at = started.elapsed();
    // Only signed digests reach here (the Caller extractor removed any other): the frames' index of a current
    // client, or the whole body's Content-Digest of an older one.
    let signed = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (index, digest) = (signed(api::BATCH_INDEX), signed("content-digest"));
    // Nothing in the body is acted on before it is known to be the batch that was signed (checked off the async
    // threads, as is every chunk below).
    let framing = body.clone();
    let frames = tokio::task::spawn_blocking(move || {
        let changed = |what: &str| {
            ApiError::bad_request(format!(
                "the batch does not match its signed {what} (changed on the way?); nothing was stored"
            ))
        };
        if index.is_none() && digest.as_deref() != Some(httpsig::content_digest(&framing).as_str()) {
            return Err(changed("Content-Digest"));
        }
        let frames = batch::frames(&framing)
            .map_err(|e| ApiError::bad_request(format!("{e}; nothing was stored")))?;
        if let Some(index) = index
            && index != batch::index_digest(&framing, &frames)
        {
            return Err(changed("index of chunks"));
        }
        Ok(frames)
    })
    .await
    .map_err(|e| ApiError::unavailable("check the chunks", e))??;
    let ids: Vec<ChunkId> = frames.iter().map(|f| f.id).collect();
    let sizes = gateway
        .bus
        .missing_chunk_sizes(&job, &ids)
        .await
        .map_err(|e| ApiError::unavailable("look up the upload", e))?;
    let mut expected = Vec::with_capacity(frames.len());
    for (frame, size) in frames.into_iter().zip(sizes) {
        let Some(size) = size else {
            return Err(ApiError::conflict(format!(
                "chunk {} is not one job {job} has to send (or was sent); declare the project first (rai submit \
                 does); nothing was stored",
                frame.id
            )));
        };
        expected.push((ChunkRef { id: frame.id, size }, frame.sealed));
    }
    let checking = body.clone();
    let checked = tokio::task::spawn_blocking(move || {
        for (chunk, range) in &expected {
            rai_common::project::open(chunk, &checking[range.clone()])
                .map_err(|e| ApiError::bad_request(format!("{e}; nothing was stored")))?;
        }
        Ok::<_, ApiError>(expected)
    })
    .await
    .map_err(|e| ApiError::unavailable("check the chunks", e))??;
    let checked_at = started.elapsed();
    let sent = body.len() as u64;
    // Slices of the body, not copies: a first submit's chunks are the project's gigabyte.
    let objects: Vec<(String, axum::body::Bytes)> = checked
        .into_iter()
        .map(|(chunk, range)| (chunk_key(&caller.user, &chunk.id), body.slice(range)))
        .collect();
    // Synced once when the upload completes (below), not file by file: see `ObjectStore::put_many_unsynced`.
    gateway
        .store
        .put_many_unsynced(objects)
        .await
        .map_err(|e| ApiError::unavailable("store the chunks", e))?;
    tracing::debug!(
        job = %job,
        bytes = sent,
        received_ms = received_at.as_millis() as u64,
        checked_ms = checked_at.as_millis() as u64,
        stored_ms = (started.elapsed() - checked_at).as_millis() as u64,
        "took a batch of chunks"
    );
    crate::metrics::metrics().upload_bytes.inc_by(sent);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/projects/{job}/complete`: every missing chunk is stored (see the module); they join the owner's set.
pub async fn complete(
    State(gateway): State<Arc<Gateway>>,
    Path(job): Path<String>,
    caller: Caller,
    SignedJson(_): SignedJson<serde_json::Value>,
) -> Result<StatusCode, ApiError> {
    let job = job_id(&job)?;
    owned(&gateway, &caller, &job).await?;
    let missing = gateway
        .bus
        .missing_chunks(&job)
        .await
        .map_err(|e| ApiError::unavailable("look up the upload", e))?;
    let bound = chunker::max_sealed() as u64;
    let store = gateway.store.clone();
    let heads: Vec<_> = missing
        .iter()
        .map(|c| {
            let (store, key, id) = (store.clone(), chunk_key(&caller.user, &c.id), c.id);
            async move {
                let head = store.head(&key).await;
                (id, head)
            }
        })
        .collect();
    let checked: Vec<(ChunkId, bool)> = futures::stream::iter(heads)
        .buffer_unordered(PARALLEL)
        .map(|(id, head)| match head {
            Ok(Some(o)) if o.size > 0 && o.size <= bound => Ok((id, true)),
            Ok(_) => Ok((id, false)),
            Err(e) => Err(e),
        })
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::unavailable("check the chunks", e))?;
    let absent: Vec<String> = checked
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(id, _)| id.to_string())
        .collect();
    if !absent.is_empty() {
        return Err(ApiError::conflict(format!(
            "{} of the {} chunks to send did not arrive (whole), {} first; send them, then complete",
            absent.len(),
            missing.len(),
            absent[0]
        )));
    }
    // Durable before the owner's set says they are stored: a later submit trusts the set and does not send them.
    gateway
        .store
        .sync()
        .await
        .map_err(|e| ApiError::unavailable("store the chunks", e))?;
    let ids: Vec<ChunkId> = checked.into_iter().map(|(id, _)| id).collect();
    gateway
        .bus
        .add_chunks(&caller.user, &ids)
        .await
        .map_err(|e| ApiError::unavailable("note your chunks", e))?;
    gateway
        .bus
        .forget_missing_chunks(&job)
        .await
        .map_err(|e| ApiError::unavailable("note your chunks", e))?;
    Ok(StatusCode::NO_CONTENT)
}
