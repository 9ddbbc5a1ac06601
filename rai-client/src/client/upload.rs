//! A packed project to its upload: `POST /v1/uploads` declares its size and SHA-256 under the job id, and the
//! gateway's plan says how the bytes go: one signed stream to the gateway (fs store), or parts in parallel straight
//! to the object store through the presigned links the gateway made for this upload alone (S3), then the parts'
//! ETags to the gateway. Memory stays bounded: a part streams from its slice of the file.

use std::path::Path;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use rai_common::api::{self, CompleteUpload, CompletedPart, UploadPlan, UploadRequest};
use rai_common::job::JobId;
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{Client, ClientError, RequestBody};

/// Parts sent at once to the object store.
const PARALLEL_PARTS: usize = 4;

/// Called with the number of bytes just sent.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// The archive file, what it holds, and what it hashes to.
pub struct Archive<'a> {
    pub path: &'a Path,
    pub size: u64,
    /// Hex SHA-256.
    pub sha256: String,
}

impl Client {
    /// Uploads `archive` as job `job`'s project, whose build file asks for `datasets` (the gateway refuses one
    /// the course does not offer before anything is sent).
    pub async fn upload(
        &self,
        job: &JobId,
        archive: &Archive<'_>,
        datasets: &[String],
        progress: Progress,
    ) -> Result<(), ClientError> {
        let request = UploadRequest {
            job: *job,
            size: archive.size,
            sha256: archive.sha256.clone(),
            datasets: datasets.to_vec(),
        };
        let body = serde_json::to_vec(&request).expect("JSON");
        let plan: UploadPlan = self
            .send(
                Method::POST,
                api::UPLOADS,
                Some(RequestBody::Json(body)),
                &[],
            )
            .await?
            .json()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        match plan {
            UploadPlan::Stream { path } => self.stream(&path, archive, progress).await,
            UploadPlan::Parts {
                upload_id,
                part_size,
                urls,
                complete,
            } => {
                let parts = self.parts(archive, part_size, &urls, progress).await?;
                let done = CompleteUpload { upload_id, parts };
                self.send(
                    Method::POST,
                    &complete,
                    Some(RequestBody::Json(serde_json::to_vec(&done).expect("JSON"))),
                    &[],
                )
                .await
                .map(|_| ())
            }
        }
    }

    async fn stream(
        &self,
        path: &str,
        archive: &Archive<'_>,
        progress: Progress,
    ) -> Result<(), ClientError> {
        let body = RequestBody::File {
            path: archive.path.to_path_buf(),
            size: archive.size,
            digest: digest_of(&archive.sha256)?,
            progress,
        };
        self.send(
            Method::PUT,
            path,
            Some(body),
            &[("content-type", "application/zstd".into())],
        )
        .await
        .map(|_| ())
    }

    /// Sends `put`, a PUT to the presigned `url` (part `part` of an upload; 0 for a chunk of a project), and
    /// answers its success; the error names the link without its signature.
    pub(crate) async fn put_presigned(
        &self,
        url: &str,
        part: usize,
        put: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let response = put
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: url.split('?').next().unwrap_or_default().to_string(),
                source,
            })?;
        if !response.status().is_success() {
            return Err(ClientError::PartRefused {
                part,
                status: response.status(),
            });
        }
        Ok(response)
    }

    async fn parts(
        &self,
        archive: &Archive<'_>,
        part_size: u64,
        urls: &[String],
        progress: Progress,
    ) -> Result<Vec<CompletedPart>, ClientError> {
        // Collected first: a stream over a borrowing closure would make the future too general to spawn.
        let sends: Vec<_> = urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                let offset = i as u64 * part_size;
                let len = part_size.min(archive.size.saturating_sub(offset));
                let (path, progress) = (archive.path.to_path_buf(), progress.clone());
                async move {
                    let mut file = open(&path).await?;
                    file.seek(std::io::SeekFrom::Start(offset))
                        .await
                        .map_err(|source| ClientError::Read {
                            path: path.clone(),
                            source,
                        })?;
                    let body = reqwest::Body::wrap_stream(counted(file.take(len), progress));
                    let put = self
                        .http()
                        .put(url)
                        .header(reqwest::header::CONTENT_LENGTH, len);
                    let response = self.put_presigned(url, i + 1, put.body(body)).await?;
                    let etag = response
                        .headers()
                        .get(reqwest::header::ETAG)
                        .and_then(|v| v.to_str().ok())
                        .ok_or_else(|| ClientError::Protocol("a part's answer had no ETag".into()))?
                        .to_string();
                    Ok(CompletedPart {
                        number: i as u32 + 1,
                        etag,
                    })
                }
            })
            .collect();
        let mut parts: Vec<CompletedPart> = futures::stream::iter(sends)
            .buffer_unordered(PARALLEL_PARTS)
            .try_collect()
            .await?;
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }
}

pub(super) async fn open(path: &Path) -> Result<tokio::fs::File, ClientError> {
    tokio::fs::File::open(path)
        .await
        .map_err(|source| ClientError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// The `Content-Digest` of a body whose SHA-256 is `hex`.
fn digest_of(hex: &str) -> Result<String, ClientError> {
    let bytes: [u8; 32] = hex::decode(hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ClientError::Protocol(format!("{hex} is not a SHA-256")))?;
    Ok(rai_common::httpsig::content_digest_of(&bytes))
}

/// A reader as a byte stream that reports each chunk to `progress`.
pub(super) fn counted(
    reader: impl tokio::io::AsyncRead + Send + 'static,
    progress: Progress,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    tokio_util::io::ReaderStream::with_capacity(reader, 256 << 10).inspect_ok(move |chunk| {
        progress(chunk.len() as u64);
    })
}
