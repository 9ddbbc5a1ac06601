//! Printing a job's events as they come: job stdout to stdout, job stderr to stderr, rai's own `✱` lines to
//! stderr; or, with `--json`, one wire event per line on stdout. Ctrl-C detaches and says how to come back.

use std::io::Write;
use std::time::Duration;

use rai_common::JobId;
use rai_common::event::{Event, EventBody, JobStatus};

use crate::{Client, exit, terminal};

/// How following ended.
pub enum Followed {
    /// The job ended; rai exits with this code.
    Ended(u8),
    /// Ctrl-C.
    Detached,
    /// `--timeout` ran out.
    WaitTimeout,
    /// The events could not be read (the gateways unreachable after retries, or a refusal).
    Lost(String),
}

/// One of rai's own lines, on a line of its own, with nothing a student wrote able to move the cursor.
fn system(line: &str) {
    let start = if terminal::stderr_is_terminal() {
        terminal::start_own_line()
    } else {
        ""
    };
    eprintln!("{start}✱ {}", terminal::visible(line));
}

/// Prints one event as `rai` shows a job's: output to its stream, `✱` lines to stderr; or its JSON.
pub fn print(event: &Event, job: &JobId, json: bool) {
    if json {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", serde_json::to_string(event).unwrap_or_default());
        let _ = out.flush();
        return;
    }
    match &event.body {
        EventBody::Stdout { data } => {
            let data = if terminal::stdout_is_terminal() {
                terminal::job_output(data).into()
            } else {
                std::borrow::Cow::Borrowed(data.as_str())
            };
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(data.as_bytes());
            let _ = out.flush();
        }
        EventBody::Stderr { data } => {
            let data = if terminal::stderr_is_terminal() {
                terminal::job_output(data).into()
            } else {
                std::borrow::Cow::Borrowed(data.as_str())
            };
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(data.as_bytes());
            let _ = err.flush();
        }
        // The worker's lines quote the build file's commands and the job's own words.
        EventBody::System { data } => {
            let start = if terminal::stderr_is_terminal() {
                terminal::start_own_line()
            } else {
                ""
            };
            eprint!("{start}");
            for line in data.trim_end().lines() {
                eprintln!("{}", terminal::visible(line));
            }
        }
        body => {
            if let Some(line) = own_line(body, job) {
                system(&line);
            }
        }
    }
}

/// What rai says of an event that is neither the job's output nor a worker's line: its status, its stored
/// `/build`, its end.
pub fn own_line(body: &EventBody, job: &JobId) -> Option<String> {
    Some(match body {
        EventBody::Stdout { .. } | EventBody::Stderr { .. } | EventBody::System { .. } => {
            return None;
        }
        EventBody::Status {
            status: JobStatus::Running,
            worker,
            detail,
        } => format!(
            "Your job is running on {}{}.",
            worker.as_deref().unwrap_or("a worker"),
            // The worker names the job's GPUs ("GPU 0", "GPUs GPU-1a.., GPU-2b..").
            detail
                .as_deref()
                .map(|d| format!(" with {d}"))
                .unwrap_or_default()
        ),
        EventBody::Status {
            status: JobStatus::Requeued,
            detail,
            ..
        } => format!(
            "Your job was requeued{}.",
            detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ),
        EventBody::Status { status, .. } => format!("Job status: {status}."),
        EventBody::Artifact {} => {
            format!("Your /build folder is stored: `rai download {job}` fetches it.")
        }
        EventBody::End {
            status,
            exit_code,
            reason,
        } => {
            let why = reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            match status {
                JobStatus::Succeeded => format!("Job {job} succeeded."),
                JobStatus::Failed => format!(
                    "Job {job} failed{}{why}.",
                    exit_code
                        .map(|c| format!(" with exit code {c}"))
                        .unwrap_or_default()
                ),
                other => format!("Job {job} {}{why}.", other.as_str().replace('_', " ")),
            }
        }
    })
}

/// Follows `job` from the event after `after`, printing, until its end, Ctrl-C, or `timeout`.
pub async fn follow(
    client: &Client,
    job: JobId,
    after: u64,
    json: bool,
    timeout: Option<Duration>,
) -> Followed {
    let mut stream = client.follow(job, after);
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    // One listener for the whole follow: a listener made anew each turn misses a Ctrl-C that lands between two
    // turns (while an event is printed), and the student's Ctrl-C is then ignored.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let next = async {
            match deadline {
                Some(d) => tokio::time::timeout_at(d, stream.next()).await.ok(),
                None => Some(stream.next().await),
            }
        };
        tokio::select! {
            // Polled first, so its listener exists from the first turn on.
            biased;
            _ = &mut ctrl_c => return Followed::Detached,
            got = next => match got {
                None => return Followed::WaitTimeout,
                Some(None) => return Followed::Lost("the event stream ended without the job's end".into()),
                Some(Some(Err(e))) => return Followed::Lost(e.to_string()),
                Some(Some(Ok(event))) => {
                    print(&event, &job, json);
                    if let EventBody::End { status, exit_code, .. } = &event.body {
                        return Followed::Ended(exit::for_end(*status, *exit_code));
                    }
                }
            },
        }
    }
}

/// Prints what the student can do after detaching or timing out, and returns the exit code.
pub fn after(job: &JobId, how: Followed) -> u8 {
    match how {
        Followed::Ended(code) => code,
        Followed::Detached => {
            eprintln!();
            system(&format!(
                "job {job} is still running; reattach with `rai logs -f {job}`; stop it with `rai cancel {job}`"
            ));
            exit::DETACHED
        }
        Followed::WaitTimeout => {
            system(&format!(
                "stopped waiting; job {job} goes on: follow it with `rai logs -f {job}`, stop it with `rai cancel {job}`"
            ));
            exit::WAIT_TIMEOUT
        }
        Followed::Lost(reason) => {
            system(&format!(
                "lost the job's output ({reason}); job {job} goes on: try `rai logs -f {job}`"
            ));
            exit::USAGE
        }
    }
}

/// Prints a finished history (for `rai logs` without `-f`) and returns the exit code its end implies.
pub fn print_all(events: &[Event], job: &JobId, json: bool) -> u8 {
    let mut code = exit::OK;
    for e in events {
        print(e, job, json);
        if let EventBody::End {
            status, exit_code, ..
        } = &e.body
        {
            code = exit::for_end(*status, *exit_code);
        }
    }
    code
}
