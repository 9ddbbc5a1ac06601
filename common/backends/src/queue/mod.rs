//! The job queue: where signed job messages wait for a worker.
//!
//! [`JobQueue`] is what the client and worker see; [`RedisQueue`] (Redis Streams, the embedded default) and
//! [`SqsQueue`] (AWS SQS, the cluster setup) implement it with the same contract, checked by one test suite run
//! against both:
//!
//! - a received message is *leased* to its receiver and invisible to everyone else until the lease ends;
//! - [`JobQueue::extend`] renews the lease (a worker calls it while the job runs);
//! - [`JobQueue::ack`] deletes the message for good (only after the job's results are stored);
//! - [`JobQueue::release`] makes it visible again at once (a draining worker hands its job back);
//! - a lease that simply runs out (the worker died) makes the message visible again;
//! - a message delivered more than `max_deliveries` times goes to the dead-letter place instead of being retried
//!   forever;
//! - [`JobQueue::depth`] tells how many messages wait and how many are leased;
//! - messages sent in a *group* ([`JobQueue::send_in_group`], one group per user) are served one at a time per
//!   group, groups in turn: while a group's message is waiting or leased, the group's next one is held back, and it
//!   joins the queue behind every other group's when the first is acked or dead-lettered. A student with one job
//!   therefore waits behind at most one job of each other student. SQS FIFO does this with message groups; the
//!   Redis queue with a holding list per group (see [`RedisQueue`]);
//!   Work conservation (Redis): a receiver with a free slot that finds nothing waiting, while no job leased ahead
//!   waits for a slot either, gets a group's next held message at once; so one student's jobs run side by side on
//!   an idle pool and go back to one at a time when others come;
//! - [`JobQueue::send_low`] messages (regrades) start only on a slot no other message waits for (Redis).
//!
//! Each handle has one lease duration (the config's `queue.lease`); a lease lasts that long from its receipt or
//! its last extension.

mod redis;
mod sqs;

use std::time::Duration;

use async_trait::async_trait;

pub use self::redis::RedisQueue;
pub use self::sqs::{SqsQueue, sqs_dead_letter_name, sqs_queue_name};
use crate::errors::QueueError;

/// A message held by one receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The message's id: stable across redeliveries.
    pub id: String,
    pub body: String,
    /// How many times the message has been delivered, this time included (1 the first time).
    pub deliveries: u32,
    /// The backend's handle for this delivery (SQS receipt handle, Redis stream entry id).
    pub(crate) receipt: String,
    /// The group it was sent in, if any (Redis: whose held messages its ack lets in).
    pub(crate) group: Option<String>,
}

/// A message that was given up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: String,
    pub body: String,
    pub deliveries: u32,
}

/// The largest message either backend accepts (SQS's limit).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A queue of job messages with leases.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// The queue's name.
    fn name(&self) -> &str;

    /// How long a lease lasts.
    fn lease_duration(&self) -> Duration;

    /// Adds a message; returns its id.
    async fn send(&self, body: &str) -> Result<String, QueueError>;

    /// Adds a message in `group` (a user): served after the group's earlier messages are done, in turn with the
    /// other groups (the module's fairness contract). Returns its id, or `held` while it waits behind the group's
    /// earlier message (Redis).
    async fn send_in_group(&self, body: &str, group: &str) -> Result<String, QueueError>;

    /// Adds a message below every other (a regrade batch's job): on Redis it starts only on a slot that no other
    /// message waits for; on SQS it goes in `group` (prefixed `low:`), taking one turn among the groups, so it is
    /// ahead of any student by one message at most. Returns its id, or `held`.
    async fn send_low(&self, body: &str, group: &str) -> Result<String, QueueError>;

    /// Leases up to `max` messages, waiting up to `wait` for the first.
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Lease>, QueueError>;

    /// Leases up to `max` messages for a worker whose slots are all busy, to get them ready meanwhile: never
    /// waits, never borrows a held message, and (Redis) marks each as waiting for a slot until
    /// [`JobQueue::started`], so that no held message is borrowed ahead of it.
    async fn receive_ahead(&self, max: usize) -> Result<Vec<Lease>, QueueError> {
        self.receive(max, Duration::ZERO).await
    }

    /// Says that a message leased by [`JobQueue::receive_ahead`] now holds a slot.
    async fn started(&self, _lease: &Lease) -> Result<(), QueueError> {
        Ok(())
    }

    /// Renews a lease for another lease duration. Fails with [`QueueError::LeaseLost`] when the lease already ran
    /// out and the message may be with someone else.
    async fn extend(&self, lease: &Lease) -> Result<(), QueueError>;

    /// Deletes a leased message for good.
    async fn ack(&self, lease: &Lease) -> Result<(), QueueError>;

    /// Gives a leased message back: visible to every receiver at once.
    async fn release(&self, lease: &Lease) -> Result<(), QueueError>;

    /// Reads (without removing) up to `max` messages from the dead-letter place.
    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError>;

    /// Removes the dead letter `id` (as [`DeadLetter::id`] gives it); whether it was there. Staff requeue a dead
    /// letter by sending its body again first, then removing it, so a crash between the two leaves a copy, never
    /// nothing.
    async fn remove_dead_letter(&self, id: &str) -> Result<bool, QueueError>;

    /// How many messages wait and how many are leased right now (SQS: approximate, as SQS reports it).
    async fn depth(&self) -> Result<Depth, QueueError>;
}

/// What a queue holds: for admins (`raid doctor`) and for checks that nothing was left behind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// Visible, waiting for a worker.
    pub waiting: u64,
    /// Leased to a worker.
    pub leased: u64,
    /// Given up on, in the dead letters: they wait for staff (`rai deadletters`).
    pub dead: u64,
}

/// Checks a body against [`MAX_BODY_BYTES`].
pub(crate) fn check_size(body: &str) -> Result<(), QueueError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(QueueError::TooLarge {
            size: body.len(),
            max: MAX_BODY_BYTES,
        });
    }
    Ok(())
}
