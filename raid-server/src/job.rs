//! One job's life on this worker, from a leased message to the ack (DESIGN.md "A job's life", steps 3-7).
//!
//! verify → claim → policy → fetch and unpack → image → GPUs → container → commands (output, time limit, OOM,
//! log cap, cancel) → pack `/build` → store output, link, record → `end` event → mark done → ack. The container and
//! the job directory are removed on every path, errors included; the message is acked only once the record and the
//! `end` event are stored, or released when the worker hands the job back (draining, or its lease was lost).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use chrono::Utc;
use futures::StreamExt;
use rai_common::Config;
use rai_common::account::Registry;
use rai_common::archive::{PackOptions, UnpackLimits};
use rai_common::events::state::Claim;
use rai_common::events::{EventBody, EventBus, JobStatus};
use rai_common::job::{Freshness, JobRequest, SignedJob};
use rai_common::queue::{JobQueue, Lease};
use rai_common::store::{ObjectStore, output_key, record_key};
use serde::Serialize;
use tokio::sync::{RwLock, watch};
use tracing::Instrument;

use crate::gpu::GpuPool;
use crate::output::OutputPump;
use crate::policy::{self, JobLimits, bytes_text, span_text};
use crate::sandbox::{Sandbox, SandboxSpec, remove_container};

/// Everything jobs share on this worker.
pub struct WorkerContext {
    pub name: String,
    pub config: Config,
    pub docker: Docker,
    /// The queues this worker serves; a job is acked, extended or released on the queue it came from.
    pub queues: Vec<Arc<dyn JobQueue>>,
    pub store: Arc<dyn ObjectStore>,
    pub bus: EventBus,
    pub registry: Arc<RwLock<Registry>>,
    pub gpus: GpuPool,
    pub rejected: std::sync::atomic::AtomicU64,
    pub completed: std::sync::atomic::AtomicU64,
    /// When the last jobs passed their milestones (the most recent 1,000), for metrics and the benchmark.
    pub timings: std::sync::Mutex<std::collections::VecDeque<JobTiming>>,
}

/// When a job passed each milestone on this worker.
#[derive(Debug, Clone)]
pub struct JobTiming {
    pub job: rai_common::JobId,
    pub leased: Instant,
    pub container_started: Option<Instant>,
    pub commands_done: Option<Instant>,
    pub acked: Instant,
}

/// What can stop a running job from outside: the worker handing it back, or its lease lost.
struct Stops {
    interrupt: watch::Receiver<Interrupt>,
    lost: watch::Receiver<bool>,
}

#[derive(Default)]
struct Milestones {
    container_started: Option<Instant>,
    commands_done: Option<Instant>,
}

/// Why a running job must stop early, from outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    None,
    /// The worker is draining and the grace period is over: hand the job back.
    HandBack,
}

/// The job record stored under `records/<user>/<job>.json`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub user: String,
    pub team: String,
    pub queue: String,
    pub worker: String,
    pub status: JobStatus,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    pub image: String,
    pub submitted_at: String,
    pub started_at: String,
    pub finished_at: String,
    pub output_key: Option<String>,
    pub output_truncated: bool,
}

struct Ending {
    status: JobStatus,
    exit_code: Option<i64>,
    reason: Option<String>,
}

enum Outcome {
    /// The job ended (well or badly): record it and ack.
    Ended(Ending),
    /// The job goes back to the queue for another worker.
    HandBack,
}

/// Runs one leased message to its end. Never panics on bad input; every path acks or releases the message.
pub async fn run(
    ctx: Arc<WorkerContext>,
    queue: Arc<dyn JobQueue>,
    lease: Lease,
    interrupt: watch::Receiver<Interrupt>,
) {
    let leased = Instant::now();
    let freshness = Freshness {
        max_age: ctx.config.raid.max_job_age.as_duration(),
        ..Freshness::default()
    };
    let verified = {
        let registry = ctx.registry.read().await;
        SignedJob::verify(lease.body.as_bytes(), &registry, Utc::now(), freshness)
    };
    let request = match verified {
        Ok(r) => r,
        Err(reason) => {
            ctx.rejected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(message = %lease.id, %reason, "rejected a job message");
            if let Some(id) = SignedJob::claimed_id(lease.body.as_bytes()) {
                tell_rejected(&ctx, id, &reason.to_string()).await;
            }
            let _ = queue.ack(&lease).await;
            return;
        }
    };
    let job = request.id;
    let claim_ttl = claim_ttl(queue.as_ref());
    match ctx.bus.claim(&job, &ctx.name, claim_ttl).await {
        Ok(Claim::Finished) => {
            tracing::info!(job = %job, "dropping a message for a job that already finished");
            let _ = queue.ack(&lease).await;
        }
        Ok(Claim::Busy { holder }) => {
            // A duplicate delivery while another worker runs the job: leave the message alone; if that worker
            // dies, its claim expires and the message, back after its lease, runs here as a rerun.
            tracing::info!(job = %job, holder = %holder, "the job is running on another worker; leaving this delivery");
        }
        Ok(claim) => {
            let rerun = matches!(claim, Claim::Rerun { .. });
            let span = tracing::info_span!("job", job = %request.id, user = %request.user);
            run_claimed(ctx.clone(), queue, lease, request, rerun, interrupt, leased)
                .instrument(span)
                .await;
        }
        Err(e) => {
            tracing::error!(job = %job, error = %e, "cannot claim the job; handing it back");
            let _ = queue.release(&lease).await;
        }
    }
}

/// A claim outlives one missed renewal (renewals come every third of a lease) but not much more, so a dead
/// worker's job is free again soon after its lease runs out.
/// Where this worker makes its job directories: a folder of its own under `raid.work_dir`, so that what a crashed
/// run left behind can be removed at the next start without touching another worker's jobs on the same machine.
pub fn jobs_dir(ctx: &WorkerContext) -> std::path::PathBuf {
    let name: String = ctx
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    ctx.config.raid.work_dir.join(name)
}

fn claim_ttl(queue: &dyn JobQueue) -> Duration {
    queue.lease_duration() * 3 / 2
}

/// Reports a refusal on the job's channel, unless the job already has events (a forged message must not write
/// into a real job's history).
async fn tell_rejected(ctx: &WorkerContext, job: rai_common::JobId, reason: &str) {
    let Ok(mut p) = ctx.bus.publisher(job).await else {
        return;
    };
    if p.last_seq() != 0 {
        return;
    }
    let _ = p
        .send(EventBody::End {
            status: JobStatus::Rejected,
            exit_code: None,
            reason: Some(reason.to_string()),
        })
        .await;
}

async fn run_claimed(
    ctx: Arc<WorkerContext>,
    queue: Arc<dyn JobQueue>,
    lease: Lease,
    request: JobRequest,
    rerun: bool,
    interrupt: watch::Receiver<Interrupt>,
    leased: Instant,
) {
    let job = request.id;
    let mut milestones = Milestones::default();
    // Keep the lease (and the claim) alive for as long as the job runs.
    let (lost_tx, lost_rx) = watch::channel(false);
    let keeper = {
        let (ctx, lease, queue) = (ctx.clone(), lease.clone(), queue.clone());
        tokio::spawn(async move {
            let every = queue.lease_duration() / 3;
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = queue.extend(&lease).await {
                    tracing::error!(job = %job, error = %e, "lost the job's lease");
                    if matches!(e, rai_common::errors::QueueError::LeaseLost { .. }) {
                        let _ = lost_tx.send(true);
                        return;
                    }
                }
                let _ = ctx
                    .bus
                    .claim(&job, &ctx.name, claim_ttl(queue.as_ref()))
                    .await;
            }
        })
    };
    let dir = jobs_dir(&ctx).join(job.to_string());
    let container = format!("rai-job-{job}");
    let started = Utc::now();
    let outcome = life(
        &ctx,
        &request,
        rerun,
        &dir,
        &container,
        Stops {
            interrupt,
            lost: lost_rx,
        },
        &mut milestones,
    )
    .await;
    keeper.abort();
    remove_container(&ctx.docker, &container).await;
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(job = %job, error = %e, "could not remove the job directory");
    }
    match outcome {
        Ok((Outcome::Ended(ending), output, truncated, mut publisher)) => {
            let record = JobRecord {
                id: job.to_string(),
                user: request.user.clone(),
                team: request.team.clone(),
                queue: request.queue.clone(),
                worker: ctx.name.clone(),
                status: ending.status,
                exit_code: ending.exit_code,
                reason: ending.reason.clone(),
                image: request.build.rai.image.clone(),
                submitted_at: request.created_at.to_rfc3339(),
                started_at: started.to_rfc3339(),
                finished_at: Utc::now().to_rfc3339(),
                output_key: output,
                output_truncated: truncated,
            };
            let stored = ctx
                .store
                .put_bytes(
                    &record_key(&request.user, &job),
                    serde_json::to_vec_pretty(&record).unwrap_or_default(),
                )
                .await;
            if let Err(e) = stored {
                tracing::error!(job = %job, error = %e, "cannot store the job record; handing the job back");
                let _ = ctx.bus.unclaim(&job).await;
                let _ = queue.release(&lease).await;
                return;
            }
            let end = EventBody::End {
                status: ending.status,
                exit_code: ending.exit_code,
                reason: ending.reason.clone(),
            };
            if let Err(e) = publisher.send(end).await {
                tracing::error!(job = %job, error = %e, "cannot publish the end event; handing the job back");
                let _ = queue.release(&lease).await;
                return;
            }
            let _ = ctx
                .bus
                .update_state(
                    &job,
                    &[
                        ("status", ending.status.to_string()),
                        ("finished_at", Utc::now().to_rfc3339()),
                        (
                            "exit_code",
                            ending.exit_code.map(|c| c.to_string()).unwrap_or_default(),
                        ),
                        ("reason", ending.reason.clone().unwrap_or_default()),
                    ],
                )
                .await;
            let _ = ctx.bus.mark_done(&job).await;
            if let Err(e) = queue.ack(&lease).await {
                tracing::warn!(job = %job, error = %e, "could not ack a finished job (it will be dropped on redelivery)");
            }
            ctx.completed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut timings = ctx.timings.lock().expect("never poisoned");
            if timings.len() == 1000 {
                timings.pop_front();
            }
            timings.push_back(JobTiming {
                job,
                leased,
                container_started: milestones.container_started,
                commands_done: milestones.commands_done,
                acked: Instant::now(),
            });
            drop(timings);
            tracing::info!(job = %job, status = %ending.status, exit_code = ?ending.exit_code, "job finished");
        }
        Ok((Outcome::HandBack, ..)) | Err(_) => {
            tracing::info!(job = %job, "handing the job back to the queue");
            let _ = ctx.bus.unclaim(&job).await;
            let _ = ctx
                .bus
                .update_state(&job, &[("status", JobStatus::Requeued.to_string())])
                .await;
            let _ = queue.release(&lease).await;
        }
    }
}

type LifeResult = Result<
    (
        Outcome,
        Option<String>,
        bool,
        rai_common::events::JobPublisher,
    ),
    rai_common::errors::EventError,
>;

fn ended(status: JobStatus, exit_code: Option<i64>, reason: impl Into<Option<String>>) -> Outcome {
    Outcome::Ended(Ending {
        status,
        exit_code,
        reason: reason.into(),
    })
}

async fn life(
    ctx: &Arc<WorkerContext>,
    request: &JobRequest,
    rerun: bool,
    dir: &Path,
    container: &str,
    stops: Stops,
    milestones: &mut Milestones,
) -> LifeResult {
    let Stops {
        mut interrupt,
        mut lost,
    } = stops;
    let job = request.id;
    let raid = &ctx.config.raid;
    let publisher = ctx.bus.publisher(job).await?;
    let mut pump = OutputPump::new(publisher, raid.limits.log_bytes.0);
    if rerun {
        pump.event(EventBody::Status {
            status: JobStatus::Requeued,
            worker: Some(ctx.name.clone()),
            detail: Some("the job's earlier run stopped; it runs again from the start".into()),
        })
        .await?;
        // The earlier run's worker died (its claim expired). If it ran on this engine, its container may still be
        // running the job: stop it, so the two runs never overlap and the container name is free again.
        crate::sandbox::remove_labelled(
            &ctx.docker,
            &format!("{}={job}", crate::sandbox::JOB_LABEL),
        )
        .await;
    }
    macro_rules! finish {
        ($outcome:expr) => {{
            let truncated = pump.truncated();
            pump.finish().await?;
            let OutputPumpParts(publisher) = OutputPumpParts::from(pump);
            return Ok(($outcome, None, truncated, publisher));
        }};
    }
    let limits = match policy::resolve(&request.build, raid, ctx.gpus.count()) {
        Ok(l) => l,
        Err(reason) => finish!(ended(JobStatus::Rejected, None, reason)),
    };
    pump.event(EventBody::Status {
        status: JobStatus::Running,
        worker: Some(ctx.name.clone()),
        detail: None,
    })
    .await?;
    let _ = ctx
        .bus
        .update_state(
            &job,
            &[
                ("status", JobStatus::Running.to_string()),
                ("worker", ctx.name.clone()),
                ("user", request.user.clone()),
                ("queue", request.queue.clone()),
                ("started_at", Utc::now().to_rfc3339()),
            ],
        )
        .await;

    // Fetch and unpack the upload.
    let (src, build) = (dir.join("src"), dir.join("build"));
    if let Err(reason) = fetch(ctx, request, &src).await {
        finish!(ended(JobStatus::Rejected, None, reason));
    }
    if let Err(e) = make_build_dir(&build) {
        finish!(ended(
            JobStatus::Error,
            None,
            format!("cannot make the job directory: {e}")
        ));
    }
    if let Err(reason) = ensure_image(ctx, &request.build.rai.image, &mut pump).await {
        finish!(ended(JobStatus::Error, None, reason));
    }
    let gpus = ctx.gpus.acquire(limits.gpus).await;
    let spec = SandboxSpec {
        name: container.to_string(),
        image: request.build.rai.image.clone(),
        src_dir: src.clone(),
        build_dir: build.clone(),
        user: raid.user.clone(),
        shell: raid.shell.clone(),
        memory_bytes: limits.memory,
        cpus: limits.cpus,
        pids: limits.pids,
        nofile: limits.nofile,
        network: limits.network,
        tmp_bytes: (limits.memory / 4).clamp(16 << 20, 1 << 30),
        gpus: gpus.ids.clone(),
        runtime: raid.runtime.clone(),
        env: vec![
            "RAI=1".into(),
            "CI=rai".into(),
            format!("RAI_JOB_ID={job}"),
            "RAI_SOURCE_DIR=/src".into(),
            "RAI_BUILD_DIR=/build".into(),
            "HOME=/build".into(),
        ],
        labels: [
            (crate::sandbox::JOB_LABEL.to_string(), job.to_string()),
            ("rai.worker".to_string(), ctx.name.clone()),
        ]
        .into(),
    };
    let sandbox = match Sandbox::start(&ctx.docker, &spec).await {
        Ok(s) => s,
        Err(e) => finish!(ended(JobStatus::Error, None, e.to_string())),
    };

    milestones.container_started = Some(Instant::now());
    let (mut build_full, build_watch) = watch_build(
        &build,
        crate::disk::BuildQuota {
            max_bytes: limits.output_bytes,
            max_entries: PackOptions::default().max_files,
        },
    );
    let deadline = tokio::time::Instant::now() + limits.time;
    let cancel_grace = raid.cancel_grace.as_duration();
    let mut ending: Option<Outcome> = None;
    'commands: for command in &request.build.commands.build {
        pump.system(&format!("Running {command}")).await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let exec = {
            let (sandbox, command) = (sandbox.clone(), command.clone());
            tokio::spawn(async move { sandbox.run(&command, tx).await })
        };
        let mut tick = tokio::time::interval(Duration::from_millis(25));
        let mut cancel_poll = tokio::time::interval(Duration::from_millis(500));
        let mut cancelled_by: Option<(String, tokio::time::Instant)> = None;
        let mut stop: Option<Outcome> = None;
        loop {
            tokio::select! {
                chunk = rx.recv() => match chunk {
                    Some((stream, bytes)) => pump.push(stream, &bytes).await?,
                    None => break,
                },
                _ = tick.tick() => pump.tick().await?,
                _ = tokio::time::sleep_until(deadline), if stop.is_none() => {
                    sandbox.kill().await;
                    stop = Some(ended(JobStatus::TimedOut, None, format!("time limit {} exceeded", span_text(limits.time))));
                }
                _ = cancel_poll.tick(), if stop.is_none() => {
                    if let Some((by, since)) = &cancelled_by {
                        if since.elapsed() >= cancel_grace {
                            sandbox.kill().await;
                            stop = Some(ended(JobStatus::Cancelled, None, format!("cancelled by {by}")));
                        }
                    } else if let Ok(Some(by)) = ctx.bus.cancel_requested(&job).await {
                        pump.system(&format!("Cancelled by {by}; stopping the job")).await?;
                        sandbox.terminate_processes().await;
                        cancelled_by = Some((by, tokio::time::Instant::now()));
                    }
                }
                changed = interrupt.changed(), if stop.is_none() => {
                    if changed.is_err() || *interrupt.borrow() == Interrupt::HandBack {
                        sandbox.kill().await;
                        stop = Some(Outcome::HandBack);
                    }
                }
                changed = build_full.changed(), if stop.is_none() => {
                    let reason = build_full.borrow().clone();
                    if let (Ok(()), Some(reason)) = (changed, reason) {
                        sandbox.kill().await;
                        stop = Some(ended(JobStatus::Failed, None, reason));
                    }
                }
                changed = lost.changed(), if stop.is_none() => {
                    if changed.is_ok() && *lost.borrow() {
                        sandbox.kill().await;
                        stop = Some(Outcome::HandBack);
                    }
                }
            }
        }
        let code = exec.await.ok().and_then(|r| r.ok()).flatten();
        pump.finish().await?;
        if let Some(s) = stop {
            ending = Some(s);
            break 'commands;
        }
        if let Some((by, _)) = cancelled_by {
            ending = Some(ended(
                JobStatus::Cancelled,
                code,
                format!("cancelled by {by}"),
            ));
            break 'commands;
        }
        if sandbox.oom_killed().await {
            ending = Some(ended(
                JobStatus::Failed,
                code,
                format!(
                    "out of memory (limit {})",
                    bytes_text(sandbox.memory_bytes())
                ),
            ));
            break 'commands;
        }
        match code {
            Some(0) => {}
            Some(c) => {
                ending = Some(ended(
                    JobStatus::Failed,
                    Some(c),
                    format!("command failed with exit code {c}: {command}"),
                ));
                break 'commands;
            }
            None => {
                ending = Some(ended(
                    JobStatus::Error,
                    None,
                    "the command's exit code is unknown".to_string(),
                ));
                break 'commands;
            }
        }
    }
    milestones.commands_done = Some(Instant::now());
    build_watch.abort();
    sandbox.remove().await;
    drop(gpus);
    let outcome = ending.unwrap_or_else(|| ended(JobStatus::Succeeded, Some(0), None));
    if matches!(outcome, Outcome::HandBack) {
        finish!(Outcome::HandBack);
    }

    // Keep /build, unless it is already known to be too big to keep.
    let mut output = None;
    let key = output_key(&request.user, &job);
    let over = build_full.borrow().clone();
    let kept = match over {
        Some(reason) => Err(reason),
        None => store_output(ctx, &build, &key, &limits).await,
    };
    match kept {
        Ok(()) => {
            let link = ctx
                .store
                .download_link(&key, ctx.config.events.retention.as_duration())
                .await;
            if let Ok(url) = link {
                pump.event(EventBody::Artifact { url, expires: None })
                    .await?;
            }
            output = Some(key);
        }
        Err(reason) => {
            pump.system(&format!("/build was not kept: {reason}"))
                .await?
        }
    }
    let truncated = pump.truncated();
    pump.finish().await?;
    let OutputPumpParts(publisher) = OutputPumpParts::from(pump);
    Ok((outcome, output, truncated, publisher))
}

/// Watches `/build` until aborted; the receiver holds why it is over its quota once it is.
fn watch_build(
    build: &Path,
    quota: crate::disk::BuildQuota,
) -> (watch::Receiver<Option<String>>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(None);
    let build = build.to_path_buf();
    let task = tokio::spawn(async move {
        let mut next = Instant::now() + Duration::from_secs(1);
        loop {
            tokio::time::sleep_until(next.into()).await;
            let started = Instant::now();
            let dir = build.clone();
            let Ok(usage) = tokio::task::spawn_blocking(move || quota.measure(&dir)).await else {
                return;
            };
            if let Some(reason) = quota.exceeded(usage) {
                let _ = tx.send(Some(reason));
                // Keep the sender: a closed channel would wake the job's loop for nothing.
                std::future::pending::<()>().await;
            }
            next = crate::disk::next_look(started.elapsed());
        }
    });
    (rx, task)
}

/// The publisher back out of a pump.
struct OutputPumpParts(rai_common::events::JobPublisher);

impl From<OutputPump> for OutputPumpParts {
    fn from(p: OutputPump) -> Self {
        OutputPumpParts(p.into_publisher())
    }
}

fn make_build_dir(build: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(build)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Writable by the container's non-root user; the job directory above it is the worker's alone.
        std::fs::set_permissions(build, std::fs::Permissions::from_mode(0o777))?;
    }
    Ok(())
}

/// Streams the upload from the store into the unpacker, checking its size and hash against the signed request.
async fn fetch(ctx: &WorkerContext, request: &JobRequest, src: &Path) -> Result<(), String> {
    use sha2::{Digest, Sha256};
    // A job may only run its own upload: a signed job naming another student's upload is refused.
    if request.input.key != rai_common::store::upload_key(&request.user, &request.id) {
        return Err(format!(
            "the job names the upload \"{}\", which is not its own; submit again with rai",
            request.input.key
        ));
    }
    let upload_cap = ctx.config.raid.limits.upload_bytes.0;
    if request.input.size > upload_cap {
        return Err(format!(
            "the upload is {}, over this worker's limit of {}",
            rai_common::units::Bytes(request.input.size).human(),
            rai_common::units::Bytes(upload_cap).human()
        ));
    }
    let reader = ctx
        .store
        .get(&request.input.key)
        .await
        .map_err(|e| format!("cannot fetch the upload: {e}"))?;
    let (hash_tx, hash_rx) = tokio::sync::oneshot::channel();
    let hashing = HashingReader {
        inner: reader,
        hasher: Some(Sha256::new()),
        size: 0,
        limit: request.input.size,
        done: Some(hash_tx),
    };
    let bridge = tokio_util::io::SyncIoBridge::new(hashing);
    let dest = src.to_path_buf();
    let unpack_limits = UnpackLimits {
        // Source code compresses about 4:1; a bomb that claims more stops here.
        max_bytes: upload_cap.saturating_mul(4),
        max_entries: 200_000,
    };
    let unpacked = tokio::task::spawn_blocking(move || {
        let mut bridge = bridge;
        let result = rai_common::archive::unpack(&mut bridge, &dest, unpack_limits);
        // Read to the end so the hash covers every byte even if tar stopped early.
        let _ = std::io::copy(&mut bridge, &mut std::io::sink());
        result
    })
    .await
    .map_err(|e| format!("the unpacker failed: {e}"))?;
    // The hash is sent at the end of the object; no hash means the read stopped past the signed size.
    let (size, hash) = hash_rx.await.map_err(|_| {
        format!(
            "the upload is larger than the {} the signed job says; submit again",
            rai_common::units::Bytes(request.input.size).human()
        )
    })?;
    unpacked.map_err(|e| format!("the upload is not a safe archive: {e}"))?;
    if size != request.input.size || hash != request.input.sha256 {
        return Err(
            "the upload does not match the signed job (size or SHA-256 differ); submit again"
                .into(),
        );
    }
    Ok(())
}

/// Hashes what it reads, and stops with an error past the signed size, so an upload swapped for a bigger object
/// (its owner may overwrite it) is never read to its end.
struct HashingReader {
    inner: rai_common::store::ObjectReader,
    hasher: Option<sha2::Sha256>,
    size: u64,
    limit: u64,
    done: Option<tokio::sync::oneshot::Sender<(u64, String)>>,
}

impl tokio::io::AsyncRead for HashingReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use sha2::Digest;
        let before = buf.filled().len();
        let this = &mut *self;
        let poll = this.inner.as_mut().poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = &poll {
            let new = &buf.filled()[before..];
            if new.is_empty() {
                if let (Some(h), Some(done)) = (this.hasher.take(), this.done.take()) {
                    let _ = done.send((this.size, hex::encode(h.finalize())));
                }
            } else {
                this.size += new.len() as u64;
                if this.size > this.limit {
                    // Dropping the sender tells fetch() why the read ended.
                    this.done = None;
                    return std::task::Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the upload is larger than the signed job says",
                    )));
                }
                if let Some(h) = this.hasher.as_mut() {
                    h.update(new);
                }
            }
        }
        poll
    }
}

/// Makes sure the image is here, pulling it (with progress as system events) when it is allowed and missing.
async fn ensure_image(
    ctx: &WorkerContext,
    image: &str,
    pump: &mut OutputPump,
) -> Result<(), String> {
    if ctx.docker.inspect_image(image).await.is_ok() {
        return Ok(());
    }
    pump.system(&format!("Pulling image {image}"))
        .await
        .map_err(|e| e.to_string())?;
    let options = bollard::query_parameters::CreateImageOptionsBuilder::default()
        .from_image(image)
        .build();
    let mut pull = ctx.docker.create_image(Some(options), None, None);
    let mut last_report = Instant::now();
    while let Some(step) = pull.next().await {
        match step {
            Ok(info) => {
                if last_report.elapsed() > Duration::from_secs(2)
                    && let Some(status) = info.status
                {
                    last_report = Instant::now();
                    let _ = pump.system(&format!("{image}: {status}")).await;
                }
            }
            Err(e) => return Err(format!("cannot pull image {image}: {e}")),
        }
    }
    Ok(())
}

/// Packs `/build` (never following a link out of it) and stores it.
async fn store_output(
    ctx: &WorkerContext,
    build: &Path,
    key: &str,
    limits: &JobLimits,
) -> Result<(), String> {
    let (reader, writer) = tokio::io::duplex(1 << 20);
    let root = build.to_path_buf();
    let opts = PackOptions {
        max_bytes: limits.output_bytes,
        ..PackOptions::default()
    };
    let packer = tokio::task::spawn_blocking(move || {
        let writer = tokio_util::io::SyncIoBridge::new(writer);
        rai_common::archive::pack(&root, writer, &opts, |_| {})
    });
    let put = ctx.store.put(key, Box::pin(reader)).await;
    let packed = packer
        .await
        .map_err(|e| format!("the packer failed: {e}"))?;
    packed.map_err(|e| e.to_string())?;
    put.map_err(|e| e.to_string())?;
    Ok(())
}
