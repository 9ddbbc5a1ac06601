//! Keeping a running job's lease and claim alive.
//!
//! A queue lease lasts `queue.lease`; the keeper extends it every third of that, and renews the job's claim with
//! it, so a live worker never loses its job and a dead one loses it soon after its lease runs out. When the queue
//! says the lease is lost (another worker may have the message now), the keeper cancels the job's stop token: the
//! job is stopped and handed back rather than run twice at once.

use std::sync::Arc;
use std::time::Duration;

use rai_backends::errors::QueueError;
use rai_backends::queue::{JobQueue, Lease};
use rai_common::JobId;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::context::WorkerContext;

/// A claim outlives one missed renewal (renewals come every third of a lease) but not much more, so a dead
/// worker's job is free again soon after its lease runs out.
pub(super) fn claim_ttl(queue: &dyn JobQueue) -> Duration {
    queue.lease_duration() * 3 / 2
}

/// The task that keeps one job's lease; stopped when dropped.
pub(super) struct LeaseKeeper(JoinHandle<()>);

impl LeaseKeeper {
    /// Starts keeping `lease` of `job`; cancels `stop` if the lease is lost.
    pub fn start(
        ctx: Arc<WorkerContext>,
        queue: Arc<dyn JobQueue>,
        lease: Lease,
        job: JobId,
        stop: CancellationToken,
    ) -> LeaseKeeper {
        LeaseKeeper(tokio::spawn(async move {
            let every = queue.lease_duration() / 3;
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = queue.extend(&lease).await {
                    tracing::error!(job = %job, error = %e, "cannot extend the job's lease");
                    if matches!(e, QueueError::LeaseLost { .. }) {
                        stop.cancel();
                        return;
                    }
                }
                let _ = ctx
                    .bus
                    .claim(&job, &ctx.name, claim_ttl(queue.as_ref()))
                    .await;
            }
        }))
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}
