//! A job's events from the gateway's Server-Sent Events: every event once, in order, to the `end`. When the
//! connection drops (a gateway restarting, a network blip, a Redis failover behind it) the follower reconnects, to
//! the same gateway or the next, with `Last-Event-ID` set to the last event it passed on, so nothing is repeated
//! or missed; it gives up only after `give_up_after` without a working connection.

use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures::StreamExt;
use rai_common::api;
use rai_common::event::Event;
use rai_common::job::JobId;
use reqwest::Method;
use tokio::sync::mpsc;

use super::{Client, ClientError};

/// How long a follower keeps trying to reconnect before it reports [`ClientError::GaveUp`].
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// A job's events, followed live.
pub struct JobEvents {
    rx: mpsc::Receiver<Result<Event, ClientError>>,
    task: tokio::task::JoinHandle<()>,
}

impl JobEvents {
    /// The next event; `None` after the `end` event (or after the error that stopped the follower).
    pub async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        self.rx.recv().await
    }
}

impl Drop for JobEvents {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Client {
    /// Follows `job` from the event after `after` (0: from the start) to its end.
    pub fn follow(&self, job: JobId, after: u64) -> JobEvents {
        self.follow_with(job, after, GIVE_UP_AFTER)
    }

    /// [`Client::follow`], giving up after `give_up_after` without a connection.
    pub fn follow_with(&self, job: JobId, after: u64, give_up_after: Duration) -> JobEvents {
        let (tx, rx) = mpsc::channel(1024);
        let client = self.clone();
        let task =
            tokio::spawn(async move { client.follow_task(job, after, give_up_after, tx).await });
        JobEvents { rx, task }
    }

    async fn follow_task(
        self,
        job: JobId,
        mut last: u64,
        give_up_after: Duration,
        tx: mpsc::Sender<Result<Event, ClientError>>,
    ) {
        let mut down_since: Option<Instant> = None;
        let mut delay = Duration::from_millis(100);
        loop {
            let headers = [
                ("last-event-id", last.to_string()),
                ("accept", "text/event-stream".into()),
            ];
            let failure = match self
                .send(Method::GET, &api::JOB_EVENTS.path(job), None, &headers)
                .await
            {
                // A refusal (no such job, revoked) will not change by retrying.
                Err(e @ ClientError::Refused { .. }) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                Err(e) => e.to_string(),
                Ok(response) => {
                    down_since = None;
                    delay = Duration::from_millis(100);
                    let mut stream = response.bytes_stream().eventsource();
                    let mut why = "the event stream ended".to_string();
                    while let Some(item) = stream.next().await {
                        let message = match item {
                            Ok(m) => m,
                            Err(e) => {
                                why = e.to_string();
                                break;
                            }
                        };
                        let Ok(event) = serde_json::from_str::<Event>(&message.data) else {
                            continue;
                        };
                        if event.seq <= last {
                            continue;
                        }
                        last = event.seq;
                        let end = event.is_end();
                        if tx.send(Ok(event)).await.is_err() || end {
                            return;
                        }
                    }
                    why
                }
            };
            let since = *down_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= give_up_after {
                let _ = tx
                    .send(Err(ClientError::GaveUp {
                        secs: give_up_after.as_secs(),
                        last: failure,
                    }))
                    .await;
                return;
            }
            tracing::debug!(job = %job, last, reason = %failure, "reconnecting to the job's events");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// The events stored so far (`rai logs` without `-f`), without waiting for more.
    pub async fn events_so_far(&self, job: &JobId) -> Result<Vec<Event>, ClientError> {
        let path = format!("{}?live=false", api::JOB_EVENTS.path(job));
        let response = self
            .send(
                Method::GET,
                &path,
                None,
                &[("accept", "text/event-stream".into())],
            )
            .await?;
        let mut stream = response.bytes_stream().eventsource();
        let mut events = Vec::new();
        while let Some(item) = stream.next().await {
            let message = item.map_err(|e| ClientError::Protocol(e.to_string()))?;
            if let Ok(event) = serde_json::from_str::<Event>(&message.data) {
                events.push(event);
            }
        }
        Ok(events)
    }
}
