//! `rai workers` (staff): each worker, its queues, slots, GPUs, running jobs and last heartbeat. A worker that
//! stopped heartbeating is shown as `STOPPED` with how long it has been silent: its jobs come back through the queue
//! once their leases run out.

use chrono::{DateTime, Utc};
use rai_common::api::{WorkerView, Workers};
use rai_common::state::WorkerInfo;

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit;
use crate::terminal::visible;

pub async fn run(global: &GlobalArgs, json: bool) -> anyhow::Result<u8> {
    let session = context::session(global)?;
    let workers = session.client.workers().await?;
    if json {
        for w in &workers.workers {
            println!("{}", serde_json::to_string(w)?);
        }
        return Ok(exit::OK);
    }
    print!("{}", table(&workers));
    Ok(exit::OK)
}

/// How long ago `then` was, as a person reads it: `4s`, `3m`, `2h`.
fn ago(then: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(then) = then else {
        return "never".to_string();
    };
    let s = (now - then).num_seconds().max(0);
    match s {
        0..120 => format!("{s}s ago"),
        120..7200 => format!("{}m ago", s / 60),
        _ => format!("{}h ago", s / 3600),
    }
}

/// Slots running a job: the job ids a worker lists; a worker older than the job list (no `beat_at`) counted the
/// messages it held, which now also holds jobs ready for a slot.
fn busy(info: &WorkerInfo) -> usize {
    if info.beat_at.is_some() {
        info.jobs.len()
    } else {
        info.running.len()
    }
}

fn line(w: &WorkerView, now: DateTime<Utc>) -> String {
    let info = &w.info;
    format!(
        "{:<20} {:<8} {:<24} {:>5} {:>4}  {:<12} {}\n",
        visible(&info.name),
        if w.alive { "up" } else { "STOPPED" },
        visible(&info.queues.join(",")),
        format!("{}/{}", busy(info), info.slots),
        info.gpus,
        ago(info.beat_at, now),
        if info.jobs.is_empty() {
            "-".to_string()
        } else {
            visible(&info.jobs.join(" ")).into_owned()
        },
    )
}

/// The table `rai workers` prints.
pub fn table(workers: &Workers) -> String {
    if workers.workers.is_empty() {
        return "No worker has a heartbeat: none is running (start raid, see docs/admin.md).\n"
            .to_string();
    }
    let mut out = format!(
        "{:<20} {:<8} {:<24} {:>5} {:>4}  {:<12} {}\n",
        "WORKER", "STATE", "QUEUES", "SLOTS", "GPUS", "HEARTBEAT", "JOBS"
    );
    for w in &workers.workers {
        out.push_str(&line(w, workers.now));
    }
    let stopped = workers.workers.iter().filter(|w| !w.alive).count();
    if stopped > 0 {
        out.push_str(&format!(
            "{stopped} worker{} stopped heartbeating: check the machine (systemctl status raid, journalctl -u raid); \
             its jobs go back to the queue when their leases end.\n",
            if stopped == 1 { "" } else { "s" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rai_common::state::WorkerInfo;

    fn worker(name: &str, beat: DateTime<Utc>, now: DateTime<Utc>, jobs: &[&str]) -> WorkerView {
        let info = WorkerInfo {
            name: name.into(),
            queues: vec!["rai".into(), "rai_amd64".into()],
            slots: 2,
            running: jobs.iter().map(|j| format!("msg-{j}")).collect(),
            gpus: 1,
            version: "0".into(),
            started_at: beat,
            jobs: jobs.iter().map(|j| j.to_string()).collect(),
            beat_at: Some(beat),
        };
        WorkerView {
            alive: info.is_alive(now),
            info,
        }
    }

    #[test]
    fn a_silent_worker_is_shown_stopped_with_its_silence() {
        let now = Utc::now();
        let table = table(&Workers {
            now,
            workers: vec![
                worker("gpu1", now - chrono::Duration::seconds(3), now, &["01JOB"]),
                worker("gpu2", now - chrono::Duration::minutes(7), now, &[]),
            ],
        });
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[1].starts_with("gpu1") && lines[1].contains(" up "),
            "{table}"
        );
        assert!(
            lines[1].contains("1/2") && lines[1].contains("3s ago") && lines[1].ends_with("01JOB")
        );
        assert!(
            lines[2].contains("STOPPED") && lines[2].contains("7m ago"),
            "{table}"
        );
        assert!(
            lines[3].starts_with("1 worker stopped heartbeating"),
            "{table}"
        );
    }

    #[test]
    fn no_worker_says_so() {
        let t = table(&Workers {
            now: Utc::now(),
            workers: vec![],
        });
        assert!(t.starts_with("No worker has a heartbeat"));
    }
}
