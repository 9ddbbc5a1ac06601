//! Step 4 of a job's life: the container and the command loop.
//!
//! Each build command runs in turn in one container (`docker exec`), its output pumped into events as it comes.
//! While a command runs, five things can stop the job from outside the command: the time limit, a cancel request
//! (SIGTERM to the job's processes, a kill after the grace period), `/build` passing its quota, and the worker
//! handing the job back (draining, or the lease lost). A failing command stops the job with its exit code; an OOM
//! kill is read from the container's memory cgroup.

use std::path::Path;
use std::time::Duration;

use rai_common::JobRequest;
use rai_common::archive::PackOptions;
use rai_common::event::JobStatus;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Ending, Outcome};
use crate::context::WorkerContext;
use crate::errors::JobError;
use crate::output::OutputPump;
use crate::policy::JobLimits;
use crate::sandbox::{GatedCommand, Sandbox};
use rai_common::record::CommandTime;
use rai_sandbox::build_quota::{BuildQuota, BuildWatch, watch_build};
use rai_sandbox::ending;

/// How often a running command checks for a cancel request.
const CANCEL_POLL: Duration = Duration::from_millis(500);
/// How often buffered output is flushed as events.
const FLUSH_EVERY: Duration = Duration::from_millis(25);

/// The build commands of one job, run in its started container.
pub(super) struct Commands<'a> {
    pub ctx: &'a WorkerContext,
    pub request: &'a JobRequest,
    pub limits: &'a JobLimits,
    pub sandbox: &'a Sandbox,
    /// The host folder mounted as `/build`.
    pub build_dir: &'a Path,
}

/// Why a command was stopped from outside.
enum Stopped {
    Ended(Ending),
    HandBack,
}

/// What one command came to.
struct CommandEnd {
    exit_code: Option<i64>,
    stopped: Option<Stopped>,
    cancelled_by: Option<String>,
}

/// The state that outlives one command: the job's deadline and its `/build` watcher (stopped when dropped).
struct Watch {
    deadline: Instant,
    build: BuildWatch,
}

impl Commands<'_> {
    /// Runs every command until one fails or the job is stopped; `stop` is cancelled when the worker hands the job
    /// back. Returns how the job ended and, when `/build` went over its quota, why.
    /// `first`, when given, is the first command already started and held at its gate (see `super::ready`).
    pub async fn run(
        &self,
        pump: &mut OutputPump,
        stop: &CancellationToken,
        timings: &mut Vec<CommandTime>,
        mut first: Option<GatedCommand>,
    ) -> Result<(Outcome, Option<String>), JobError> {
        let quota = BuildQuota {
            max_bytes: self.limits.output_bytes,
            max_entries: PackOptions::default().max_files,
        };
        let build = watch_build(self.build_dir, quota);
        let mut watch = Watch {
            deadline: Instant::now() + self.limits.time,
            build,
        };
        let mut outcome = Outcome::Ended(Ending::succeeded());
        for command in &self.request.build.commands.build {
            pump.system(&format!("Running {command}")).await?;
            let started = Instant::now();
            let end = self
                .run_one(command, first.take(), pump, stop, &mut watch)
                .await?;
            timings.push(CommandTime {
                exit_code: end.exit_code,
                seconds: started.elapsed().as_secs_f64(),
            });
            if let Some(next) = self.judge(command, end).await {
                outcome = next;
                break;
            }
        }
        let mut over_quota = watch.build.over_quota.borrow().clone();
        // A last look: a job that wrote past the quota between two looks and ended is over it all the same.
        if over_quota.is_none() && matches!(outcome, Outcome::Ended(_)) {
            let dir = self.build_dir.to_path_buf();
            let usage = tokio::task::spawn_blocking(move || quota.measure(&dir))
                .await
                .ok();
            over_quota = usage.and_then(|u| quota.exceeded(u));
            if let (Some(reason), Outcome::Ended(ending)) = (&over_quota, &outcome)
                && ending.status == JobStatus::Succeeded
            {
                outcome = Outcome::Ended(Ending::new(JobStatus::Failed, None, reason.clone()));
            }
        }
        Ok((outcome, over_quota))
    }

    /// Runs one command to its end, streaming its output and watching for everything that may stop it.
    async fn run_one(
        &self,
        command: &str,
        gated: Option<GatedCommand>,
        pump: &mut OutputPump,
        stop: &CancellationToken,
        watch: &mut Watch,
    ) -> Result<CommandEnd, JobError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let exec = {
            let (sandbox, command) = (self.sandbox.clone(), command.to_string());
            tokio::spawn(async move {
                match gated {
                    Some(gated) => gated.run(tx).await,
                    None => sandbox.run(&command, tx).await,
                }
            })
        };
        let cancel_grace = self.ctx.config.raid.cancel_grace.as_duration();
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        let mut cancel_poll = tokio::time::interval(CANCEL_POLL);
        let mut cancelled: Option<(String, Instant)> = None;
        let mut stopped: Option<Stopped> = None;
        let mut killed = false;
        loop {
            tokio::select! {
                chunk = rx.recv() => match chunk {
                    Some((stream, bytes)) => pump.push(stream, &bytes).await?,
                    None => break,
                },
                _ = flush.tick() => pump.tick().await?,
                _ = tokio::time::sleep_until(watch.deadline), if stopped.is_none() => {
                    let reason = ending::time_limit_exceeded(self.limits.time);
                    stopped = Some(Stopped::Ended(Ending::new(JobStatus::TimedOut, None, reason)));
                }
                _ = cancel_poll.tick(), if stopped.is_none() => match &cancelled {
                    Some((by, since)) if since.elapsed() >= cancel_grace => {
                        let reason = ending::cancelled_by(by);
                        stopped = Some(Stopped::Ended(Ending::new(JobStatus::Cancelled, None, reason)));
                    }
                    Some(_) => {}
                    None => if let Ok(Some(by)) = self.ctx.bus.cancel_requested(&self.request.id).await {
                        pump.system(&format!("Cancelled by {by}; stopping the job")).await?;
                        self.sandbox.terminate_processes().await;
                        cancelled = Some((by, Instant::now()));
                    },
                },
                _ = stop.cancelled(), if stopped.is_none() => stopped = Some(Stopped::HandBack),
                changed = watch.build.over_quota.changed(), if stopped.is_none() => {
                    let reason = watch.build.over_quota.borrow().clone();
                    if let (Ok(()), Some(reason)) = (changed, reason) {
                        stopped = Some(Stopped::Ended(Ending::new(JobStatus::Failed, None, reason)));
                    }
                }
            }
            // Whatever stopped the job, the container dies now; its output stream then ends the loop.
            if stopped.is_some() && !killed {
                self.sandbox.kill().await;
                killed = true;
            }
        }
        let exit_code = exec.await.ok().and_then(|r| r.ok()).flatten();
        pump.finish().await?;
        Ok(CommandEnd {
            exit_code,
            stopped,
            cancelled_by: cancelled.map(|(by, _)| by),
        })
    }

    /// How the job goes on after a command: `None` to run the next one, or how it ended.
    async fn judge(&self, command: &str, end: CommandEnd) -> Option<Outcome> {
        let CommandEnd {
            exit_code,
            stopped,
            cancelled_by,
        } = end;
        match stopped {
            Some(Stopped::HandBack) => return Some(Outcome::HandBack),
            Some(Stopped::Ended(ending)) => return Some(Outcome::Ended(ending)),
            None => {}
        }
        let ending = if let Some(by) = cancelled_by {
            Ending::new(JobStatus::Cancelled, exit_code, ending::cancelled_by(&by))
        } else if self.sandbox.oom_killed().await {
            let reason = ending::out_of_memory(self.sandbox.memory_bytes());
            Ending::new(JobStatus::Failed, exit_code, reason)
        } else {
            match exit_code {
                Some(0) => return None,
                Some(c) => Ending::new(
                    JobStatus::Failed,
                    Some(c),
                    ending::command_failed(command, c),
                ),
                None => Ending::new(
                    JobStatus::Error,
                    None,
                    format!(
                        "the job's container stopped from outside while `{command}` ran, so its exit code is \
                         unknown (worker {}'s Docker engine restarted or removed it); your job is not at fault: \
                         submit again, and tell your course staff if it keeps happening",
                        self.ctx.name
                    ),
                ),
            }
        };
        Some(Outcome::Ended(ending))
    }
}
