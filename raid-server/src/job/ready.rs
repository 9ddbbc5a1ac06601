//! Step 4 of a job's life, first half: the job made ready to run, and its wait for a slot.
//!
//! Everything a job needs before its first command is done here, while (with `raid.prepare_next`) another job may
//! still hold the slot it will run on ([`crate::slots`]): the upload fetched and unpacked (by the caller), the image
//! present, the GPUs chosen, the container started idle, and the first command's process started and held at a
//! gate (a FIFO it reads before it becomes the command): no command of the job runs before the job has its slot. Then the job waits for the slot, its lease kept alive all the while by the keeper, and goes
//! back to the queue at once when the worker drains or loses the lease, or when it has waited `raid.prepared_wait`
//! (the running job is long; another worker may be free). A cancel request ends it where it waits.
//!
//! The container is started, not only created, and the first command's process too: starting a container costs
//! 150-250 ms on Docker's default runtime and a `docker exec` 40-50 ms, each longer than the whole gap between two
//! jobs that preparing aims at. Until its gate opens the container runs nothing but its keep-alive and a shell
//! blocked on a read, so it uses no GPU and next to no memory.
//!
//! GPUs are fixed when a container is made. A job whose GPUs are free when it gets ready takes them then. One that
//! must wait for them guesses those it will get (the oldest running job's: with one slot, exactly the job it
//! follows, see [`crate::gpu::GpuPool::likely_next`]), makes its container with them and asks the pool for those
//! when it has its slot; a wrong guess (several slots, another job ended first) makes the container again then.

use std::time::Duration;

use rai_common::JobId;
use tokio_util::sync::CancellationToken;

use crate::context::WorkerContext;
use crate::gpu::GpuLease;
use crate::policy::JobLimits;
use crate::sandbox::{GatedCommand, Sandbox};
use crate::slots::{Slot, Ticket};

/// How often a job waiting for its slot checks for a cancel request.
const CANCEL_POLL: Duration = Duration::from_millis(500);

/// A job ready to run its first command.
pub(super) struct Ready {
    pub limits: JobLimits,
    pub image: String,
    /// The started, idle container, made for the GPUs in `made_for`.
    pub sandbox: Sandbox,
    /// The first command, started and held at its gate (`None` if it could not be started ahead).
    pub first: Option<GatedCommand>,
    pub made_for: Vec<String>,
    /// The GPUs, when they were free at preparation and taken then.
    pub gpus: Option<GpuLease>,
}

/// How a job's wait for its slot ended.
pub(super) enum Waited {
    Slot(Slot),
    /// The job goes back to the queue (the worker drains, or the lease was lost or is handed back).
    HandBack(&'static str),
    /// It waited `raid.prepared_wait`: back to the queue, and this place stays taken until a slot frees, so the
    /// same job is not leased straight back here.
    TooLong(Ticket),
    /// Cancelled by its owner or staff (named) while it waited.
    Cancelled(String),
}

/// Counts a job as prepared in `/metrics` while it waits.
struct Counted;

impl Counted {
    fn new() -> Counted {
        crate::metrics::metrics().prepared_jobs.inc();
        Counted
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        crate::metrics::metrics().prepared_jobs.dec();
    }
}

/// Waits for the job's slot (at once when the ticket already is one).
pub(super) async fn wait_for_slot(
    ctx: &WorkerContext,
    job: JobId,
    ticket: Ticket,
    stop: &CancellationToken,
    drain: &CancellationToken,
) -> Waited {
    let Some(slots) = ticket.slots() else {
        // Leased with its slot (preparation off): nothing to wait for.
        return Waited::Slot(ticket.slot().await);
    };
    let _counted = Counted::new();
    let started = tokio::time::Instant::now();
    let max_wait = ctx.config.raid.prepared_wait.as_duration();
    let mut cancel_poll = tokio::time::interval(CANCEL_POLL);
    let slot = Slot::acquire(slots);
    tokio::pin!(slot);
    loop {
        tokio::select! {
            slot = &mut slot => {
                // The place is given back now that the job holds a slot.
                drop(ticket);
                return Waited::Slot(slot);
            }
            _ = drain.cancelled() => return Waited::HandBack("the worker is stopping"),
            _ = stop.cancelled() => return Waited::HandBack("the job's lease was lost"),
            _ = tokio::time::sleep_until(started + max_wait) => {
                tracing::info!(job = %job, waited = ?max_wait, "the slot did not free in time; handing the prepared job back");
                return Waited::TooLong(ticket);
            }
            _ = cancel_poll.tick() => {
                if let Ok(Some(by)) = ctx.bus.cancel_requested(&job).await {
                    return Waited::Cancelled(by);
                }
            }
        }
    }
}
