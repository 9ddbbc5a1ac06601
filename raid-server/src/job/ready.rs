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

use futures::StreamExt;
use rai_backends::errors::EventError;
use rai_common::JobId;
use rai_common::event::{EventBody, JobStatus};
use rai_sandbox::{JobFolders, JobSandbox};
use tokio_util::sync::CancellationToken;

use super::fetch;
use crate::context::WorkerContext;
use crate::errors::JobError;
use crate::gpu::GpuLease;
use crate::output::OutputPump;
use crate::policy::{self, JobLimits};
use crate::sandbox::built_image::BuildLine;
use crate::sandbox::{GatedCommand, JOB_LABEL, Sandbox, SandboxSpec, Stream};
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
    if !ticket.is_ahead() {
        // Leased with its slot (preparation off): nothing to wait for.
        return Waited::Slot(ticket.slot().await);
    }
    let _counted = Counted::new();
    let max_wait = ctx.config.raid.prepared_wait.as_duration();
    // Why the job stops waiting before its slot frees; `None`: it waited too long.
    let stop_waiting = async {
        let give_up = tokio::time::sleep(max_wait);
        tokio::pin!(give_up);
        let mut cancel_poll = tokio::time::interval(CANCEL_POLL);
        loop {
            tokio::select! {
                _ = drain.cancelled() => return Some(Waited::HandBack("the worker is stopping")),
                _ = stop.cancelled() => return Some(Waited::HandBack("the job's lease was lost")),
                _ = &mut give_up => return None,
                _ = cancel_poll.tick() => {
                    if let Ok(Some(by)) = ctx.bus.cancel_requested(&job).await {
                        return Some(Waited::Cancelled(by));
                    }
                }
            }
        }
    };
    match ticket.slot_unless(stop_waiting).await {
        Ok(slot) => Waited::Slot(slot),
        Err((ticket, None)) => {
            tracing::info!(job = %job, waited = ?max_wait, "the slot did not free in time; handing the prepared job back");
            Waited::TooLong(ticket)
        }
        Err((_, Some(waited))) => waited,
    }
}

/// Runs `work` while telling the student what it says on `heard` (rai's lines as `✱` lines, a build's output as the
/// job's output), every line said before it ended included; `Err` when the job's events cannot be published.
async fn tell_while<T>(
    work: impl std::future::Future<Output = T>,
    mut heard: tokio::sync::mpsc::Receiver<BuildLine>,
    pump: &mut OutputPump,
) -> Result<T, EventError> {
    async fn tell(pump: &mut OutputPump, line: BuildLine) -> Result<(), EventError> {
        match line {
            BuildLine::System(text) => pump.system(&text).await,
            BuildLine::Output(text) => pump.push(Stream::Stdout, text.as_bytes()).await,
        }
    }
    let mut work = std::pin::pin!(work);
    let done = loop {
        tokio::select! {
            biased;
            Some(line) = heard.recv() => tell(pump, line).await?,
            done = &mut work => break done,
        }
    };
    while let Ok(line) = heard.try_recv() {
        tell(pump, line).await?;
    }
    Ok(done)
}

impl super::JobLife {
    /// Step 4, first half: everything before the first command, done while the slot may still be busy.
    pub(super) async fn prepare(&mut self, pump: &mut OutputPump) -> Result<Ready, JobError> {
        let ctx = self.ctx.clone();
        if self.rerun {
            self.announce_rerun(pump).await?;
        }
        let request = &self.request;
        let limits = policy::resolve(&request.build, &ctx.config.raid, ctx.gpus.count())
            .map_err(JobError::Policy)?;
        if let Some(sweep) = &request.sweep {
            sweep.check(&request.build.matrix)?;
        }
        for note in &limits.notes {
            pump.system(note).await?;
        }
        let (src, build) = (self.dir.join("src"), self.dir.join("build"));
        let regrade_of = self.graded.as_ref().and_then(|g| g.regrade_of.as_ref());
        fetch::fetch(&ctx, request, regrade_of, &src).await?;
        fetch::make_build_dir(&build)?;
        let gate = crate::sandbox::make_gate(&self.dir.join("gate")).map_err(JobError::JobDir)?;
        let image = match &request.build.commands.build_image {
            Some(wanted) => {
                let builder = crate::sandbox::built_image::ImageBuilder {
                    docker: &ctx.docker,
                    policy: &ctx.config.raid.build_images,
                    allowed_images: &ctx.config.raid.images,
                    memory: limits.memory,
                    network: &ctx.config.raid.job_network.name,
                };
                let (said, heard) = tokio::sync::mpsc::channel(64);
                let building = builder.build(wanted, &src, &self.dir, said);
                tell_while(building, heard, pump).await??
            }
            None => {
                let mut lines = std::pin::pin!(rai_sandbox::image::ensure(
                    &ctx.docker,
                    &request.build.rai.image
                ));
                while let Some(line) = lines.next().await {
                    pump.system(&line?).await?;
                }
                request.build.rai.image.clone()
            }
        };
        let gpus = ctx.gpus.try_acquire(limits.gpus);
        let made_for = match &gpus {
            Some(lease) => lease.ids.clone(),
            None => ctx.gpus.likely_next(limits.gpus),
        };
        let spec = self.sandbox_spec(&limits, image.clone(), made_for.clone());
        let sandbox = Sandbox::start(&ctx.docker, &spec).await?;
        let first = match request.build.commands.build.first() {
            Some(command) => match sandbox.start_gated(command, gate).await {
                Ok(gated) => Some(gated),
                Err(e) => {
                    // Not fatal: the command is started when the slot is free instead.
                    tracing::warn!(job = %request.id, error = %e, "cannot start the first command ahead");
                    None
                }
            },
            None => None,
        };
        Ok(Ready {
            limits,
            image,
            sandbox,
            first,
            made_for,
            gpus,
        })
    }

    /// Tells the followers that the job runs again, and makes sure the earlier run's container is gone.
    async fn announce_rerun(&self, pump: &mut OutputPump) -> Result<(), JobError> {
        pump.event(EventBody::Status {
            status: JobStatus::Requeued,
            worker: Some(self.ctx.name.clone()),
            detail: Some("the job's earlier run stopped; it runs again from the start".into()),
        })
        .await?;
        // The earlier run's worker died (its claim expired). If it ran on this engine, its container may still be
        // running the job: stop it, so the two runs never overlap and the container name is free again.
        let label = format!("{JOB_LABEL}={}", self.request.id);
        crate::sandbox::remove_labelled(&self.ctx.docker, &label).await;
        Ok(())
    }

    pub(super) fn sandbox_spec(
        &self,
        limits: &policy::JobLimits,
        image: String,
        gpus: Vec<String>,
    ) -> SandboxSpec {
        let raid = &self.ctx.config.raid;
        JobSandbox {
            raid,
            limits,
            job: self.request.id.to_string(),
            name: self.container.clone(),
            folders: JobFolders {
                src: self.dir.join("src"),
                build: self.dir.join("build"),
                gate: Some(self.dir.join("gate")),
            },
            labels: [("rai.worker".to_string(), self.ctx.name.clone())].into(),
            network: raid.job_network.name.clone(),
            env: self
                .request
                .sweep
                .as_ref()
                .map(|s| s.combination.env())
                .unwrap_or_default(),
        }
        .spec(image, gpus)
    }
}
