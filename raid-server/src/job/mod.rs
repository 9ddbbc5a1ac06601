//! One job's life on this worker, from a leased message to its ack (docs/architecture.md, "A job's life", steps
//! 3-6), as a pipeline whose steps each have their file:
//!
//! 1. here: the message verified against the account registry, the job id claimed;
//! 2. [`lease`]: the lease and the claim kept alive while the job runs;
//! 3. [`fetch`]: the upload checked against the signed job and unpacked into the job directory;
//! 4. [`ready`]: the image and the container made ready, then the wait for a slot (while another job may still run
//!    in it, [`crate::slots`]); [`run`]: the command loop (output, time limit, OOM, `/build` quota, cancel), after
//!    which the slot is given back at once;
//! 5. [`finish`]: `/build` stored, the record, the `end` event, the ack; or the job handed back.
//!
//! A step that cannot go on returns a [`JobError`], which says how the job ends (refused, or in error) or that it
//! goes back to the queue. The container and the job directory are removed on every path; the message is acked only
//! once the record and the `end` event are stored, or released when the worker hands the job back.
//!
//! Over 450 lines: step 1 (verify, claim) and the JobLife that runs the later steps, in order.

mod fetch;
mod finish;
mod lease;
mod materialise;
mod ready;
mod run;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use rai_backends::events::state::Claim;
use rai_backends::queue::{JobQueue, Lease};
use rai_common::errors::VerifyError;
use rai_common::event::{EventBody, JobStatus};
use rai_common::job::{AttestedJob, Freshness, Graded, JobRequest, SignedJob};
use rai_common::record::CommandTime;
use rai_common::state::JobState;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::context::WorkerContext;
use crate::errors::JobError;
use crate::output::OutputPump;
use crate::sandbox::{Sandbox, remove_container};
use crate::slots::{Slot, Ticket};
use ready::{Ready, Waited};

/// How long a worker holds a message it could not claim before handing it back.
const CLAIM_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// How a job ended.
#[derive(Debug, Clone)]
pub(crate) struct Ending {
    pub status: JobStatus,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
}

impl Ending {
    fn new(status: JobStatus, exit_code: Option<i64>, reason: impl Into<String>) -> Ending {
        Ending {
            status,
            exit_code,
            reason: Some(reason.into()),
        }
    }

    fn succeeded() -> Ending {
        Ending {
            status: JobStatus::Succeeded,
            exit_code: Some(0),
            reason: None,
        }
    }
}

/// Where a job's life leads.
enum Outcome {
    /// The job ended (well or badly): record it and ack.
    Ended(Ending),
    /// The job goes back to the queue for another worker.
    HandBack,
}

/// What stops a job from outside: the worker handing it back, and the worker's draining.
pub struct JobTokens {
    pub hand_back: CancellationToken,
    pub drain: CancellationToken,
}

/// When a job passed its milestones on this worker, logged with its end (the overhead benchmark reads them).
struct Milestones {
    leased: Instant,
    /// The same moment by the clock (the job's state says it: the rush benchmark tells a job let in beside its
    /// owner's running one from one that waited for it).
    leased_at: DateTime<Utc>,
    container_started: Option<Instant>,
    commands_done: Option<Instant>,
    /// When the job began in its slot (its record's `started_at`) and its commands ended, by the clock (the
    /// back-to-back benchmark compares jobs with them).
    commands_began_at: Option<DateTime<Utc>>,
    commands_done_at: Option<DateTime<Utc>>,
}

/// Runs one leased message to its end, its commands in the slot `ticket` holds or waits for. `hand_back` is
/// cancelled when the worker must give the job back (draining past the grace period), `drain` when draining begins
/// (a job still waiting for its slot goes back then). Never panics on bad input; every path acks or releases the
/// message.
pub async fn run(
    ctx: Arc<WorkerContext>,
    queue: Arc<dyn JobQueue>,
    lease: Lease,
    ticket: Ticket,
    tokens: JobTokens,
) {
    let (leased, leased_at) = (Instant::now(), Utc::now());
    let Some((mut request, accepted_at, graded)) = verify(&ctx, &lease).await else {
        crate::metrics::metrics()
            .jobs
            .get_or_create(&crate::metrics::OutcomeLabels {
                queue: queue.name().to_string(),
                outcome: JobStatus::Rejected.as_str().to_string(),
            })
            .inc();
        let _ = queue.ack(&lease).await;
        return;
    };
    let job = request.id;
    // Held from before the claim until the job's container and directory are gone, so the stray sweep never takes
    // this job's container for a dead run's. Another message for a job this worker holds (a replay, or the same job
    // sent twice) waits for that run to end, then claims as any delivery does; half a lease is long enough for a run
    // that is finishing.
    let patience = queue.lease_duration() / 2;
    let held = match Held::wait_for(ctx.clone(), job, &lease.id, patience).await {
        Ok(held) => held,
        Err(HeldAlready::ByThisMessage) => {
            // A second delivery of the message this worker already runs (its lease lapsed while Redis or the queue
            // was away, and this worker's own read took it back). The claim bears this worker's name, so it would
            // read as a rerun and stop the running one: leave the delivery to the running job, which acks it.
            tracing::info!(job = %job, "the job is already running on this worker; leaving this delivery");
            return;
        }
        Err(HeldAlready::ByAnotherMessage) => {
            // Still running: this message comes back when its lease ends, and is judged then.
            tracing::info!(job = %job, message = %lease.id, "another message for a job running here; leaving it for later");
            return;
        }
    };
    // A graded submission runs the instructor's build, when the course names one (the gateway's acceptance says).
    if let Some(build) = graded.as_ref().and_then(|g| g.build.clone()) {
        request.build = build;
    }
    match ctx
        .bus
        .claim(&job, &ctx.name, lease::claim_ttl(queue.as_ref()))
        .await
    {
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
            let span = tracing::info_span!("job", job = %job, user = %request.user);
            let life = JobLife {
                dir: ctx.jobs_dir().join(job.to_string()),
                container: format!("rai-job-{job}"),
                rerun: matches!(claim, Claim::Rerun { .. }),
                milestones: Milestones {
                    leased,
                    leased_at,
                    container_started: None,
                    commands_done: None,
                    commands_began_at: None,
                    commands_done_at: None,
                },
                ctx,
                queue,
                lease,
                request,
                accepted_at,
                graded,
                timings: Vec::new(),
                gpus: 0,
                gpu_ids: Vec::new(),
                gpu_use: Vec::new(),
                results: None,
                ticket: Some(ticket),
                parked: None,
                held: Some(held),
                started: false,
                drain: tokens.drain,
            };
            life.run(tokens.hand_back).instrument(span).await;
        }
        Err(e) => {
            tracing::error!(job = %job, error = %e, "cannot claim the job; handing it back");
            // Not at once: a Redis that refuses every claim would otherwise have this worker lease and release the
            // same message in a tight loop.
            tokio::time::sleep(CLAIM_RETRY_AFTER).await;
            let _ = queue.release(&lease).await;
        }
    }
}

/// The request in a message and when the gateway accepted it, or `None` (logged, and told to the job's channel when
/// a trusted gateway attested the id) when it is refused.
async fn verify(
    ctx: &WorkerContext,
    lease: &Lease,
) -> Option<(JobRequest, DateTime<Utc>, Option<Graded>)> {
    let freshness = Freshness {
        max_age: ctx.config.raid.max_job_age.as_duration(),
        ..Freshness::default()
    };
    let bytes = lease.body.as_bytes();
    let verified = {
        let registry = ctx.registry.read().await;
        match AttestedJob::verify(bytes, &registry, &ctx.gateway_keys, Utc::now(), freshness) {
            // The team a job counts under is the registry's (stamped by the gateway), never the one the student's
            // profile put in the request: records, team listings and usage read it from here on.
            Ok(accepted) => Ok((
                JobRequest {
                    team: accepted.acceptance.team,
                    ..accepted.request
                },
                accepted.acceptance.accepted_at,
                accepted.acceptance.graded,
            )),
            // A message straight from a 2025 client (v1, no gateway): run only where the admin still allows it.
            Err(VerifyError::NotAttested) if ctx.config.raid.accept_unattested => {
                SignedJob::verify(bytes, &registry, Utc::now(), freshness).map(|r| {
                    let team = registry
                        .get(&r.user)
                        .map(|a| a.team.clone())
                        .unwrap_or_default();
                    let created_at = r.created_at;
                    (JobRequest { team, ..r }, created_at, None)
                })
            }
            Err(e) => Err(e),
        }
    };
    match verified {
        Ok(accepted) => Some(accepted),
        Err(reason) => {
            tracing::warn!(message = %lease.id, %reason, "rejected a job message");
            // Only a gateway-attested id may be told: a forged message must never write to someone else's job.
            let attested = AttestedJob::attested_id(bytes, &ctx.gateway_keys).or_else(|| {
                ctx.config
                    .raid
                    .accept_unattested
                    .then(|| SignedJob::claimed_id(bytes))
                    .flatten()
            });
            if let Some(job) = attested {
                tell_rejected(ctx, job, &reason.to_string()).await;
            }
            None
        }
    }
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

/// A claimed job, from its first event to its ack.
struct JobLife {
    ctx: Arc<WorkerContext>,
    queue: Arc<dyn JobQueue>,
    lease: Lease,
    request: JobRequest,
    /// When the gateway accepted the job (the server's clock).
    accepted_at: DateTime<Utc>,
    /// The gateway's judgement of a graded submission.
    graded: Option<Graded>,
    /// Each command that ran, timed here.
    timings: Vec<CommandTime>,
    /// The GPUs the job held (for the user's GPU-time budget).
    gpus: u32,
    /// The devices its commands ran with, and what they did with them (sampled).
    gpu_ids: Vec<String>,
    gpu_use: Vec<rai_common::state::GpuUse>,
    /// The scores the job wrote to `/build/results.json`, when it wrote readable ones.
    results: Option<rai_common::results::Results>,
    /// The slot the job holds or waits for, until it has one.
    ticket: Option<Ticket>,
    /// A place kept after the job waited too long for its slot and went back (see [`Waited::TooLong`]).
    parked: Option<Ticket>,
    /// The job counted among those this worker holds, until its container and directory are gone.
    held: Option<Held>,
    /// Whether its commands began (a job handed back before is queued again, not requeued).
    started: bool,
    drain: CancellationToken,
    rerun: bool,
    /// The job directory: `src/` (the upload) and `build/` (mounted as `/build`).
    dir: PathBuf,
    container: String,
    milestones: Milestones,
}

impl JobLife {
    async fn run(mut self, hand_back: CancellationToken) {
        let job = self.request.id;
        // One token stops the job from outside: the worker handing it back, or the keeper losing its lease.
        let stop = hand_back.child_token();
        let keeper = lease::LeaseKeeper::start(
            self.ctx.clone(),
            self.queue.clone(),
            self.lease.clone(),
            job,
            stop.clone(),
        );
        let leased_at = Utc::now();
        let publisher = match self.ctx.bus.publisher(job).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(job = %job, error = %e, "cannot publish the job's events");
                drop(keeper);
                finish::hand_back(&self.ctx, self.queue.as_ref(), &self.lease, job, false).await;
                return;
            }
        };
        let mut pump = OutputPump::new(publisher, self.ctx.config.raid.limits.log_bytes.0);
        pump.notice_on(
            crate::gpu::PROFILER_REFUSED,
            crate::gpu::profiler_refused(self.ctx.config.raid.gpu.profiling, &self.ctx.name),
        );
        let lived = self.live(&mut pump, &stop).await;
        drop(keeper);
        self.clean_up().await;
        // How the job ended, or `None` when it goes back to the queue.
        let ended = match lived {
            Ok((Outcome::Ended(ending), output_key)) => Some((ending, output_key)),
            Ok((Outcome::HandBack, _)) => None,
            Err(e) if e.hands_back() => {
                tracing::warn!(job = %job, error = %e, "cannot publish the job's events");
                None
            }
            Err(e) => {
                let reason = e.reason(&self.ctx.name);
                Some((Ending::new(e.status(), None, reason), None))
            }
        };
        let truncated = pump.truncated();
        let flushed = pump.finish().await.is_ok();
        let Some((ending, output_key)) = ended.filter(|_| flushed) else {
            let queue = self.queue.as_ref();
            finish::hand_back(&self.ctx, queue, &self.lease, job, self.started).await;
            // Handed back, nothing of it left here: if this worker leases it again it is a new run, not a duplicate.
            drop(self.held.take());
            if let Some(place) = self.parked.take() {
                // Not straight back here: another worker may take the job; this place waits for a slot to free.
                tokio::select! {
                    _ = place.slot() => {}
                    _ = self.drain.cancelled() => {}
                }
            }
            return;
        };
        let (status, exit_code) = (ending.status, ending.exit_code);
        let finished = finish::Finished {
            ctx: &self.ctx,
            queue: self.queue.as_ref(),
            lease: &self.lease,
            request: &self.request,
            accepted_at: self.accepted_at,
            graded: self.graded.as_ref(),
            timings: &self.timings,
            ending,
            output_key,
            output_truncated: truncated,
            gpus: &self.gpu_ids,
            gpu_use: &self.gpu_use,
            results: self.results.as_ref(),
            // When its commands began (a job that ended before, such as a refused upload: when it was leased).
            started_at: self.milestones.commands_began_at.unwrap_or(leased_at),
        };
        if finished.complete(pump.into_publisher()).await {
            // The user's GPU time, for the course's budget: the commands' wall time on the GPUs they held.
            let gpu_seconds =
                self.timings.iter().map(|t| t.seconds).sum::<f64>() * f64::from(self.gpus);
            if gpu_seconds > 0.0
                && let Err(e) = self
                    .ctx
                    .bus
                    .add_gpu_seconds(&self.request.user, Utc::now(), gpu_seconds)
                    .await
            {
                tracing::warn!(job = %job, error = %e, "cannot count the job's GPU time");
            }
            let m = &self.milestones;
            let ms =
                |from: Instant, to: Option<Instant>| to.map(|t| (t - from).as_secs_f64() * 1e3);
            let unix_s = |at: Option<DateTime<Utc>>| at.map(|t| t.timestamp_micros() as f64 / 1e6);
            tracing::info!(
                job = %job,
                status = %status,
                exit_code = ?exit_code,
                lease_to_container_ms = ms(m.leased, m.container_started),
                commands_to_ack_ms = m.commands_done.map(|d| d.elapsed().as_secs_f64() * 1e3),
                lease_to_ack_ms = m.leased.elapsed().as_secs_f64() * 1e3,
                commands_began_s = unix_s(m.commands_began_at),
                commands_done_s = unix_s(m.commands_done_at),
                "job finished"
            );
        }
    }

    /// Steps 3 and 4, and the first part of 5: from the upload fetched to `/build` stored. Returns how the job
    /// ended and where its `/build` was kept.
    async fn live(
        &mut self,
        pump: &mut OutputPump,
        stop: &CancellationToken,
    ) -> Result<(Outcome, Option<String>), JobError> {
        let ready = self.prepare(pump).await?;
        let ticket = self.ticket.take().expect("a job waits for its slot once");
        let job = self.request.id;
        let ahead = ticket.is_ahead();
        let slot = match ready::wait_for_slot(&self.ctx, job, ticket, stop, &self.drain).await {
            Waited::Slot(slot) => {
                if ahead && let Err(e) = self.queue.started(&self.lease).await {
                    // Still marked as waiting, it keeps borrowing off until it ends; nothing is lost.
                    tracing::warn!(job = %job, error = %e, "cannot tell the queue the job holds its slot");
                }
                slot
            }
            Waited::HandBack(why) => {
                tracing::info!(job = %job, why, "a prepared job goes back to the queue");
                return Ok((Outcome::HandBack, None));
            }
            Waited::TooLong(place) => {
                self.parked = Some(place);
                return Ok((Outcome::HandBack, None));
            }
            Waited::Cancelled(by) => {
                pump.system(&format!("Cancelled by {by} before it started"))
                    .await?;
                let ending = Ending::new(JobStatus::Cancelled, None, format!("cancelled by {by}"));
                return Ok((Outcome::Ended(ending), None));
            }
        };
        self.execute(pump, stop, ready, slot).await
    }

    /// Step 4, second half: the commands, in the job's slot; the slot is given back as soon as they are over and
    /// the container is dead, before `/build` is stored.
    async fn execute(
        &mut self,
        pump: &mut OutputPump,
        stop: &CancellationToken,
        ready: Ready,
        slot: Slot,
    ) -> Result<(Outcome, Option<String>), JobError> {
        let ctx = self.ctx.clone();
        self.started = true;
        let _listed = Listed::new(&ctx, self.request.id);
        let Ready {
            limits,
            image,
            sandbox,
            mut first,
            made_for,
            gpus,
        } = ready;
        // The GPUs first, so that the job's "running" line can name them: a job whose GPUs are still held by
        // another slot's job (a two-GPU job behind one-GPU ones) waits for them here, its slot held.
        let gpus = match gpus {
            Some(lease) => lease,
            None => ctx.gpus.acquire_preferring(limits.gpus, &made_for).await,
        };
        self.gpus = limits.gpus;
        let sandbox = if gpus.ids == made_for {
            sandbox
        } else {
            // The guess was wrong (another slot's job freed its GPUs first): the container is made again, and its
            // first command started when it comes to run.
            first = None;
            sandbox.remove().await;
            let spec = self.sandbox_spec(&limits, image, gpus.ids.clone());
            Sandbox::start(&ctx.docker, &spec).await?
        };
        pump.event(EventBody::Status {
            status: JobStatus::Running,
            worker: Some(ctx.name.clone()),
            detail: crate::gpu::running_on(&gpus.ids),
        })
        .await?;
        let began = Utc::now();
        self.milestones.commands_began_at = Some(began);
        let running = JobState {
            status: Some(JobStatus::Running),
            worker: Some(ctx.name.clone()),
            user: Some(self.request.user.clone()),
            queue: Some(self.request.queue.clone()),
            started_at: Some(began),
            leased_at: Some(self.milestones.leased_at),
            gpus: (!gpus.ids.is_empty()).then(|| gpus.ids.clone()),
            ..JobState::default()
        };
        let _ = ctx.bus.update_state(&self.request.id, &running).await;
        self.milestones.container_started = Some(Instant::now());
        let build = self.dir.join("build");
        let commands = run::Commands {
            ctx: &ctx,
            request: &self.request,
            limits: &limits,
            sandbox: &sandbox,
            build_dir: &build,
        };
        let watch = ctx.sampler.watch(&gpus.ids);
        let ran = commands.run(pump, stop, &mut self.timings, first).await;
        self.gpu_ids = gpus.ids.clone();
        self.gpu_use = watch.map(|w| w.finish()).unwrap_or_default();
        self.milestones.commands_done = Some(Instant::now());
        self.milestones.commands_done_at = Some(Utc::now());
        // The slot goes to the next job now, while this container is killed: the next job's first command needs a
        // `docker exec` (some 40-50 ms) before it runs anything, about as long as the kill takes, so a process this
        // job left behind dies as the next one starts instead of the slot idling for the kill.
        let killing = tokio::spawn({
            let sandbox = sandbox.clone();
            async move { sandbox.kill().await }
        });
        drop(gpus);
        drop(slot);
        drop(_listed);
        let _ = killing.await;
        sandbox.remove().await;
        let (outcome, over_quota) = ran?;
        let Outcome::Ended(ending) = outcome else {
            return Ok((outcome, None));
        };
        // The container is gone: nothing can swap results.json for a link while it is read.
        let read = finish::read_results(&build, pump).await?;
        let required = self.graded.as_ref().is_some_and(|g| g.results_required);
        let outcome = Outcome::Ended(finish::judge_results(ending, required, &read));
        self.results = read.ok();
        let kept = finish::keep_build(
            &ctx,
            &self.request,
            &build,
            limits.output_bytes,
            over_quota,
            self.graded.as_ref(),
            pump,
        )
        .await?;
        Ok((outcome, kept))
    }

    /// Removes the container and the job directory, whatever happened.
    async fn clean_up(&self) {
        remove_container(&self.ctx.docker, &self.container).await;
        if let Err(e) = tokio::fs::remove_dir_all(&self.dir).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(job = %self.request.id, error = %e, "could not remove the job directory");
        }
    }
}

/// Lists a job among those this worker runs (its heartbeat's `jobs`) while its commands run.
struct Listed<'a> {
    ctx: &'a WorkerContext,
    id: String,
}

impl<'a> Listed<'a> {
    fn new(ctx: &'a WorkerContext, job: rai_common::JobId) -> Listed<'a> {
        let id = job.to_string();
        ctx.running_jobs
            .lock()
            .expect("never poisoned")
            .push(id.clone());
        Listed { ctx, id }
    }
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        self.ctx
            .running_jobs
            .lock()
            .expect("never poisoned")
            .retain(|j| *j != self.id);
    }
}

/// Counts a job among those this worker holds ([`WorkerContext::held_jobs`]) while it lives.
struct Held {
    ctx: Arc<WorkerContext>,
    id: String,
}

/// Why a job could not be held.
enum HeldAlready {
    /// By this delivery's own message: a redelivery of what the running job will ack.
    ByThisMessage,
    /// By another message for the same job id (a replayed or repeated message).
    ByAnotherMessage,
}

impl Held {
    /// Holds `job` for the queue message `message`, unless this worker already holds it.
    fn new(
        ctx: Arc<WorkerContext>,
        job: rai_common::JobId,
        message: &str,
    ) -> Result<Held, HeldAlready> {
        let id = job.to_string();
        let mut held = ctx.held_jobs.lock().expect("never poisoned");
        match held.get(&id) {
            Some(by) if by == message => Err(HeldAlready::ByThisMessage),
            Some(_) => Err(HeldAlready::ByAnotherMessage),
            None => {
                held.insert(id.clone(), message.to_string());
                drop(held);
                Ok(Held { ctx, id })
            }
        }
    }

    /// [`Held::new`], waiting up to `patience` for a hold by another message to end (the job's first run
    /// finishing): then this delivery goes on, and its claim finds the job finished or to be rerun.
    async fn wait_for(
        ctx: Arc<WorkerContext>,
        job: rai_common::JobId,
        message: &str,
        patience: std::time::Duration,
    ) -> Result<Held, HeldAlready> {
        let deadline = Instant::now() + patience;
        loop {
            match Held::new(ctx.clone(), job, message) {
                Err(HeldAlready::ByAnotherMessage) if Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                held => return held,
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.ctx
            .held_jobs
            .lock()
            .expect("never poisoned")
            .remove(&self.id);
    }
}
