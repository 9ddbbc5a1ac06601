//! Shutdown as one small value that every task holds: the first SIGTERM or SIGINT asks the worker to drain (lease
//! nothing new, let running jobs finish within the grace period), a second one (or the end of the grace period)
//! asks it to hand running jobs back to the queue now. SIGHUP asks it to reload the account registry.
//!
//! Two cancellation tokens say how far along shutdown is: `drain` stops the lease loops; `hand_back` reaches every
//! running job through a child token of its own. A [`TaskTracker`] holds the running jobs, so draining is "close the
//! tracker and wait for it".

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The worker's shutdown state, cheap to clone into every task.
#[derive(Clone, Default)]
pub struct Shutdown {
    drain: CancellationToken,
    hand_back: CancellationToken,
    jobs: TaskTracker,
    reload: Arc<Notify>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Stop leasing; running jobs may finish within the grace period.
    pub fn drain(&self) {
        self.drain.cancel();
    }

    /// Hand every running job back to the queue now (implies draining).
    pub fn hand_back_now(&self) {
        self.drain.cancel();
        self.hand_back.cancel();
    }

    pub fn is_draining(&self) -> bool {
        self.drain.is_cancelled()
    }

    /// Resolves once draining has begun.
    pub async fn draining(&self) {
        self.drain.cancelled().await
    }

    /// A token cancelled when draining begins: a job leased ahead of its slot goes back to the queue then.
    pub fn drain_token(&self) -> CancellationToken {
        self.drain.child_token()
    }

    /// Runs a job as a tracked task. The job gets its own token, cancelled when the worker hands jobs back.
    pub fn spawn_job<F, Fut>(&self, job: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.jobs.spawn(job(self.hand_back.child_token()));
    }

    /// How many jobs run now.
    pub fn running(&self) -> usize {
        self.jobs.len()
    }

    /// Waits for the running jobs to end, handing them back once `grace` has passed (or at once, when asked).
    pub async fn wait_for_jobs(&self, grace: Duration) {
        self.jobs.close();
        tokio::select! {
            _ = self.jobs.wait() => return,
            _ = tokio::time::sleep(grace) => {
                tracing::warn!(running = self.jobs.len(), "the grace period is over; handing running jobs back");
            }
            _ = self.hand_back.cancelled() => {}
        }
        self.hand_back.cancel();
        self.jobs.wait().await;
    }

    /// Asks for a registry reload.
    pub fn reload(&self) {
        self.reload.notify_one();
    }

    /// Resolves at the next reload request (one made while nobody waited is kept for the next wait).
    pub async fn reload_requested(&self) {
        self.reload.notified().await
    }

    /// Turns SIGTERM, SIGINT and SIGHUP into the steps above, for as long as the process runs.
    pub fn listen_for_signals(&self) {
        let shutdown = self.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
                signal(SignalKind::hangup()),
            ) else {
                tracing::error!("cannot listen for signals");
                return;
            };
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                    _ = hup.recv() => {
                        shutdown.reload();
                        continue;
                    }
                }
                if shutdown.is_draining() {
                    tracing::warn!("second signal: handing running jobs back now");
                    shutdown.hand_back_now();
                } else {
                    tracing::warn!("signal received: draining");
                    shutdown.drain();
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_finish_within_the_grace_period_or_are_handed_back() {
        let shutdown = Shutdown::new();
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        for (i, takes) in [(0, 10u64), (1, 60_000)] {
            let done = done_tx.clone();
            shutdown.spawn_job(move |hand_back| async move {
                let how = tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(takes)) => "finished",
                    _ = hand_back.cancelled() => "handed back",
                };
                done.send((i, how)).unwrap();
            });
        }
        assert_eq!(shutdown.running(), 2);
        shutdown.drain();
        assert!(shutdown.is_draining());
        shutdown.wait_for_jobs(Duration::from_millis(200)).await;
        let mut seen = vec![done_rx.recv().await.unwrap(), done_rx.recv().await.unwrap()];
        seen.sort();
        assert_eq!(seen, [(0, "finished"), (1, "handed back")]);
    }

    #[tokio::test]
    async fn hand_back_now_cuts_the_grace_period_short() {
        let shutdown = Shutdown::new();
        shutdown.spawn_job(|hand_back| async move { hand_back.cancelled().await });
        let waiting = tokio::spawn({
            let s = shutdown.clone();
            async move { s.wait_for_jobs(Duration::from_secs(3600)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        shutdown.hand_back_now();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("jobs handed back at once")
            .unwrap();
    }

    #[tokio::test]
    async fn a_reload_asked_while_nobody_waits_is_kept() {
        let shutdown = Shutdown::new();
        shutdown.reload();
        tokio::time::timeout(Duration::from_secs(1), shutdown.reload_requested())
            .await
            .expect("the earlier request is kept");
    }
}
