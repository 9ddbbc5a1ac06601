//! A worker's slots, and the one job each may have ready while its current job runs.
//!
//! A slot is where one job's commands run, with the GPUs it holds. Between two jobs on one slot the GPUs would
//! otherwise idle while the worker leases, fetches, unpacks, checks the image and starts the next container; so,
//! while a slot's job runs, the worker gets the next job ready (`crate::job`'s preparation) and starts its first
//! command the moment the slot frees.
//!
//! Two semaphores of `slots` permits each: a lease loop takes a *place* before it leases, and the leased job, once
//! prepared, waits for a *slot* and gives its place back when it has one. So at most `slots` jobs run and at most
//! `slots` more are prepared. With preparation off (`raid.prepare_next: false`) the lease loop takes the slot itself
//! before leasing, as a worker without preparation does. Either way a job gives its slot back as soon as its
//! commands are over and its container is dead, before `/build` is stored: finishing a job never holds a GPU.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The worker's slots and places.
#[derive(Clone)]
pub struct Slots {
    run: Arc<Semaphore>,
    /// Places for jobs leased ahead of their slot; `None` with preparation off.
    places: Option<Arc<Semaphore>>,
}

/// What a lease loop holds for the job it leases: its slot already, or a place to get ready in.
pub enum Ticket {
    Slot(Slot),
    Place {
        place: OwnedSemaphorePermit,
        run: Arc<Semaphore>,
    },
}

/// One slot, held while a job's commands run; counted busy in `/metrics` while held.
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl Slot {
    fn new(permit: OwnedSemaphorePermit) -> Slot {
        crate::metrics::metrics().slots_busy.inc();
        Slot(permit)
    }

    /// Waits for one of `slots` to free.
    pub async fn acquire(slots: Arc<Semaphore>) -> Slot {
        Slot::new(
            slots
                .acquire_owned()
                .await
                .expect("the semaphore is never closed"),
        )
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        crate::metrics::metrics().slots_busy.dec();
    }
}

impl Slots {
    pub fn new(slots: usize, prepare_next: bool) -> Slots {
        Slots {
            run: Arc::new(Semaphore::new(slots)),
            places: prepare_next.then(|| Arc::new(Semaphore::new(slots))),
        }
    }

    /// Whether a slot is free now (a job leased now would not wait for one).
    pub fn has_free_slot(&self) -> bool {
        self.run.available_permits() > 0
    }

    /// Waits for room to lease one more job.
    pub async fn ticket(&self) -> Ticket {
        match &self.places {
            Some(places) => Ticket::Place {
                place: places
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed"),
                run: self.run.clone(),
            },
            None => Ticket::Slot(Slot::acquire(self.run.clone()).await),
        }
    }
}

impl Ticket {
    /// The job's slot, waiting for one to free; the place (if any) is given back once the slot is held.
    pub async fn slot(self) -> Slot {
        match self {
            Ticket::Slot(slot) => slot,
            Ticket::Place { place, run } => {
                let slot = Slot::acquire(run).await;
                drop(place);
                slot
            }
        }
    }

    /// Whether the job was leased ahead of a free slot.
    pub fn is_ahead(&self) -> bool {
        matches!(self, Ticket::Place { .. })
    }

    /// The slots a job leased ahead waits for (its place stays held meanwhile); `None` for a slot already.
    pub fn slots(&self) -> Option<Arc<Semaphore>> {
        match self {
            Ticket::Slot(_) => None,
            Ticket::Place { run, .. } => Some(run.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_job_runs_and_one_more_gets_ready_per_slot() {
        let slots = Slots::new(1, true);
        let first = slots.ticket().await;
        let running = first.slot().await;
        // The next job may be leased while the first runs ...
        let second = tokio::time::timeout(Duration::from_millis(100), slots.ticket())
            .await
            .expect("a place while the slot is busy");
        assert!(second.is_ahead());
        // ... but not a third.
        assert!(
            tokio::time::timeout(Duration::from_millis(100), slots.ticket())
                .await
                .is_err()
        );
        let waiting = tokio::spawn(second.slot());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the slot is still busy");
        drop(running);
        let _slot = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("the slot freed")
            .unwrap();
        // The second job gave its place back when it got the slot: a third may be leased now.
        assert!(
            tokio::time::timeout(Duration::from_millis(100), slots.ticket())
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn without_preparation_a_job_is_leased_only_with_its_slot() {
        let slots = Slots::new(1, false);
        let first = slots.ticket().await;
        assert!(!first.is_ahead());
        assert!(
            tokio::time::timeout(Duration::from_millis(100), slots.ticket())
                .await
                .is_err()
        );
        drop(first.slot().await);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), slots.ticket())
                .await
                .is_ok()
        );
    }
}
