//! The worker loop: lease jobs while there is room (a free slot, or a place to get a job ready while the slot's
//! job runs: [`crate::slots`]), run each in its own task, keep a heartbeat, reload the registry, and drain on
//! shutdown.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rai_backends::queue::JobQueue;
use rai_common::account::Registry;
use rai_common::state::WorkerInfo;

use crate::context::WorkerContext;
use crate::job;
use crate::shutdown::Shutdown;
use crate::slots::Slots;

/// How long one receive waits for a job before the loop looks at shutdown again.
const RECEIVE_WAIT: Duration = Duration::from_secs(5);
/// How often a worker whose slots are all busy looks for a job to get ready. It never waits in the queue for one:
/// a job that arrives goes to a worker that has a free slot and is waiting, and only one that sits in the queue
/// (every worker busy) is leased ahead.
const AHEAD_POLL: Duration = Duration::from_millis(250);
/// How often this worker looks for job containers of its own that no job holds.
const STRAY_SWEEP_EVERY: Duration = Duration::from_secs(30);
/// How long a heartbeat is kept after it was written.
const HEARTBEAT_KEPT: Duration = Duration::from_secs(24 * 3600);

/// Runs the worker until shutdown completes: leases while there are free slots, then drains (see [`Shutdown`]).
pub async fn serve(ctx: Arc<WorkerContext>, slots: usize, shutdown: Shutdown) {
    remove_leftovers(&ctx).await;
    let raid = &ctx.config.raid;
    let room = Slots::new(slots, raid.prepare_next);
    let running: Running = Arc::default();
    let metrics = crate::metrics::metrics();
    metrics.slots.set(slots as i64);
    metrics.gpus.set(i64::from(ctx.gpus.count()));
    let heart = tokio::spawn(heartbeat(ctx.clone(), slots as u32, running.clone()));
    let reloader = tokio::spawn(reload_registry(ctx.clone(), shutdown.clone()));
    let sweeper = tokio::spawn(sweep_strays(ctx.clone()));
    let names: Vec<&str> = ctx.queues.iter().map(|q| q.name()).collect();
    tracing::info!(
        worker = %ctx.name,
        slots,
        prepare_next = raid.prepare_next,
        queues = ?names,
        gpus = ctx.gpus.count(),
        "serving"
    );
    // One lease loop per queue; all share the slots.
    let loops: Vec<_> = ctx
        .queues
        .iter()
        .map(|queue| {
            let leasing = LeaseLoop {
                ctx: ctx.clone(),
                queue: queue.clone(),
                room: room.clone(),
                shutdown: shutdown.clone(),
                running: running.clone(),
            };
            tokio::spawn(leasing.run())
        })
        .collect();
    for l in loops {
        let _ = l.await;
    }

    // Draining: no new leases. Running jobs get the grace period, then are handed back.
    let grace = ctx.config.raid.shutdown_grace.as_duration();
    tracing::warn!(running = shutdown.running(), grace = ?grace, "draining");
    shutdown.wait_for_jobs(grace).await;
    heart.abort();
    reloader.abort();
    sweeper.abort();
    // A worker that stopped cleanly is gone, not silent: `rai workers` shows only those that stopped beating.
    if let Err(e) = ctx.bus.forget_worker(&ctx.name).await {
        tracing::warn!(error = %e, "cannot remove this worker's heartbeat");
    }
    tracing::info!(
        completed = ctx.completed.load(std::sync::atomic::Ordering::Relaxed),
        "stopped"
    );
}

/// The queue message ids of the jobs this worker holds now (running, finishing, or ready for a slot), for the
/// heartbeat.
type Running = Arc<std::sync::Mutex<Vec<String>>>;

/// Leases jobs from one queue whenever there is room, until shutdown begins.
struct LeaseLoop {
    ctx: Arc<WorkerContext>,
    queue: Arc<dyn JobQueue>,
    room: Slots,
    shutdown: Shutdown,
    running: Running,
}

impl LeaseLoop {
    async fn run(self) {
        let mut delays = rai_backends::retry::forever();
        while !self.shutdown.is_draining() {
            let ticket = tokio::select! {
                t = self.room.ticket() => t,
                _ = self.shutdown.draining() => return,
            };
            // Listening for a freed slot from before the check: one freed after it still wakes the wait below.
            let freed = self.room.freed();
            let slot_freed = freed.notified();
            tokio::pin!(slot_freed);
            slot_freed.as_mut().enable();
            let ahead = ticket.is_ahead() && !self.room.has_free_slot();
            let receive = async {
                if ahead {
                    self.queue.receive_ahead(1).await
                } else {
                    self.queue.receive(1, RECEIVE_WAIT).await
                }
            };
            let leases = tokio::select! {
                r = receive => r,
                _ = self.shutdown.draining() => return,
            };
            let lease = match leases {
                Ok(leases) => {
                    delays = rai_backends::retry::forever();
                    leases.into_iter().next()
                }
                Err(e) => {
                    crate::metrics::metrics().backend_error(&e);
                    tracing::error!(queue = %self.queue.name(), error = %e, "cannot receive jobs; retrying");
                    tokio::time::sleep(delays.next().unwrap_or(rai_backends::retry::LONGEST)).await;
                    continue;
                }
            };
            let Some(lease) = lease else {
                if ahead {
                    drop(ticket);
                    tokio::select! {
                        _ = tokio::time::sleep(AHEAD_POLL) => {}
                        // A slot freed: lease for it now, blocking on the queue, not at the next poll.
                        _ = &mut slot_freed => {}
                        _ = self.shutdown.draining() => return,
                    }
                }
                continue;
            };
            let (ctx, queue, running) =
                (self.ctx.clone(), self.queue.clone(), self.running.clone());
            let drain = self.shutdown.drain_token();
            self.shutdown.spawn_job(move |hand_back| async move {
                let id = lease.id.clone();
                running.lock().expect("never poisoned").push(id.clone());
                let tokens = job::JobTokens { hand_back, drain };
                job::run(ctx, queue, lease, ticket, tokens).await;
                running.lock().expect("never poisoned").retain(|r| *r != id);
            });
        }
    }
}

async fn heartbeat(ctx: Arc<WorkerContext>, slots: u32, running: Running) {
    let started = Utc::now();
    loop {
        let info = WorkerInfo {
            name: ctx.name.clone(),
            queues: ctx.queues.iter().map(|q| q.name().to_string()).collect(),
            slots,
            running: running.lock().expect("never poisoned").clone(),
            gpus: ctx.gpus.count(),
            version: rai_common::VERSION.to_string(),
            started_at: started,
            jobs: ctx.running_jobs.lock().expect("never poisoned").clone(),
            beat_at: Some(Utc::now()),
        };
        // Kept a day after the last beat, so that a worker that stopped beating is seen as such.
        if let Err(e) = ctx.bus.heartbeat(&info, HEARTBEAT_KEPT).await {
            crate::metrics::metrics().backend_error(&e);
            tracing::warn!(error = %e, "cannot write the heartbeat");
        }
        crate::notify::watchdog();
        tokio::time::sleep(WorkerInfo::BEAT_EVERY).await;
    }
}

/// Reloads the registry when its file changes and on SIGHUP; a broken file keeps the previous registry.
async fn reload_registry(ctx: Arc<WorkerContext>, shutdown: Shutdown) {
    let path = ctx.config.raid.registry.clone();
    let mtime = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut seen = mtime(&path);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {
                let now = mtime(&path);
                if now == seen { continue; }
                seen = now;
            }
            _ = shutdown.reload_requested() => {}
        }
        match Registry::load(&path) {
            Ok(r) => {
                tracing::info!(users = r.users.len(), "reloaded the account registry");
                *ctx.registry.write().await = r;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reload the account registry; keeping the previous one")
            }
        }
    }
}

/// Now and then removes this worker's job containers that no job of its holds. The start's clean-up misses one
/// kind: a container Docker was still making for a run of this worker that was killed, which appears after the
/// clean-up. Left alone it would idle forever (its job runs again elsewhere).
async fn sweep_strays(ctx: Arc<WorkerContext>) {
    let label = format!("rai.worker={}", ctx.name);
    loop {
        tokio::time::sleep(STRAY_SWEEP_EVERY).await;
        let held = |job: &str| {
            ctx.held_jobs
                .lock()
                .expect("never poisoned")
                .contains_key(job)
        };
        crate::sandbox::remove_strays(&ctx.docker, &label, held).await;
    }
}

/// Removes the job containers and job directories a crashed run of this worker left behind (their jobs come back
/// through the queue and run again from the start).
async fn remove_leftovers(ctx: &WorkerContext) {
    crate::sandbox::remove_labelled(&ctx.docker, &format!("rai.worker={}", ctx.name)).await;
    let dir = ctx.jobs_dir();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            tracing::warn!(dir = %entry.path().display(), "removing a job directory left by an earlier run");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
