//! Many followers on one Redis subscription: the gateway's way of following jobs.
//!
//! [`EventBus::follow`] opens a Redis connection per follower, which is fine for one `rai logs -f` but not for a
//! gateway with a thousand students watching their jobs. An [`EventHub`] holds one pattern subscription
//! (`PSUBSCRIBE rai:job:*:events`) and fans each message out to the followers of that job through a broadcast
//! channel; a message for a job nobody follows is dropped without being parsed. Each follower keeps the bus's
//! guarantees the same way [`EventBus::follow`] does: it registers before it replays the history, takes live events
//! whose `seq` is next, and goes back to the history on a gap, on falling behind (a lagged broadcast), when the
//! subscription was re-established (a Redis restart: [`Signal::Resync`]), and after a quiet spell. So a follower
//! sees every event once, in order, with two Redis connections in all (the subscription and the shared
//! multiplexed one that reads histories).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use rai_common::event::Event;
use rai_common::job::JobId;
use tokio::sync::{broadcast, mpsc};

use super::EventBus;
use super::bus::{EventStream, FollowOptions, Replayed, replay};
use crate::errors::EventError;

/// Live messages a follower may fall behind by before it re-reads the history instead. An event holds up to one
/// 64 KiB output batch, so this bounds what a slow follower keeps in the gateway to a few MiB (1,024 let one reader
/// of a job at the log cap hold 64 MiB).
const FOLLOWER_BUFFER: usize = 64;

/// What the subscription tells a job's followers.
#[derive(Debug, Clone)]
enum Signal {
    Event(Arc<Event>),
    /// The subscription was (re)established: anything may have been missed meanwhile.
    Resync,
}

type Followers = Arc<Mutex<HashMap<JobId, broadcast::Sender<Signal>>>>;

/// One Redis subscription shared by every follower in this process.
#[derive(Clone)]
pub struct EventHub {
    bus: EventBus,
    followers: Followers,
    subscription: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for EventHub {
    fn drop(&mut self) {
        if Arc::strong_count(&self.subscription) == 1 {
            self.subscription.abort();
        }
    }
}

/// `rai:job:<id>:events` → the id.
fn job_of(channel: &str) -> Option<JobId> {
    channel
        .strip_prefix("rai:job:")?
        .strip_suffix(":events")?
        .parse()
        .ok()
}

impl EventHub {
    /// Starts the shared subscription on `bus`'s Redis.
    pub fn start(bus: EventBus) -> EventHub {
        let followers: Followers = Arc::default();
        let subscription = tokio::spawn(subscribe(bus.target().clone(), followers.clone()));
        EventHub {
            bus,
            followers,
            subscription: Arc::new(subscription),
        }
    }

    /// Jobs with at least one follower now.
    pub fn followed_jobs(&self) -> usize {
        self.followers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Follows `job` from the event after `after_seq` (0: from the start) until its `end` event.
    pub fn follow(&self, job: JobId, after_seq: u64, opts: FollowOptions) -> EventStream {
        let (tx, rx) = mpsc::channel(FOLLOWER_BUFFER);
        // Registered before the task starts, so nothing published from now on can be missed.
        let live = self
            .followers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(job)
            .or_insert_with(|| broadcast::channel(FOLLOWER_BUFFER).0)
            .subscribe();
        let registration = Registration {
            job,
            live: Some(live),
            followers: self.followers.clone(),
        };
        let bus = self.bus.clone();
        let task =
            tokio::spawn(async move { follow_task(bus, registration, after_seq, opts, tx).await });
        EventStream { rx, task }
    }
}

/// A follower's place in the fan-out; leaving (however the task ends) removes the job's entry once no follower
/// is left.
struct Registration {
    job: JobId,
    live: Option<broadcast::Receiver<Signal>>,
    followers: Followers,
}

impl Drop for Registration {
    fn drop(&mut self) {
        drop(self.live.take());
        let mut followers = self.followers.lock().unwrap_or_else(|p| p.into_inner());
        if followers
            .get(&self.job)
            .is_some_and(|s| s.receiver_count() == 0)
        {
            followers.remove(&self.job);
        }
    }
}

/// The shared subscription: forwards each message to its job's followers, and tells every follower to re-read
/// the history whenever the subscription is (re)made.
async fn subscribe(target: crate::redis_link::RedisTarget, followers: Followers) {
    let pattern = "rai:job:*:events";
    let mut delays = crate::retry::forever();
    loop {
        let subscribed = async {
            let client = target.client()?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(pattern).await?;
            Ok::<_, redis::RedisError>(pubsub)
        }
        .await;
        let mut pubsub = match subscribed {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to job events; retrying");
                tokio::time::sleep(delays.next().unwrap_or(crate::retry::LONGEST)).await;
                continue;
            }
        };
        delays = crate::retry::forever();
        broadcast_all(&followers, Signal::Resync);
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            let Some(job) = job_of(msg.get_channel_name()) else {
                continue;
            };
            let sender = followers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&job)
                .cloned();
            // Parsed only when someone follows the job.
            let Some(sender) = sender else { continue };
            let Ok(payload) = msg.get_payload::<String>() else {
                continue;
            };
            if let Ok(event) = serde_json::from_str::<Event>(&payload) {
                let _ = sender.send(Signal::Event(Arc::new(event)));
            }
        }
        tracing::warn!("the job event subscription dropped; subscribing again");
        broadcast_all(&followers, Signal::Resync);
    }
}

fn broadcast_all(followers: &Followers, signal: Signal) {
    for sender in followers.lock().unwrap_or_else(|p| p.into_inner()).values() {
        let _ = sender.send(signal.clone());
    }
}

/// One follower: the history, then live events, back to the history whenever something may have been missed.
async fn follow_task(
    bus: EventBus,
    mut registration: Registration,
    mut last: u64,
    opts: FollowOptions,
    tx: mpsc::Sender<Result<Event, EventError>>,
) {
    let job = registration.job;
    let mut live = registration.live.take().expect("a new registration");
    let mut conn = bus.connection();
    let mut down_since: Option<tokio::time::Instant> = None;
    let mut delay = Duration::from_millis(100);
    // `true` when the history must be read before trusting live events again.
    let mut behind = true;
    loop {
        if behind {
            match replay(&mut conn, &job, &mut last, &tx).await {
                Ok(Replayed::Ended) | Ok(Replayed::ReceiverGone) => break,
                Ok(Replayed::UpToDate) => {
                    behind = false;
                    down_since = None;
                    delay = Duration::from_millis(100);
                }
                Err(e) => {
                    let since = *down_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= opts.give_up_after {
                        let _ = tx.send(Err(bus.error(e))).await;
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
        }
        match tokio::time::timeout(opts.quiet_check, live.recv()).await {
            Ok(Ok(Signal::Event(event))) => {
                if event.seq <= last {
                    continue;
                }
                if event.seq != last + 1 {
                    behind = true;
                    continue;
                }
                last = event.seq;
                let end = event.is_end();
                if tx.send(Ok((*event).clone())).await.is_err() || end {
                    break;
                }
            }
            // Fell behind the broadcast, or the subscription was remade: the history has what was missed.
            Ok(Ok(Signal::Resync)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                behind = true
            }
            // Cannot happen while this follower is registered; end the stream rather than spin.
            Ok(Err(broadcast::error::RecvError::Closed)) => break,
            // Quiet: cheap insurance against a message lost between Redis and us.
            Err(_) => behind = true,
        }
        if tx.is_closed() {
            break;
        }
    }
    registration.live = Some(live);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_give_their_job() {
        let job = JobId::new();
        assert_eq!(job_of(&format!("rai:job:{job}:events")), Some(job));
        assert_eq!(job_of("rai:job:nonsense:events"), None);
        assert_eq!(job_of(&format!("rai:job:{job}:log")), None);
    }
}
