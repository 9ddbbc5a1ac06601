//! The hostile-input catalogue (issue 6): bad queue messages, uploads, build files, jobs and chunked projects, each
//! sent through the real system with the outcome it must have.
//!
//! The catalogue is data: [`catalogue`] lists every case ([`HostileCase`]: its group, its name, the outcome it must
//! have, and its check), a file per group. [`run`] is the runner: it starts one `raid` over the local stack
//! ([`harness`]), runs each case in order, and after each checks that the worker is still the process first started
//! and a canary folder on the host is exactly as it was; at the end nothing may be left behind (containers, job
//! directories, queued messages), the disk must not have filled, and a plain job must still succeed. It returns one
//! row per case: the short sizes run in the ordinary tests, the full ones in `cargo bench --bench hostile`.
//!
//! What a student's `rai` can send goes through the `rai` binary; what only an attacker would send (a forged
//! message, a hand-made archive, a hostile manifest) goes straight onto the queue, into the store, or to the gateway
//! signed by hand, past every check the client makes.
//!
//! # Layout
//! - [`messages`]: messages put straight on the queue; [`uploads`]: uploads put straight in the store.
//! - [`build_files`]: build files submitted with `rai`; [`jobs`]: jobs that attack from inside the sandbox.
//! - [`projects`]: chunked projects declared to the gateway by hand.
//! - [`harness`]: the system the cases run against and what they reach it with; [`inputs`]: the hand-made
//!   archives.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

mod build_files;
mod harness;
mod inputs;
mod jobs;
mod messages;
mod projects;
mod uploads;

use crate::jobs::build_file;
use harness::{Harness, free_mib};

/// How big the big cases are.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    /// Entries in the "a million empty files" upload.
    pub empty_files: u64,
    /// Bytes the zstd bomb's one file claims.
    pub bomb_bytes: u64,
    /// Bytes of the one line a job prints without a newline.
    pub long_line: u64,
}

impl Scale {
    pub const FULL: Scale = Scale {
        empty_files: 1_000_000,
        bomb_bytes: 4 << 30,
        long_line: 100_000_000,
    };
    pub const SHORT: Scale = Scale {
        empty_files: 250_000,
        bomb_bytes: 1 << 30,
        long_line: 10_000_000,
    };
}

/// One case and what became of it.
pub struct Case {
    pub group: &'static str,
    pub name: &'static str,
    pub expected: &'static str,
    pub observed: String,
    pub ok: bool,
    pub secs: f64,
}

pub struct Report {
    pub cases: Vec<Case>,
    /// Whole-run checks that failed: the worker died, something was left behind, the host changed.
    pub problems: Vec<String>,
    pub worker_peak_rss_kib: u64,
    pub disk_used_mib: f64,
    pub elapsed: Duration,
}

impl Report {
    pub fn failures(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .cases
            .iter()
            .filter(|c| !c.ok)
            .map(|c| {
                format!(
                    "{} / {}: expected {}, observed {}",
                    c.group, c.name, c.expected, c.observed
                )
            })
            .collect();
        out.extend(self.problems.iter().cloned());
        out
    }

    pub fn print(&self, title: &str) {
        println!(
            "{title}: {} cases in {:.1} s, {} as expected",
            self.cases.len(),
            self.elapsed.as_secs_f64(),
            self.cases.iter().filter(|c| c.ok).count()
        );
        println!(
            "  {:<4} {:<9} {:<38} {:>6}  observed",
            "", "group", "case", "secs"
        );
        for c in &self.cases {
            let mut observed: String = c.observed.replace('\n', " ⏎ ");
            if observed.chars().count() > 110 {
                observed = observed.chars().take(107).collect::<String>() + "...";
            }
            println!(
                "  {:<4} {:<9} {:<38} {:>6.1}  {observed}",
                if c.ok { "ok" } else { "FAIL" },
                c.group,
                c.name,
                c.secs
            );
        }
        println!(
            "  worker: one process throughout, peak RSS seen {:.1} MiB; disk used after the run: {:.1} MiB",
            self.worker_peak_rss_kib as f64 / 1024.0,
            self.disk_used_mib
        );
        println!("  whole-run problems: {}", self.problems.len());
        for p in &self.problems {
            println!("    - {p}");
        }
    }
}

/// What a case observed, and whether it is what was expected.
pub type Outcome = (String, bool);

/// A case's check: it does what the case does to the system and says what came of it.
type Check = Box<dyn for<'a> FnOnce(&'a Harness) -> Pin<Box<dyn Future<Output = Outcome> + 'a>>>;

/// One entry of the catalogue.
pub struct HostileCase {
    pub group: &'static str,
    pub name: &'static str,
    /// The outcome it must have, as the report says it.
    pub expected: &'static str,
    check: Check,
}

/// A case of `group` named `name` that must end as `expected`, checked by `check`.
fn case<F>(group: &'static str, name: &'static str, expected: &'static str, check: F) -> HostileCase
where
    F: for<'a> FnOnce(&'a Harness) -> Pin<Box<dyn Future<Output = Outcome> + 'a>> + 'static,
{
    HostileCase {
        group,
        name,
        expected,
        check: Box::new(check),
    }
}

/// Every case, in the order they run: messages, uploads, build files, jobs, chunked projects, and last a plain job
/// that must still succeed.
pub fn catalogue(scale: Scale) -> Vec<HostileCase> {
    let mut cases = messages::cases();
    cases.extend(uploads::cases(scale));
    cases.extend(build_files::cases());
    cases.extend(jobs::cases(scale));
    cases.extend(projects::cases());
    cases.push(case("after", "a plain job", "succeeds", move |c| {
        Box::pin(async move {
            let s = c
                .submit(&build_file(&["echo still here"], "time: 20s"), &[])
                .await;
            (s.line(), s.code == Some(0) && s.stdout == b"still here\n")
        })
    }));
    cases
}

/// Runs the whole catalogue at `scale`.
pub async fn run(scale: Scale) -> Report {
    run_cases(catalogue(scale)).await
}

/// Runs `cases` in order against one system, then the whole-run checks.
pub async fn run_cases(cases: Vec<HostileCase>) -> Report {
    let started = Instant::now();
    let mut harness = Harness::start().await;
    let disk_before = free_mib(harness.stack.dir.path());
    for case in cases {
        harness.run(case).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while (!harness.stack.containers_left().is_empty() || !harness.stack.job_dirs_left().is_empty())
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let containers = harness.stack.containers_left();
    if !containers.is_empty() {
        harness
            .problems
            .push(format!("containers left: {containers:?}"));
    }
    let dirs = harness.stack.job_dirs_left();
    if !dirs.is_empty() {
        harness
            .problems
            .push(format!("job directories left: {dirs:?}"));
    }
    let depth = harness.queue.depth().await.unwrap();
    if depth != rai_backends::queue::Depth::default() {
        harness
            .problems
            .push(format!("the queue still holds {depth:?}"));
    }
    let used = disk_before - free_mib(harness.stack.dir.path());
    if used > 512.0 {
        harness
            .problems
            .push(format!("the disk lost {used:.0} MiB during the run"));
    }
    Report {
        cases: std::mem::take(&mut harness.cases),
        problems: std::mem::take(&mut harness.problems),
        worker_peak_rss_kib: harness.peak_rss,
        disk_used_mib: used,
        elapsed: started.elapsed(),
    }
}
