//! The worker loop: lease jobs while there are free slots, run each in its own task, keep a heartbeat, reload the
//! registry, and drain on shutdown.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rai_common::account::Registry;
use rai_common::events::state::WorkerInfo;
use tokio::sync::{Semaphore, watch};

use crate::job::{self, Interrupt, WorkerContext};
use crate::shutdown::Phase;

/// Runs the worker until shutdown completes. `phase` drives shutdown; `reload` asks for a registry reload.
pub async fn serve(
    ctx: Arc<WorkerContext>,
    slots: usize,
    mut phase: watch::Receiver<Phase>,
    reload: watch::Receiver<u64>,
) {
    remove_leftovers(&ctx).await;
    let permits = Arc::new(Semaphore::new(slots));
    let (interrupt_tx, interrupt_rx) = watch::channel(Interrupt::None);
    let running: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let heart = tokio::spawn(heartbeat(ctx.clone(), slots as u32, running.clone()));
    let reloader = tokio::spawn(reload_registry(ctx.clone(), reload));
    let jobs = Arc::new(tokio::sync::Mutex::new(tokio::task::JoinSet::new()));
    let names: Vec<&str> = ctx.queues.iter().map(|q| q.name()).collect();
    tracing::info!(worker = %ctx.name, slots, queues = ?names, gpus = ctx.gpus.count(), "serving");
    // One lease loop per queue; all share the slots.
    let mut loops = Vec::new();
    for queue in ctx.queues.clone() {
        loops.push(tokio::spawn(lease_loop(
            ctx.clone(),
            queue,
            permits.clone(),
            phase.clone(),
            interrupt_rx.clone(),
            running.clone(),
            jobs.clone(),
        )));
    }
    for l in loops {
        let _ = l.await;
    }
    let mut jobs = std::mem::take(&mut *jobs.lock().await);

    // Draining: no new leases. Running jobs get the grace period, then are handed back.
    let grace = ctx.config.raid.shutdown_grace.as_duration();
    tracing::warn!(running = jobs.len(), grace = ?grace, "draining");
    let deadline = tokio::time::sleep(grace);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = jobs.join_next() => if next.is_none() { break },
            _ = &mut deadline => {
                let _ = interrupt_tx.send(Interrupt::HandBack);
            }
            _ = phase.changed() => {
                if *phase.borrow() == Phase::Now {
                    let _ = interrupt_tx.send(Interrupt::HandBack);
                }
            }
        }
    }
    heart.abort();
    reloader.abort();
    tracing::info!(
        completed = ctx.completed.load(std::sync::atomic::Ordering::Relaxed),
        "stopped"
    );
}

type Running = Arc<std::sync::Mutex<Vec<String>>>;

/// Leases jobs from one queue whenever a slot is free, until shutdown begins.
async fn lease_loop(
    ctx: Arc<WorkerContext>,
    queue: Arc<dyn rai_common::queue::JobQueue>,
    permits: Arc<Semaphore>,
    mut phase: watch::Receiver<Phase>,
    interrupt: watch::Receiver<Interrupt>,
    running: Running,
    jobs: Arc<tokio::sync::Mutex<tokio::task::JoinSet<()>>>,
) {
    loop {
        if *phase.borrow() != Phase::Running {
            return;
        }
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = phase.changed() => continue,
        };
        let leases = tokio::select! {
            r = queue.receive(1, Duration::from_secs(5)) => r,
            _ = phase.changed() => continue,
        };
        let leases = match leases {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(queue = %queue.name(), error = %e, "cannot receive jobs; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(lease) = leases.into_iter().next() else {
            continue;
        };
        let (ctx, queue, interrupt, running) = (
            ctx.clone(),
            queue.clone(),
            interrupt.clone(),
            running.clone(),
        );
        let mut set = jobs.lock().await;
        set.spawn(async move {
            let id = lease.id.clone();
            running.lock().expect("never poisoned").push(id.clone());
            job::run(ctx, queue, lease, interrupt).await;
            running.lock().expect("never poisoned").retain(|r| *r != id);
            drop(permit);
        });
        while set.try_join_next().is_some() {}
    }
}

async fn heartbeat(
    ctx: Arc<WorkerContext>,
    slots: u32,
    running: Arc<std::sync::Mutex<Vec<String>>>,
) {
    let started = Utc::now().to_rfc3339();
    loop {
        let info = WorkerInfo {
            name: ctx.name.clone(),
            queues: ctx.queues.iter().map(|q| q.name().to_string()).collect(),
            slots,
            running: running.lock().expect("never poisoned").clone(),
            gpus: ctx.gpus.count(),
            version: rai_common::VERSION.to_string(),
            started_at: started.clone(),
        };
        if let Err(e) = ctx.bus.heartbeat(&info, Duration::from_secs(15)).await {
            tracing::warn!(error = %e, "cannot write the heartbeat");
        }
        crate::notify::watchdog();
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Reloads the registry when its file changes and on SIGHUP; a broken file keeps the previous registry.
async fn reload_registry(ctx: Arc<WorkerContext>, mut hup: watch::Receiver<u64>) {
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
            changed = hup.changed() => if changed.is_err() { return },
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

/// Removes the job containers and job directories a crashed run of this worker left behind (their jobs come back
/// through the queue and run again from the start).
async fn remove_leftovers(ctx: &WorkerContext) {
    crate::sandbox::remove_labelled(&ctx.docker, &format!("rai.worker={}", ctx.name)).await;
    let dir = crate::job::jobs_dir(ctx);
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            tracing::warn!(dir = %entry.path().display(), "removing a job directory left by an earlier run");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
