//! The object store on S3 (or anything that speaks its API).
//!
//! Puts stream: an object up to one part (8 MiB) goes up in one request; a larger one as a multipart upload whose
//! next part is read while the current one uploads, so memory stays at two parts whatever the object's size. A
//! failed multipart upload is aborted, leaving nothing behind. Downloads are presigned GET links.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use sha2::{Digest, Sha256};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::{ObjectInfo, ObjectReader, ObjectStore, PutResult, check_key, read_up_to};
use crate::aws::{AwsFailure, error_code};
use crate::errors::StoreError;

/// The key [`S3Store::classify`] is given for errors about the bucket itself.
const BUCKET: &str = "(bucket)";

/// Size of one multipart part (S3's minimum is 5 MiB).
const PART: usize = 8 << 20;

/// An object store in an S3 bucket.
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    endpoint: String,
}

impl S3Store {
    /// Opens `bucket`, checking that it exists and can be reached.
    pub async fn open(
        client: Client,
        bucket: &str,
        endpoint: String,
    ) -> Result<S3Store, StoreError> {
        let store = S3Store {
            client,
            bucket: bucket.to_string(),
            endpoint,
        };
        store
            .client
            .head_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| store.classify(BUCKET, e))?;
        Ok(store)
    }

    /// Opens `bucket` without checking it (for clients whose credentials may not allow HeadBucket).
    pub fn unchecked(client: Client, bucket: &str, endpoint: String) -> S3Store {
        S3Store {
            client,
            bucket: bucket.to_string(),
            endpoint,
        }
    }

    /// What a failed S3 call means for `key` (or [`BUCKET`], for the bucket itself).
    fn classify<E>(&self, key: &str, e: SdkError<E, HttpResponse>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let failure = AwsFailure::of(&e);
        let bucket_missing = error_code(&e) == Some("NoSuchBucket")
            || (key == BUCKET && failure == AwsFailure::NotFound);
        if bucket_missing {
            return StoreError::Missing {
                store: self.describe(),
                what: format!(
                    "bucket \"{}\" does not exist; an admin creates it (see docs/admin.md)",
                    self.bucket
                ),
            };
        }
        let (key, store, source) = (key.to_string(), self.describe(), e.into());
        match failure {
            AwsFailure::NotFound => StoreError::NotFound { key, store },
            AwsFailure::Denied => StoreError::Denied { key, store, source },
            AwsFailure::Unreachable => StoreError::Unreachable { store, source },
            AwsFailure::Other => StoreError::Backend { store, source },
        }
    }

    // Long (about 90 lines): create, the part loop (the next part read while this one uploads), complete, and
    // abort on any failure are one protocol; split, the abort path would be repeated.
    async fn multipart(
        &self,
        key: &str,
        first: Vec<u8>,
        body: &mut ObjectReader,
        hasher: &mut Sha256,
    ) -> Result<u64, StoreError> {
        let upload_id = self.create_upload(key).await?;
        let result = async {
            let mut parts = Vec::new();
            let mut size = 0u64;
            let mut current = first;
            let mut number = 1;
            loop {
                size += current.len() as u64;
                hasher.update(&current);
                let last = current.len() < PART;
                let send = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(ByteStream::from(current))
                    .send();
                // Read the next part while this one uploads.
                let read_next = async {
                    if last {
                        return Ok(Vec::new());
                    }
                    read_up_to(body, PART).await
                };
                let (sent, next) = tokio::join!(send, read_next);
                let sent = sent.map_err(|e| self.classify(key, e))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(sent.e_tag().map(str::to_string))
                        .build(),
                );
                let next = next.map_err(|source| StoreError::Io {
                    key: key.to_string(),
                    source,
                })?;
                if next.is_empty() {
                    break;
                }
                current = next;
                number += 1;
            }
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| self.classify(key, e))?;
            Ok(size)
        }
        .await;
        if result.is_err() {
            self.abort(key, &upload_id).await;
        }
        result
    }

    /// Starts a multipart upload of `key`; returns its id.
    async fn create_upload(&self, key: &str) -> Result<String, StoreError> {
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.classify(key, e))?;
        Ok(upload.upload_id().unwrap_or_default().to_string())
    }

    /// Drops a multipart upload that will not be completed (its parts cost storage until then).
    async fn abort(&self, key: &str, upload_id: &str) {
        let _ = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
    }

    /// How long a presigned link lives.
    fn presigning(&self, expires: Duration) -> Result<PresigningConfig, StoreError> {
        PresigningConfig::expires_in(expires).map_err(|e| StoreError::Backend {
            store: self.describe(),
            source: e.into(),
        })
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    fn describe(&self) -> String {
        format!("s3://{} at {}", self.bucket, self.endpoint)
    }

    async fn put(&self, key: &str, mut body: ObjectReader) -> Result<PutResult, StoreError> {
        check_key(key)?;
        let first = read_up_to(&mut body, PART)
            .await
            .map_err(|source| StoreError::Io {
                key: key.to_string(),
                source,
            })?;
        let n = first.len();
        let mut hasher = Sha256::new();
        let size = if n < PART {
            hasher.update(&first);
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(ByteStream::from(first))
                .send()
                .await
                .map_err(|e| self.classify(key, e))?;
            n as u64
        } else {
            self.multipart(key, first, &mut body, &mut hasher).await?
        };
        Ok(PutResult {
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    async fn get(&self, key: &str) -> Result<ObjectReader, StoreError> {
        check_key(key)?;
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.classify(key, e))?;
        Ok(Box::pin(out.body.into_async_read()))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        check_key(key)?;
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectInfo {
                key: key.to_string(),
                size: out.content_length().unwrap_or(0).max(0) as u64,
                modified: out
                    .last_modified()
                    .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
            })),
            Err(e) => match self.classify(key, e) {
                StoreError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.classify("(list)", e))?;
            for o in page.contents() {
                out.push(ObjectInfo {
                    key: o.key().unwrap_or_default().to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    modified: o
                        .last_modified()
                        .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.classify(key, e))?;
        Ok(())
    }

    async fn mark_expirable(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        let (name, value) = super::EXPIRABLE_TAG;
        let tag = aws_sdk_s3::types::Tag::builder()
            .key(name)
            .value(value)
            .build()
            .expect("a tag with a key and a value builds");
        let tagging = aws_sdk_s3::types::Tagging::builder()
            .tag_set(tag)
            .build()
            .expect("a tag set builds");
        self.client
            .put_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| self.classify(key, e))?;
        Ok(())
    }

    fn presigns_uploads(&self) -> bool {
        true
    }

    async fn presign_upload(
        &self,
        key: &str,
        size: u64,
        expires: Duration,
    ) -> Result<super::PresignedUpload, StoreError> {
        check_key(key)?;
        let part_size = super::part_size_for(size);
        let parts = size.div_ceil(part_size).max(1);
        let config = self.presigning(expires)?;
        let upload_id = self.create_upload(key).await?;
        let mut part_urls = Vec::with_capacity(parts as usize);
        for number in 1..=parts {
            let len = part_size.min(size - (number - 1) * part_size);
            // The length is signed into the link, so a part cannot be larger than the size asked for.
            let presigned = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .part_number(number as i32)
                .content_length(len as i64)
                .presigned(config.clone())
                .await
                .map_err(|e| self.classify(key, e))?;
            part_urls.push(presigned.uri().to_string());
        }
        Ok(super::PresignedUpload {
            upload_id,
            part_size,
            part_urls,
        })
    }

    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<(), StoreError> {
        check_key(key)?;
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|(n, etag)| {
                        CompletedPart::builder()
                            .part_number(*n as i32)
                            .e_tag(etag)
                            .build()
                    })
                    .collect(),
            ))
            .build();
        let done = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .send()
            .await;
        if let Err(e) = done {
            self.abort(key, upload_id).await;
            return Err(self.classify(key, e));
        }
        Ok(())
    }

    async fn presign_put(&self, key: &str, expires: Duration) -> Result<String, StoreError> {
        check_key(key)?;
        let config = self.presigning(expires)?;
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| self.classify(key, e))?;
        Ok(req.uri().to_string())
    }

    async fn download_link(&self, key: &str, expires: Duration) -> Result<String, StoreError> {
        check_key(key)?;
        let config = self.presigning(expires)?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| self.classify(key, e))?;
        Ok(req.uri().to_string())
    }
}
