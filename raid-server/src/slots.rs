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

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// The slots themselves: their permits, and a signal each time one is given back.
#[derive(Clone)]
pub struct SlotPool {
    permits: Arc<Semaphore>,
    freed: Arc<Notify>,
}

/// The worker's slots and places.
#[derive(Clone)]
pub struct Slots {
    run: SlotPool,
    /// Places for jobs leased ahead of their slot; `None` with preparation off.
    places: Option<Arc<Semaphore>>,
}

/// What a lease loop holds for the job it leases: its slot already, or a place to get ready in.
pub enum Ticket {
    Slot(Slot),
    Place {
        place: OwnedSemaphorePermit,
        run: SlotPool,
    },
}

/// One slot, held while a job's commands run; counted busy in `/metrics` while held.
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    freed: Arc<Notify>,
}

impl Slot {
    /// Waits for one of `slots` to free.
    async fn acquire(slots: SlotPool) -> Slot {
        let permit = slots
            .permits
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        crate::metrics::metrics().slots_busy.inc();
        Slot {
            permit: Some(permit),
            freed: slots.freed,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        crate::metrics::metrics().slots_busy.dec();
        // The permit first, then the signal: whoever wakes finds the slot free.
        drop(self.permit.take());
        self.freed.notify_waiters();
    }
}

impl Slots {
    pub fn new(slots: usize, prepare_next: bool) -> Slots {
        Slots {
            run: SlotPool {
                permits: Arc::new(Semaphore::new(slots)),
                freed: Arc::new(Notify::new()),
            },
            places: prepare_next.then(|| Arc::new(Semaphore::new(slots))),
        }
    }

    /// Whether a slot is free now (a job leased now would not wait for one).
    pub fn has_free_slot(&self) -> bool {
        self.run.permits.available_permits() > 0
    }

    /// Signalled each time a slot is given back (to every task waiting on it then): a lease loop that polls ahead
    /// waits on it beside its poll interval, so a job queued just after a slot frees is leased at once, not at the
    /// next poll (the hello job's ~100 ms between issue 18 and issue 26).
    pub fn freed(&self) -> Arc<Notify> {
        self.run.freed.clone()
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

    /// The job's slot, as [`Ticket::slot`], unless `other` ends first: then the ticket back (its place still
    /// held) with what `other` gave. The one place-to-slot hand-off, for a job that waits while watching for
    /// reasons to stop waiting.
    pub async fn slot_unless<T>(
        self,
        other: impl std::future::Future<Output = T>,
    ) -> Result<Slot, (Ticket, T)> {
        match self {
            Ticket::Slot(slot) => Ok(slot),
            Ticket::Place { place, run } => {
                tokio::select! {
                    slot = Slot::acquire(run.clone()) => {
                        drop(place);
                        Ok(slot)
                    }
                    given = other => Err((Ticket::Place { place, run }, given)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_slot_given_back_wakes_whoever_listens_from_before() {
        let slots = Slots::new(1, true);
        let running = slots.ticket().await.slot().await;
        assert!(!slots.has_free_slot());
        // The lease loop's order: listen, check, poll, then wait; the slot frees between the check and the wait.
        let freed = slots.freed();
        let woken = freed.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        drop(running);
        tokio::time::timeout(Duration::from_millis(100), woken)
            .await
            .expect("the freed slot wakes the waiting lease loop, not its next poll");
        assert!(slots.has_free_slot());
    }

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
    async fn a_job_that_stops_waiting_keeps_its_place_and_one_that_gets_its_slot_gives_it_back() {
        let slots = Slots::new(1, true);
        let running = slots.ticket().await.slot().await;
        let ahead = slots.ticket().await;
        // Given up before the slot frees: the ticket comes back with why, its place still held.
        let ahead = match ahead
            .slot_unless(tokio::time::sleep(Duration::from_millis(20)))
            .await
        {
            Err((ticket, ())) => ticket,
            Ok(_) => panic!("the slot is busy"),
        };
        assert!(ahead.is_ahead());
        assert!(
            tokio::time::timeout(Duration::from_millis(50), slots.ticket())
                .await
                .is_err(),
            "the place is still held"
        );
        // The slot frees while it waits: it takes the slot and gives its place back.
        let waiting = tokio::spawn(ahead.slot_unless(std::future::pending::<()>()));
        drop(running);
        let slot = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("the slot freed")
            .unwrap();
        assert!(slot.is_ok());
        assert!(
            tokio::time::timeout(Duration::from_millis(100), slots.ticket())
                .await
                .is_ok(),
            "the place was given back"
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
