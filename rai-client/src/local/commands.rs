//! The command loop of a local run, as a worker's: each build command in turn in the one container, its output sent
//! as it comes, and four things that stop the job from outside the command: the time limit, the student's Ctrl-C
//! (SIGTERM to the job's processes, a kill after the course's grace period, as `rai cancel` on a worker), `/build`
//! passing its quota, and the kernel's OOM killer. A failing command ends the job with its exit code; the words of
//! every end are the workers' own ([`rai_sandbox::ending`]).

use std::path::Path;
use std::time::Duration;

use rai_common::BuildSpec;
use rai_common::archive::PackOptions;
use rai_common::event::{EventBody, JobStatus};
use rai_sandbox::build_quota::{BuildQuota, watch_build};
use rai_sandbox::{JobLimits, Sandbox, Stream, ending};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Events, LocalEnd, LocalError};

/// Who cancelled a local job.
const BY: &str = "you (Ctrl-C)";

/// The build commands of one local job, run in its started container.
pub(super) struct Commands<'a> {
    pub spec: &'a BuildSpec,
    pub limits: &'a JobLimits,
    pub sandbox: &'a Sandbox,
    pub build_dir: &'a Path,
    pub cancel_grace: Duration,
}

/// What stopped a command from outside.
enum Stopped {
    TimedOut,
    Cancelled,
    OverQuota(String),
}

impl Commands<'_> {
    /// Runs every command until one fails or the job is stopped.
    pub async fn run(
        &self,
        events: &Events,
        stop: &CancellationToken,
    ) -> Result<LocalEnd, LocalError> {
        let quota = BuildQuota {
            max_bytes: self.limits.output_bytes,
            max_entries: PackOptions::default().max_files,
        };
        let mut watch = watch_build(self.build_dir, quota);
        let deadline = Instant::now() + self.limits.time;
        for command in &self.spec.commands.build {
            events.system(&format!("Running {command}")).await?;
            let (exit_code, stopped) = self
                .run_one(command, events, stop, deadline, &mut watch.over_quota)
                .await?;
            let end = |status, reason: String| LocalEnd {
                status,
                exit_code,
                reason: Some(reason),
            };
            match stopped {
                Some(Stopped::TimedOut) => {
                    let reason = ending::time_limit_exceeded(self.limits.time);
                    return Ok(LocalEnd {
                        exit_code: None,
                        ..end(JobStatus::TimedOut, reason)
                    });
                }
                Some(Stopped::Cancelled) => {
                    return Ok(end(JobStatus::Cancelled, ending::cancelled_by(BY)));
                }
                Some(Stopped::OverQuota(reason)) => {
                    return Ok(LocalEnd {
                        exit_code: None,
                        ..end(JobStatus::Failed, reason)
                    });
                }
                None => {}
            }
            if self.sandbox.oom_killed().await {
                let reason = ending::out_of_memory(self.sandbox.memory_bytes());
                return Ok(end(JobStatus::Failed, reason));
            }
            match exit_code {
                Some(0) => {}
                Some(c) => return Ok(end(JobStatus::Failed, ending::command_failed(command, c))),
                None => {
                    return Ok(end(
                        JobStatus::Error,
                        format!(
                            "the job's container stopped from outside while `{command}` ran (Docker restarted \
                             or removed it), so its exit code is unknown"
                        ),
                    ));
                }
            }
        }
        // A last look: a job that wrote past the quota between two looks is over it all the same.
        let dir = self.build_dir.to_path_buf();
        let usage = tokio::task::spawn_blocking(move || quota.measure(&dir))
            .await
            .ok();
        if let Some(reason) = usage.and_then(|u| quota.exceeded(u)) {
            return Ok(LocalEnd {
                status: JobStatus::Failed,
                exit_code: None,
                reason: Some(reason),
            });
        }
        Ok(LocalEnd {
            status: JobStatus::Succeeded,
            exit_code: Some(0),
            reason: None,
        })
    }

    /// Runs one command to its end, sending its output and watching for everything that may stop it.
    async fn run_one(
        &self,
        command: &str,
        events: &Events,
        stop: &CancellationToken,
        deadline: Instant,
        over_quota: &mut tokio::sync::watch::Receiver<Option<String>>,
    ) -> Result<(Option<i64>, Option<Stopped>), LocalError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let exec = {
            let (sandbox, command) = (self.sandbox.clone(), command.to_string());
            tokio::spawn(async move { sandbox.run(&command, tx).await })
        };
        let mut text = [Utf8Text::default(), Utf8Text::default()];
        let mut stopped: Option<Stopped> = None;
        let mut cancelled_at: Option<Instant> = None;
        let mut killed = false;
        loop {
            let grace_over = async {
                match cancelled_at {
                    Some(at) => tokio::time::sleep_until(at + self.cancel_grace).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                chunk = rx.recv() => match chunk {
                    Some((stream, bytes)) => {
                        let i = stream as usize;
                        let data = text[i].push(&bytes);
                        if !data.is_empty() {
                            events.send(body(stream, data)).await?;
                        }
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline), if stopped.is_none() => stopped = Some(Stopped::TimedOut),
                _ = stop.cancelled(), if cancelled_at.is_none() && stopped.is_none() => {
                    events.system(&format!("Cancelled by {BY}; stopping the job")).await?;
                    self.sandbox.terminate_processes().await;
                    cancelled_at = Some(Instant::now());
                }
                _ = grace_over, if stopped.is_none() => stopped = Some(Stopped::Cancelled),
                changed = over_quota.changed(), if stopped.is_none() => {
                    let reason = over_quota.borrow().clone();
                    if let (Ok(()), Some(reason)) = (changed, reason) {
                        stopped = Some(Stopped::OverQuota(reason));
                    }
                }
            }
            if stopped.is_some() && !killed {
                self.sandbox.kill().await;
                killed = true;
            }
        }
        for (stream, rest) in [Stream::Stdout, Stream::Stderr]
            .into_iter()
            .zip(&mut text)
            .map(|(s, t)| (s, t.rest()))
        {
            if !rest.is_empty() {
                events.send(body(stream, rest)).await?;
            }
        }
        let exit_code = exec.await.ok().and_then(|r| r.ok()).flatten();
        // Cancelled and ended within the grace period: cancelled all the same, as on a worker.
        if stopped.is_none() && cancelled_at.is_some() {
            stopped = Some(Stopped::Cancelled);
        }
        Ok((exit_code, stopped))
    }
}

fn body(stream: Stream, data: String) -> EventBody {
    match stream {
        Stream::Stdout => EventBody::Stdout { data },
        Stream::Stderr => EventBody::Stderr { data },
    }
}

/// Output turned into text as it comes, a character split between two chunks kept whole.
#[derive(Default)]
struct Utf8Text {
    held: Vec<u8>,
}

impl Utf8Text {
    /// The text of what came so far, less an unfinished character at its end (held for the next chunk).
    fn push(&mut self, bytes: &[u8]) -> String {
        self.held.extend_from_slice(bytes);
        let complete = match std::str::from_utf8(&self.held) {
            Ok(_) => self.held.len(),
            // An unfinished character at the end waits; invalid bytes elsewhere are replaced.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.held.len(),
        };
        let rest = self.held.split_off(complete);
        let text = String::from_utf8_lossy(&self.held).into_owned();
        self.held = rest;
        text
    }

    /// Whatever is held at the end of the output.
    fn rest(&mut self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut self.held)).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_between_chunks_is_kept_whole() {
        let mut t = Utf8Text::default();
        let snow = "☃".as_bytes();
        assert_eq!(t.push(b"a"), "a");
        assert_eq!(t.push(&snow[..1]), "");
        assert_eq!(t.push(&snow[1..]), "☃");
        assert_eq!(t.push(&[0xff, b'b']), "\u{fffd}b");
        assert_eq!(t.push(&snow[..2]), "");
        assert_eq!(t.rest(), "\u{fffd}");
    }
}
