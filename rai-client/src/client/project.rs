//! A project sent as a manifest and the chunks the gateway lacks (issue 30): `POST /v1/projects` declares the
//! manifest under the job id; the plan lists the missing chunks and how they go (signed PUTs of batches of chunks
//! to the gateway, fs store; or presigned PUTs straight to the object store, S3, eight at a time), each taken from
//! the spool (small files', sealed while describing) or read from the project again and sealed, and sent as it
//! comes (memory stays at a few chunks and batches); then
//! `POST .../complete`. The signed job names the manifest as its input.
//!
//! A gateway from before chunked uploads answers 404 to the declaration: [`Client::send_project`] says so with
//! [`ProjectUpload::Unsupported`], and the caller packs and uploads an archive as before.

use std::collections::HashSet;
use std::path::Path;

use futures::StreamExt;
use rai_common::api::{self, ChunkSending, ProjectPlan, ProjectRequest};
use rai_common::errors::ProjectError;
use rai_common::job::{InputObject, JobId};
use rai_common::project::batch::{Batch, Batches, Bodies};
use rai_common::project::{ChunkId, ChunkRef, Manifest, Spool, seal_chunks};
use reqwest::Method;
use sha2::{Digest, Sha256};

use super::upload::Progress;
use super::{Client, ClientError, RequestBody};

/// Chunks sent to presigned links at once.
const PARALLEL_CHUNKS: usize = 8;

/// What came of sending a project.
#[derive(Debug)]
pub enum ProjectUpload {
    /// Sent: the input the signed job names, and what was sent.
    Sent {
        input: InputObject,
        chunks_sent: usize,
        bytes_sent: u64,
    },
    /// The gateway takes no manifests (it is older): upload an archive.
    Unsupported,
}

impl Client {
    /// `POST /v1/projects`: declares `manifest` as job `job`'s input; the plan says which chunks to send and how.
    pub async fn declare_project(
        &self,
        job: &JobId,
        manifest: &Manifest,
        datasets: &[String],
    ) -> Result<ProjectPlan, ClientError> {
        let request = ProjectRequest {
            job: *job,
            manifest: manifest.clone(),
            datasets: datasets.to_vec(),
        };
        let body = serde_json::to_vec(&request).expect("JSON");
        self.send(
            Method::POST,
            api::PROJECTS,
            Some(RequestBody::Json(body)),
            &[],
        )
        .await?
        .json()
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// `POST` to the plan's `complete`: every missing chunk was sent.
    pub async fn complete_project(&self, plan: &ProjectPlan) -> Result<(), ClientError> {
        self.send(
            Method::POST,
            &plan.complete,
            Some(RequestBody::Json(b"{}".to_vec())),
            &[],
        )
        .await
        .map(|_| ())
    }

    /// `PUT` a batch of sealed chunks of job `job`'s project to the gateway (a gateway over a file store takes
    /// chunks itself; it opens and checks each before storing any). The batch's memory goes back to `bodies` once
    /// sent.
    pub async fn put_chunks(
        &self,
        job: &JobId,
        batch: Batch,
        bodies: &Bodies,
    ) -> Result<(), ClientError> {
        let (body, index) = batch.into_signed_body();
        self.send(
            Method::PUT,
            &api::PROJECT_CHUNKS.path(job),
            Some(RequestBody::Chunks {
                body: bytes::Bytes::from_owner(bodies.lend(body)),
                index,
            }),
            &[],
        )
        .await
        .map(|_| ())
    }

    /// Declares `manifest` (of the project at `root`) as job `job`'s input and sends the chunks the gateway lacks:
    /// from `spool` where they were sealed while describing (small files'), the others read from the project again
    /// and sealed as they go. `datasets`: those the build file asks for, which the gateway checks before anything is
    /// sent.
    pub async fn send_project(
        &self,
        job: &JobId,
        root: &Path,
        manifest: &Manifest,
        datasets: &[String],
        spool: Option<std::sync::Arc<Spool>>,
        progress: Progress,
    ) -> Result<ProjectUpload, ClientError> {
        let plan = match self.declare_project(job, manifest, datasets).await {
            Ok(plan) => plan,
            Err(e) if e.status() == Some(reqwest::StatusCode::NOT_FOUND) => {
                return Ok(ProjectUpload::Unsupported);
            }
            Err(e) => return Err(e),
        };
        let sending = match &plan.send {
            ChunkSending::Stream { at_once } => {
                let at_once = (*at_once).clamp(1, PARALLEL_CHUNKS);
                self.send_batches(job, root, manifest, &plan.missing, spool, at_once, progress)
                    .await
            }
            ChunkSending::Presigned { urls } => {
                if urls.len() != plan.missing.len() {
                    return Err(ClientError::Protocol(
                        "the gateway's plan has not one link per missing chunk".into(),
                    ));
                }
                let urls = plan.missing.iter().map(|c| c.id).zip(urls.iter().cloned());
                self.send_presigned(
                    root,
                    manifest,
                    &plan.missing,
                    spool,
                    urls.collect(),
                    progress,
                )
                .await
            }
        };
        let (chunks_sent, bytes_sent) = sending?;
        if chunks_sent != plan.missing.len() {
            return Err(ClientError::ProjectChanged {
                sent: chunks_sent,
                missing: plan.missing.len(),
            });
        }
        self.complete_project(&plan).await?;
        let json = manifest.to_json();
        Ok(ProjectUpload::Sent {
            input: InputObject {
                key: plan.key,
                size: json.len() as u64,
                sha256: hex::encode(Sha256::digest(&json)),
            },
            chunks_sent,
            bytes_sent,
        })
    }

    /// Through the gateway: chunks taken from the spool, then the others read from the project and sealed on a few
    /// blocking threads ([`seal_chunks`]), gathered into batches as they come, handed over one at a time and sent
    /// `at_once` at a time, each batch's memory handed back for the next. Memory holds those batches, the one being
    /// filled and a few chunks. Answers (chunks, sealed bytes) sent.
    #[allow(clippy::too_many_arguments)]
    async fn send_batches(
        &self,
        job: &JobId,
        root: &Path,
        manifest: &Manifest,
        missing: &[ChunkRef],
        spool: Option<std::sync::Arc<Spool>>,
        at_once: usize,
        progress: Progress,
    ) -> Result<(usize, u64), ClientError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(1);
        let (root, manifest, missing) = (root.to_path_buf(), manifest.clone(), missing.to_vec());
        let bodies = Bodies::default();
        let filling = bodies.clone();
        let filler = tokio::task::spawn_blocking(move || {
            let batches = std::sync::Mutex::new(Batches::new(
                |batch| tx.blocking_send(batch).is_ok(),
                &filling,
            ));
            let push = |chunk: &ChunkRef, sealed: &[u8]| {
                let mut batches = batches.lock().unwrap_or_else(|p| p.into_inner());
                batches.push(chunk.id, chunk.size, sealed)
            };
            let Some(wanted) = from_spool(spool.as_deref(), missing, push)? else {
                return Ok(());
            };
            if seal_chunks(&root, &manifest, &wanted, &push)? {
                batches
                    .into_inner()
                    .unwrap_or_else(|p| p.into_inner())
                    .finish();
            }
            Ok(())
        });
        let sends = futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
            .map(|batch| {
                let (progress, bodies) = (progress.clone(), &bodies);
                async move {
                    let (chunks, size) = (batch.ids().len(), batch.size());
                    let sent = batch.body_len() as u64;
                    self.put_chunks(job, batch, bodies).await?;
                    progress(size);
                    Ok((chunks, sent))
                }
            })
            .buffer_unordered(at_once);
        sent_in_all(sends, filler).await
    }

    /// Straight to the object store: one PUT of each sealed chunk to its link, [`PARALLEL_CHUNKS`] at once, chunks
    /// taken from the spool, then the others read from the project and sealed on a few blocking threads
    /// ([`seal_chunks`]) as they come. Answers (chunks, sealed bytes) sent.
    async fn send_presigned(
        &self,
        root: &Path,
        manifest: &Manifest,
        missing: &[ChunkRef],
        spool: Option<std::sync::Arc<Spool>>,
        urls: std::collections::HashMap<ChunkId, String>,
        progress: Progress,
    ) -> Result<(usize, u64), ClientError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(ChunkRef, Vec<u8>)>(PARALLEL_CHUNKS);
        let (root, manifest, missing) = (root.to_path_buf(), manifest.clone(), missing.to_vec());
        let reader = tokio::task::spawn_blocking(move || {
            let send = |chunk: &ChunkRef, sealed: &[u8]| {
                tx.blocking_send((*chunk, sealed.to_vec())).is_ok()
            };
            let Some(wanted) = from_spool(spool.as_deref(), missing, send)? else {
                return Ok(());
            };
            seal_chunks(&root, &manifest, &wanted, &send).map(|_| ())
        });
        let urls = &urls;
        let sends = futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
            .map(move |(chunk, sealed)| {
                let progress = progress.clone();
                async move {
                    let sent = sealed.len() as u64;
                    let url = &urls[&chunk.id];
                    self.put_presigned(url, 0, self.http().put(url).body(sealed))
                        .await?;
                    progress(chunk.size);
                    Ok((1, sent))
                }
            })
            .buffer_unordered(PARALLEL_CHUNKS);
        sent_in_all(sends, reader).await
    }
}

/// Hands each of `missing`'s chunks that `spool` keeps to `each`, sealed (in one buffer, reused from chunk to
/// chunk), and answers the others, to be read from the project; `None` once `each` answered false (whoever takes
/// the chunks stopped, and says why from there).
fn from_spool(
    spool: Option<&Spool>,
    missing: Vec<ChunkRef>,
    each: impl Fn(&ChunkRef, &[u8]) -> bool,
) -> Result<Option<HashSet<ChunkId>>, ProjectError> {
    let mut wanted = HashSet::new();
    let mut sealed = Vec::new();
    for chunk in missing {
        match spool.and_then(|s| s.read_into(&chunk.id, &mut sealed)) {
            Some(Ok(())) => {
                if !each(&chunk, &sealed) {
                    return Ok(None);
                }
            }
            Some(Err(source)) => return Err(ProjectError::Spool(source)),
            None => {
                wanted.insert(chunk.id);
            }
        }
    }
    Ok(Some(wanted))
}

/// The chunks and bytes of every send, once the thread feeding them has ended: its error first, then the first of
/// the sends'.
async fn sent_in_all(
    sends: impl futures::Stream<Item = Result<(usize, u64), ClientError>>,
    feeder: tokio::task::JoinHandle<Result<(), ProjectError>>,
) -> Result<(usize, u64), ClientError> {
    // Taken by value and dropped on return, which closes the channel: a feeder waiting to hand over more stops.
    async fn total(
        sends: impl futures::Stream<Item = Result<(usize, u64), ClientError>>,
    ) -> Result<(usize, u64), ClientError> {
        let mut sends = std::pin::pin!(sends);
        let (mut chunks_sent, mut bytes_sent) = (0, 0);
        while let Some(sent) = sends.next().await {
            let (chunks, bytes) = sent?;
            chunks_sent += chunks;
            bytes_sent += bytes;
        }
        Ok((chunks_sent, bytes_sent))
    }
    let sent = total(sends).await;
    feeder
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))?
        .map_err(ClientError::Project)?;
    sent
}
