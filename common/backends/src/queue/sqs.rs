//! The job queue on AWS SQS: the cluster setup.
//!
//! SQS has leases built in: a received message is invisible for the visibility timeout (our lease), which
//! `ChangeMessageVisibility` extends or (with 0) ends at once. Deliveries are SQS's `ApproximateReceiveCount`, and a
//! redrive policy moves a message to the dead-letter queue after `max_deliveries` receives;
//! [`SqsQueue::create`] sets both queues up that way. Receives long-poll (up to 20 s per call), so an idle worker
//! costs a few requests a minute and a new job is picked up as soon as it arrives.
//!
//! The queues are FIFO queues: the logical queue `rai` is the SQS queue `rai.fifo`, its dead letters go to
//! `rai-dead.fifo`. A standard queue is at-least-once: it may deliver a message twice, and a send whose reply was
//! lost (the SDK retries it) is stored twice. A FIFO queue removes both at the source: every message carries a
//! deduplication id (the SHA-256 of its body, so any retry of the same signed job is dropped for five minutes), and
//! every receive carries a `ReceiveRequestAttemptId`, so a retried receive gets back the same messages instead of
//! leaving them leased to nobody. Each message is its own message group, so FIFO ordering never holds one job
//! behind another (docs/architecture.md, "Design changes").
//!
//! Over 450 lines: one JobQueue implementation: setup, receive and leases share the SDK client.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};

use sha2::{Digest, Sha256};

use super::{DeadLetter, Depth, JobQueue, Lease, check_size};
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityError;
use aws_sdk_sqs::operation::delete_message::DeleteMessageError;

use crate::aws::AwsFailure;
use crate::errors::BoxError;
use crate::errors::QueueError;

/// A job queue on SQS.
pub struct SqsQueue {
    client: Client,
    name: String,
    url: String,
    dead_url: Option<String>,
    endpoint: String,
    lease: Duration,
}

/// The SQS name of the logical queue `name` (`rai` → `rai.fifo`); a name that already ends in `.fifo` is kept.
pub fn sqs_queue_name(name: &str) -> String {
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    format!("{base}.fifo")
}

/// The SQS name of the dead-letter queue of the logical queue `name` (`rai` → `rai-dead.fifo`).
pub fn sqs_dead_letter_name(name: &str) -> String {
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    format!("{base}-dead.fifo")
}

/// The deduplication id and message group of a body: the same body always maps to the same id, so every retry
/// of a send (by the SDK, or by a caller after a timeout) is recognised as a repeat.
fn dedup_id(body: &str) -> String {
    Sha256::digest(body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn lease_secs(lease: Duration) -> i32 {
    lease.as_secs().clamp(1, 12 * 3600) as i32
}

impl SqsQueue {
    /// Makes messages received only to be looked at visible again at once (best effort: otherwise they reappear
    /// when their short visibility timeout ends).
    async fn show_again(&self, url: &str, receipts: Vec<String>) {
        for receipt in receipts {
            let _ = self
                .client
                .change_message_visibility()
                .queue_url(url)
                .receipt_handle(receipt)
                .visibility_timeout(0)
                .send()
                .await;
        }
    }

    /// Leases the next message, long-polling up to `wait` (whole seconds).
    async fn receive_one(&self, wait: Duration) -> Result<Option<Lease>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            // One attempt id per call: the SDK's retries of this call reuse it and get the same messages.
            .receive_request_attempt_id(rai_common::JobId::new().to_string())
            .max_number_of_messages(1)
            // Whole seconds only: round a partial second up rather than spin with short polls.
            .wait_time_seconds(wait.as_millis().div_ceil(1000).min(20) as i32)
            .visibility_timeout(lease_secs(self.lease))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| self.backend(e))?;
        Ok(out.messages().first().map(|m| Lease {
            id: m.message_id().unwrap_or_default().to_string(),
            body: m.body().unwrap_or_default().to_string(),
            deliveries: m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|n| n.parse().ok())
                .unwrap_or(1),
            receipt: m.receipt_handle().unwrap_or_default().to_string(),
            // SQS holds a group's next message back by itself.
            group: None,
        }))
    }

    /// Creates (or finds) the FIFO queue of the logical queue `name` and its dead-letter queue (see
    /// [`sqs_queue_name`]), with a redrive policy after `max_deliveries` receives. Idempotent: running it again with
    /// the same settings changes nothing. The queue's own visibility timeout is left at SQS's default: every receive
    /// sets the lease of this handle.
    pub async fn create(
        client: Client,
        endpoint: String,
        name: &str,
        lease: Duration,
        max_deliveries: u32,
    ) -> Result<Self, QueueError> {
        let fail = |source: BoxError| QueueError::Backend {
            endpoint: endpoint.clone(),
            source,
        };
        let dead = client
            .create_queue()
            .queue_name(sqs_dead_letter_name(name))
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
            .send()
            .await
            .map_err(|e| classify(&endpoint, e))?;
        let dead_url = dead.queue_url().unwrap_or_default().to_string();
        let attrs = client
            .get_queue_attributes()
            .queue_url(&dead_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| fail(e.into()))?;
        let arn = attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| fail("the dead-letter queue has no ARN".into()))?;
        let redrive = format!(
            r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{}"}}"#,
            max_deliveries.max(1)
        );
        let main = client
            .create_queue()
            .queue_name(sqs_queue_name(name))
            .attributes(QueueAttributeName::FifoQueue, "true")
            // High-throughput FIFO: with one group per message, limits apply per group, not per queue.
            .attributes(QueueAttributeName::DeduplicationScope, "messageGroup")
            .attributes(QueueAttributeName::FifoThroughputLimit, "perMessageGroupId")
            .attributes(QueueAttributeName::ReceiveMessageWaitTimeSeconds, "20")
            .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
            .attributes(QueueAttributeName::RedrivePolicy, redrive)
            .send()
            .await
            .map_err(|e| fail(e.into()))?;
        Ok(SqsQueue {
            url: main.queue_url().unwrap_or_default().to_string(),
            dead_url: Some(dead_url),
            client,
            name: name.to_string(),
            endpoint,
            lease,
        })
    }

    /// Opens an existing queue (clients and workers need not be allowed to create queues).
    pub async fn open(
        client: Client,
        endpoint: String,
        name: &str,
        lease: Duration,
    ) -> Result<Self, QueueError> {
        let url = client
            .get_queue_url()
            .queue_name(sqs_queue_name(name))
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_queue_does_not_exist())
                {
                    QueueError::NoSuchQueue {
                        name: sqs_queue_name(name),
                        endpoint: endpoint.clone(),
                    }
                } else {
                    classify(&endpoint, e)
                }
            })?
            .queue_url()
            .unwrap_or_default()
            .to_string();
        let dead_url = client
            .get_queue_url()
            .queue_name(sqs_dead_letter_name(name))
            .send()
            .await
            .ok()
            .and_then(|o| o.queue_url().map(str::to_string));
        Ok(SqsQueue {
            client,
            name: name.to_string(),
            url,
            dead_url,
            endpoint,
            lease,
        })
    }

    fn backend<E>(&self, e: SdkError<E, HttpResponse>) -> QueueError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        classify(&self.endpoint, e)
    }

    /// A receipt handle SQS no longer honours means the lease ran out; `lost` says whether the operation's typed
    /// error is one of those.
    fn lease_error<E>(
        &self,
        lease: &Lease,
        e: SdkError<E, HttpResponse>,
        lost: fn(&E) -> bool,
    ) -> QueueError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if e.as_service_error().is_some_and(lost) {
            QueueError::LeaseLost {
                id: lease.id.clone(),
            }
        } else {
            self.backend(e)
        }
    }
}

/// Unreachable endpoints read differently from refusals: say which.
fn classify<E>(endpoint: &str, e: SdkError<E, HttpResponse>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let endpoint = endpoint.to_string();
    match AwsFailure::of(&e) {
        AwsFailure::Unreachable => QueueError::Unreachable {
            endpoint,
            source: e.into(),
        },
        _ => QueueError::Backend {
            endpoint,
            source: e.into(),
        },
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    fn name(&self) -> &str {
        &self.name
    }

    fn lease_duration(&self) -> Duration {
        self.lease
    }

    async fn send(&self, body: &str) -> Result<String, QueueError> {
        // Each message its own group: nothing orders it behind another.
        self.send_in_group(body, &dedup_id(body)).await
    }

    async fn send_in_group(&self, body: &str, group: &str) -> Result<String, QueueError> {
        check_size(body)?;
        let id = dedup_id(body);
        // SQS limits a group id to 128 characters of a small alphabet: a long or odd user name is hashed.
        let ok = group.len() <= 128
            && group
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        let group = if ok {
            group.to_string()
        } else {
            dedup_id(group)
        };
        let out = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_group_id(&group)
            .message_deduplication_id(&id)
            .send()
            .await
            .map_err(|e| self.backend(e))?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }

    async fn send_low(&self, body: &str, group: &str) -> Result<String, QueueError> {
        // A FIFO queue has no priorities: the batch is one group, one turn among the students'.
        self.send_in_group(body, &format!("low:{group}")).await
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Lease>, QueueError> {
        // One message per call: a FIFO receive of several may return more than one of a group (a user), which
        // would run one user's jobs side by side. With one per call, the next call skips every group that has a
        // message out, so a batch holds at most one per user. Only the first call waits.
        let deadline = Instant::now() + wait;
        let mut leases = Vec::new();
        while leases.len() < max.max(1) {
            let remaining = if leases.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            match self.receive_one(remaining).await? {
                Some(lease) => leases.push(lease),
                None if leases.is_empty() && Instant::now() < deadline => continue,
                None => break,
            }
        }
        Ok(leases)
    }

    async fn extend(&self, lease: &Lease) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(&lease.receipt)
            .visibility_timeout(lease_secs(self.lease))
            .send()
            .await
            .map_err(|e| self.lease_error(lease, e, visibility_lost))?;
        Ok(())
    }

    async fn ack(&self, lease: &Lease) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(&lease.receipt)
            .send()
            .await
            .map_err(|e| self.lease_error(lease, e, delete_lost))?;
        Ok(())
    }

    async fn release(&self, lease: &Lease) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(&lease.receipt)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| self.lease_error(lease, e, visibility_lost))?;
        Ok(())
    }

    async fn depth(&self) -> Result<Depth, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| self.backend(e))?;
        let count = |name: QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(&name))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let dead = match &self.dead_url {
            Some(dead_url) => {
                let out = self
                    .client
                    .get_queue_attributes()
                    .queue_url(dead_url)
                    .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                    .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                    .send()
                    .await
                    .map_err(|e| self.backend(e))?;
                let count = |name: QueueAttributeName| {
                    out.attributes()
                        .and_then(|a| a.get(&name))
                        .and_then(|n| n.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                count(QueueAttributeName::ApproximateNumberOfMessages)
                    + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            }
            None => 0,
        };
        Ok(Depth {
            waiting: count(QueueAttributeName::ApproximateNumberOfMessages),
            leased: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            dead,
        })
    }

    async fn remove_dead_letter(&self, id: &str) -> Result<bool, QueueError> {
        let Some(dead_url) = &self.dead_url else {
            return Ok(false);
        };
        let mut found = false;
        let mut others = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // Receive until the message comes (a receive hides what it returns, so each round sees new ones) or the
        // queue has shown everything; delete it, and make the others visible again at once.
        loop {
            let got = self
                .client
                .receive_message()
                .queue_url(dead_url)
                .max_number_of_messages(10)
                .visibility_timeout(5)
                .wait_time_seconds(0)
                .send()
                .await
                .map_err(|e| self.backend(e))?;
            if got.messages().is_empty() {
                break;
            }
            let mut new = false;
            for m in got.messages() {
                let receipt = m.receipt_handle().unwrap_or_default().to_string();
                let mid = m.message_id().unwrap_or_default();
                new |= seen.insert(mid.to_string());
                if mid == id {
                    self.client
                        .delete_message()
                        .queue_url(dead_url)
                        .receipt_handle(&receipt)
                        .send()
                        .await
                        .map_err(|e| self.backend(e))?;
                    found = true;
                } else {
                    others.push(receipt);
                }
            }
            if found || !new {
                break;
            }
        }
        self.show_again(dead_url, others).await;
        Ok(found)
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let Some(dead_url) = &self.dead_url else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut receipts = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // Peek: each receive hides what it returns for a few seconds, so the loop sees every message once.
        while out.len() < max {
            let got = self
                .client
                .receive_message()
                .queue_url(dead_url)
                .max_number_of_messages((max - out.len()).clamp(1, 10) as i32)
                .visibility_timeout(5)
                .wait_time_seconds(0)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await
                .map_err(|e| self.backend(e))?;
            if got.messages().is_empty() {
                break;
            }
            for m in got.messages() {
                let id = m.message_id().unwrap_or_default().to_string();
                receipts.push(m.receipt_handle().unwrap_or_default().to_string());
                if seen.insert(id.clone()) {
                    out.push(DeadLetter {
                        id,
                        body: m.body().unwrap_or_default().to_string(),
                        deliveries: 0,
                    });
                }
            }
        }
        // Make what was peeked visible again at once.
        self.show_again(dead_url, receipts).await;
        Ok(out)
    }
}

/// Whether a failed visibility change says the lease is gone (the message was received again, or deleted).
fn visibility_lost(e: &ChangeMessageVisibilityError) -> bool {
    e.is_receipt_handle_is_invalid() || e.is_message_not_inflight()
}

/// Whether a failed delete says the lease is gone.
fn delete_lost(e: &DeleteMessageError) -> bool {
    e.is_receipt_handle_is_invalid() || e.is_invalid_id_format()
}
