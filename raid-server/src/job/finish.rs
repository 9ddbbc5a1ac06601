//! Step 5 of a job's life: what is kept of it, and the message's end.
//!
//! In this order, so that nothing is lost if the worker dies between two steps: `/build` packed and stored (with
//! its download link as an event), the record written, the `end` event published, the job's state and `done` mark
//! set, and only then the message acked. A job that cannot be finished (its record or `end` event cannot be
//! stored) is handed back instead: its claim dropped and its message released, so another worker runs it again.

use std::path::Path;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use rai_backends::events::JobPublisher;
use rai_backends::queue::{JobQueue, Lease};
use rai_common::archive::PackOptions;
use rai_common::event::{EventBody, JobStatus};
use rai_common::objects::{output_key, record_key};
use rai_common::record::JobRecord;
use rai_common::state::JobState;
use rai_common::{JobId, JobRequest};

use super::Ending;
use crate::context::WorkerContext;
use crate::errors::{JobError, OutputError};
use crate::output::OutputPump;

/// Packs `/build` (never following a link out of it) and stores it, unless it is already known to be over its
/// quota; says in the job's events where it is, or why it was not kept. Returns its store key when kept.
pub(super) async fn keep_build(
    ctx: &WorkerContext,
    request: &JobRequest,
    build: &Path,
    max_bytes: u64,
    over_quota: Option<String>,
    graded: Option<&rai_common::job::Graded>,
    pump: &mut OutputPump,
) -> Result<Option<String>, JobError> {
    let key = output_key(&request.user, &request.id);
    let kept = match over_quota {
        Some(reason) => Err(OutputError::OverQuota(reason)),
        None => store_build(ctx, build, &key, max_bytes).await,
    };
    match kept {
        Ok(()) => {
            // A graded run's output is kept for the course (the gateway's sweep honours the course file); any other
            // may be expired by the store's own rules. Untagged, it is kept: nothing is lost, the sweep deletes it.
            if graded.is_none()
                && let Err(e) = ctx.store.mark_expirable(&key).await
            {
                tracing::warn!(job = %request.id, error = %e, "cannot mark the output expirable");
            }
            pump.event(EventBody::Artifact {}).await?;
            Ok(Some(key))
        }
        Err(reason) => {
            pump.system(&format!("/build was not kept: {reason}"))
                .await?;
            Ok(None)
        }
    }
}

/// Why a job has no results: it wrote none, or what it wrote could not be read.
#[derive(Debug)]
pub(super) enum NoResults {
    Absent,
    Unreadable(String),
}

/// Reads `/build/results.json` after the commands end (the job's scores, in Gradescope's format): a regular file
/// only (never a link), bounded in size, parsed strictly. A file that cannot be read gets one ✱ line saying where
/// and what; the job ends as it would have all the same.
pub(super) async fn read_results(
    build: &Path,
    pump: &mut OutputPump,
) -> Result<Result<rai_common::results::Results, NoResults>, JobError> {
    use rai_common::results::{MAX_RESULTS_BYTES, Results};
    let path = build.join("results.json");
    let problem = match tokio::fs::symlink_metadata(&path).await {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Err(NoResults::Absent)),
        Err(e) => format!("results.json cannot be read: {e}"),
        Ok(meta) if !meta.file_type().is_file() => {
            "results.json is not a regular file (a link or a folder)".to_string()
        }
        Ok(meta) if meta.len() > MAX_RESULTS_BYTES => format!(
            "results.json is {} bytes, over the {MAX_RESULTS_BYTES} the worker reads",
            meta.len()
        ),
        Ok(_) => match tokio::fs::read(&path).await {
            Err(e) => format!("results.json cannot be read: {e}"),
            Ok(bytes) => match Results::parse(&bytes) {
                Ok(results) => {
                    pump.system(&format!(
                        "Scores read from /build/results.json ({} tests); the job's record keeps them.",
                        results.tests.len()
                    ))
                    .await?;
                    return Ok(Ok(results));
                }
                Err(e) => e.to_string(),
            },
        },
    };
    pump.system(&format!("{problem}; the job's scores were not kept"))
        .await?;
    Ok(Err(NoResults::Unreadable(problem)))
}

/// A graded run of an assignment that requires results and has none has failed, whatever its commands did.
pub(super) fn judge_results(
    ending: super::Ending,
    required: bool,
    read: &Result<rai_common::results::Results, NoResults>,
) -> super::Ending {
    let Err(why) = read else { return ending };
    if !required || ending.status != JobStatus::Succeeded {
        return ending;
    }
    let why = match why {
        NoResults::Absent => "the job wrote no /build/results.json".to_string(),
        NoResults::Unreadable(problem) => problem.clone(),
    };
    super::Ending {
        status: JobStatus::Failed,
        exit_code: ending.exit_code,
        reason: Some(format!(
            "the assignment requires the job's scores in /build/results.json, and {why}"
        )),
    }
}

async fn store_build(
    ctx: &WorkerContext,
    build: &Path,
    key: &str,
    max_bytes: u64,
) -> Result<(), OutputError> {
    let (reader, writer) = tokio::io::duplex(1 << 20);
    let root = build.to_path_buf();
    let opts = PackOptions {
        max_bytes,
        ..PackOptions::default()
    };
    let packer = tokio::task::spawn_blocking(move || {
        let writer = tokio_util::io::SyncIoBridge::new(writer);
        rai_common::archive::pack(&root, writer, &opts, |_| {})
    });
    let put = ctx.store.put(key, Box::pin(reader)).await;
    packer
        .await
        .map_err(OutputError::Task)?
        .map_err(OutputError::Pack)?;
    put.map_err(OutputError::Store)?;
    Ok(())
}

/// How a job that ran to its end is finished.
pub(super) struct Finished<'a> {
    pub ctx: &'a WorkerContext,
    pub queue: &'a dyn JobQueue,
    pub lease: &'a Lease,
    pub request: &'a JobRequest,
    pub accepted_at: DateTime<Utc>,
    pub graded: Option<&'a rai_common::job::Graded>,
    pub timings: &'a [rai_common::record::CommandTime],
    pub ending: Ending,
    pub output_key: Option<String>,
    pub output_truncated: bool,
    /// The devices the commands ran with, and their sampled use.
    pub gpus: &'a [String],
    pub gpu_use: &'a [rai_common::state::GpuUse],
    /// The scores the job wrote, when readable.
    pub results: Option<&'a rai_common::results::Results>,
    pub started_at: DateTime<Utc>,
}

impl Finished<'_> {
    /// Record, `end` event, state, `done`, ack. Returns false when the job was handed back instead.
    pub async fn complete(self, mut publisher: JobPublisher) -> bool {
        let (ctx, request, job) = (self.ctx, self.request, self.request.id);
        let record = self.record();
        let json = serde_json::to_vec_pretty(&record).expect("a record always serializes");
        let stored = ctx
            .store
            .put_bytes(&record_key(&request.user, &job), json)
            .await;
        if let Err(e) = stored {
            crate::metrics::metrics().backend_error(&e);
            tracing::error!(job = %job, error = %e, "cannot store the job record; handing the job back");
            hand_back(ctx, self.queue, self.lease, job, true).await;
            return false;
        }
        let Ending {
            status,
            exit_code,
            reason,
        } = self.ending;
        let end = EventBody::End {
            status,
            exit_code,
            reason: reason.clone(),
        };
        if let Err(e) = publisher.send(end).await {
            tracing::error!(job = %job, error = %e, "cannot publish the end event; handing the job back");
            let _ = self.queue.release(self.lease).await;
            return false;
        }
        let state = JobState {
            status: Some(status),
            finished_at: Some(record.finished_at),
            exit_code,
            reason,
            gpu_use: (!self.gpu_use.is_empty()).then(|| self.gpu_use.to_vec()),
            ..JobState::default()
        };
        let _ = ctx.bus.update_state(&job, &state).await;
        archive_log(ctx, &request.user, job).await;
        mark_done(ctx, job).await;
        if let Err(e) = self.queue.ack(self.lease).await {
            tracing::warn!(job = %job, error = %e, "could not ack a finished job (it will be dropped on redelivery)");
        }
        ctx.completed.fetch_add(1, Ordering::Relaxed);
        let waited = (self.started_at - self.accepted_at)
            .to_std()
            .unwrap_or_default();
        let ran = (record.finished_at - self.started_at)
            .to_std()
            .unwrap_or_default();
        crate::metrics::metrics().job_finished(&request.queue, status.as_str(), waited, ran);
        true
    }

    fn record(&self) -> JobRecord {
        let request = self.request;
        JobRecord {
            id: request.id.to_string(),
            user: request.user.clone(),
            team: request.team.clone(),
            queue: request.queue.clone(),
            worker: self.ctx.name.clone(),
            status: self.ending.status,
            exit_code: self.ending.exit_code,
            reason: self.ending.reason.clone(),
            image: request.build.rai.image.clone(),
            accepted_at: self.accepted_at,
            started_at: self.started_at,
            finished_at: Utc::now(),
            output_key: self.output_key.clone(),
            output_truncated: self.output_truncated,
            assignment: self.graded.map(|g| g.assignment.clone()),
            late: self.graded.is_some_and(|g| g.late),
            commands: self.timings.to_vec(),
            gpus: self.gpus.to_vec(),
            gpu_use: self.gpu_use.to_vec(),
            results: self.results.cloned(),
            regrade_of: self
                .graded
                .and_then(|g| g.regrade_of)
                .map(|j| j.to_string()),
            sweep: request.sweep.as_ref().map(|s| s.id.to_string()),
            combination: request.sweep.as_ref().map(|s| s.combination.label()),
        }
    }
}

/// Marks the job done, retrying through a Redis hiccup. If it still fails the job is acked all the same: its `end`
/// event is published, and a redelivery finds that event and is dropped (the claim script), so it never runs twice.
async fn mark_done(ctx: &WorkerContext, job: JobId) {
    let mut delays = rai_backends::retry::for_up_to(MARK_DONE_RETRY_FOR);
    loop {
        match ctx.bus.mark_done(&job).await {
            Ok(()) => return,
            Err(e) => match delays.next() {
                Some(delay) => {
                    tracing::warn!(job = %job, error = %e, "cannot mark the job done; retrying");
                    tokio::time::sleep(delay).await;
                }
                None => {
                    tracing::error!(job = %job, error = %e, "cannot mark the job done; acking it anyway (its end event is published, so it will not run again)");
                    return;
                }
            },
        }
    }
}

/// Stores the job's complete event log beside its record, so Redis keeps it only `events.live_retention` more;
/// retried through a hiccup. A log that cannot be stored stays in Redis for the full retention (logged): the job
/// still completes, and nothing is lost.
async fn archive_log(ctx: &WorkerContext, user: &str, job: JobId) {
    let keep = ctx.config.events.live_retention.as_duration();
    let mut delays = rai_backends::retry::for_up_to(MARK_DONE_RETRY_FOR);
    loop {
        match rai_backends::events::archive::archive_log(
            &ctx.bus,
            ctx.store.as_ref(),
            user,
            &job,
            keep,
        )
        .await
        {
            Ok(events) => {
                tracing::debug!(job = %job, events, "stored the job's log");
                return;
            }
            Err(e) => match delays.next() {
                Some(delay) => {
                    tracing::warn!(job = %job, error = %e, "cannot store the job's log; retrying");
                    tokio::time::sleep(delay).await;
                }
                None => {
                    crate::metrics::metrics()
                        .backend_errors
                        .get_or_create(&crate::metrics::BackendLabels { backend: "store" })
                        .inc();
                    tracing::error!(job = %job, error = %e, "cannot store the job's log; Redis keeps it for events.retention");
                    return;
                }
            },
        }
    }
}

/// How long marking a job done keeps retrying.
const MARK_DONE_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// Gives the job back to the queue for another worker (or this one, later): its claim dropped, its state
/// `requeued`, its message released.
pub(super) async fn hand_back(
    ctx: &WorkerContext,
    queue: &dyn JobQueue,
    lease: &Lease,
    job: JobId,
    started: bool,
) {
    tracing::info!(job = %job, started, "handing the job back to the queue");
    let _ = ctx.bus.unclaim(&job).await;
    // A job handed back before its commands began (it waited for its slot) is simply queued again.
    let status = if started {
        JobStatus::Requeued
    } else {
        JobStatus::Queued
    };
    let _ = ctx
        .bus
        .update_state(&job, &JobState::with_status(status))
        .await;
    let _ = queue.release(lease).await;
}
