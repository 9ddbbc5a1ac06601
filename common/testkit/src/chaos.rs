//! The chaos and load run: many students submit jobs of every kind to several `raid` workers while a fault
//! injector kills and restarts workers, restarts Redis, pauses moto and drains workers. At the end every job's
//! output is checked event by event, and the system is checked for anything left behind.
//!
//! The same code runs the short version in the ordinary tests (`tests/chaos.rs`: a few dozen jobs, each fault
//! once) and the full run (`benches/chaos.rs`, through `deploy/local/chaos.sh`).
//!
//! Over 450 lines: one harness: the load, the fault loop and the per-job checks share the run's state.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rai_common::event::{Event, EventBody, JobStatus};

use crate::stack::{Kind, Options, Stack, project};

/// What a job does, and so what its student must see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JobKind {
    Quick,
    Slow,
    Failing,
    Noisy,
    OverTime,
    Cancelled,
}

pub const KINDS: [JobKind; 6] = [
    JobKind::Quick,
    JobKind::Slow,
    JobKind::Failing,
    JobKind::Noisy,
    JobKind::OverTime,
    JobKind::Cancelled,
];

const NOISY_LINES: u32 = 5_000;

impl JobKind {
    /// The job's command, its time limit, the complete stdout of one run, and how it must end.
    fn plan(self, token: &str) -> (String, &'static str, String, JobStatus, Option<i64>) {
        match self {
            JobKind::Quick => (
                format!("echo {token} a; echo {token} b"),
                "60s",
                format!("{token} a\n{token} b\n"),
                JobStatus::Succeeded,
                Some(0),
            ),
            JobKind::Slow => (
                format!("for i in 1 2 3 4 5 6 7 8; do echo {token} $i; sleep 0.25; done"),
                "60s",
                (1..=8).map(|i| format!("{token} {i}\n")).collect(),
                JobStatus::Succeeded,
                Some(0),
            ),
            JobKind::Failing => (
                format!("echo {token} before; exit 3"),
                "60s",
                format!("{token} before\n"),
                JobStatus::Failed,
                Some(3),
            ),
            JobKind::Noisy => (
                format!(
                    "awk 'BEGIN {{ for (i = 1; i <= {NOISY_LINES}; i++) print \"{token}\", i }}'"
                ),
                "60s",
                (1..=NOISY_LINES)
                    .map(|i| format!("{token} {i}\n"))
                    .collect(),
                JobStatus::Succeeded,
                Some(0),
            ),
            JobKind::OverTime => (
                format!("echo {token} start; sleep 30"),
                "2s",
                format!("{token} start\n"),
                JobStatus::TimedOut,
                None,
            ),
            JobKind::Cancelled => (
                format!("echo {token} start; sleep 30"),
                "60s",
                format!("{token} start\n"),
                JobStatus::Cancelled,
                None,
            ),
        }
    }
}

/// A fault the injector can cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    KillWorker,
    /// kill -9 of a worker holding a job made ready for a busy slot (one with more containers than slots), when
    /// one does within 2 s; else of the next worker (counted as `KillWorker`).
    KillWorkerWhileReady,
    KillGateway,
    RestartRedis,
    PauseMoto,
    DrainWorker,
}

/// Slots of each chaos worker.
const SLOTS: usize = 2;

/// A worker with a job made ready while its slots are busy (more job containers than slots), waiting up to 2 s
/// for one.
fn worker_holding_a_ready_job(stack: &Stack) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Some(w) = stack
            .workers
            .iter()
            .find(|w| crate::jobs::containers_of(&format!("rai.worker={}", w.name)) > SLOTS)
        {
            return Some(w.name.clone());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// How big a run is.
pub struct Plan {
    pub kind: Kind,
    pub workers: usize,
    pub clients: usize,
    pub jobs: usize,
    /// Time between faults.
    pub fault_every: Duration,
    /// Stop injecting after this many faults (the short version: each fault once).
    pub max_faults: usize,
    /// The whole run must finish within this.
    pub limit: Duration,
}

/// What one job's student saw, checked.
#[derive(Debug)]
pub struct JobResult {
    pub kind: JobKind,
    pub id: String,
    pub user: usize,
    pub reruns: usize,
    pub status: Option<JobStatus>,
    /// Empty when everything was right; else what was wrong.
    pub problems: Vec<String>,
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    pub jobs: usize,
    pub by_kind: BTreeMap<String, usize>,
    pub faults: BTreeMap<String, usize>,
    pub reruns: usize,
    pub problems: Vec<String>,
    pub max_worker_rss_kib: u64,
    pub elapsed: Duration,
}

impl Report {
    pub fn print(&self, title: &str) {
        println!(
            "{title}: {} jobs in {:.1} s",
            self.jobs,
            self.elapsed.as_secs_f64()
        );
        println!("  kinds:   {:?}", self.by_kind);
        println!("  faults:  {:?}", self.faults);
        println!(
            "  reruns after a fault (requeued, then complete output): {}",
            self.reruns
        );
        println!(
            "  worker peak RSS seen: {:.1} MiB",
            self.max_worker_rss_kib as f64 / 1024.0
        );
        println!("  problems: {}", self.problems.len());
        for p in &self.problems {
            println!("    - {p}");
        }
    }
}

/// Runs one job as a student does (`rai submit --json`), cancelling it once it printed if that is its kind, and
/// checks every event.
fn run_job(home: PathBuf, user: usize, kind: JobKind, n: usize) -> JobResult {
    let token = format!("u{user}n{n}");
    let (command, time, expected, end_status, end_code) = kind.plan(&token);
    let dir = project(&[&command], &[]);
    let build = std::fs::read_to_string(dir.path().join("rai_build.yml"))
        .unwrap()
        .replace(
            "limits: { time: 60s }",
            &format!("limits: {{ time: {time} }}"),
        );
    std::fs::write(dir.path().join("rai_build.yml"), build).unwrap();
    let mut child = crate::stack::rai_command(
        &home,
        &["submit", "--json", "-p", dir.path().to_str().unwrap()],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut { stderr }, &mut text);
        text
    });
    let mut result = JobResult {
        kind,
        id: String::new(),
        user,
        reruns: 0,
        status: None,
        problems: Vec::new(),
    };
    let mut segments = vec![String::new()];
    let mut last_seq = 0u64;
    let mut cancelled = false;
    let mut end = None;
    for line in std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap())) {
        let line = line.unwrap();
        if result.id.is_empty() {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            result.id = v["job"].as_str().unwrap_or_default().to_string();
            continue;
        }
        let event: Event = match serde_json::from_str(&line) {
            Ok(e) => e,
            Err(e) => {
                result.problems.push(format!("not an event ({e}): {line}"));
                continue;
            }
        };
        if event.seq != last_seq + 1 {
            result.problems.push(format!(
                "seq {} after {last_seq}: a gap or a duplicate",
                event.seq
            ));
        }
        last_seq = event.seq;
        match &event.body {
            EventBody::Stdout { data } => {
                segments.last_mut().unwrap().push_str(data);
                if kind == JobKind::Cancelled && !cancelled {
                    cancelled = true;
                    let out = crate::stack::rai_command(&home, &["cancel", &result.id])
                        .output()
                        .unwrap();
                    if !out.status.success() {
                        result.problems.push(format!(
                            "rai cancel failed: {}",
                            String::from_utf8_lossy(&out.stderr)
                        ));
                    }
                }
            }
            EventBody::Status {
                status: JobStatus::Requeued,
                ..
            } => {
                result.reruns += 1;
                segments.push(String::new());
            }
            EventBody::End {
                status,
                exit_code,
                reason,
            } => end = Some((*status, *exit_code, reason.clone())),
            _ => {}
        }
    }
    let code = child.wait().unwrap().code();
    let stderr = stderr.join().unwrap();
    if result.id.is_empty() {
        result.problems.push(format!("never queued: {stderr}"));
        return result;
    }
    let Some((status, exit_code, reason)) = end else {
        result
            .problems
            .push(format!("no end event (rai exited {code:?}): {stderr}"));
        return result;
    };
    result.status = Some(status);
    if status != end_status || (end_code.is_some() && exit_code != end_code) {
        result.problems.push(format!(
            "ended {status:?} with {exit_code:?}, expected {end_status:?} with {end_code:?}; reason: {reason:?}"
        ));
    }
    // Whatever else was wrong: a student must never read an error without why.
    if status == JobStatus::Error && reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        result
            .problems
            .push("ended in error with no reason for its student".to_string());
    }
    let want_code = i32::from(rai_common::exit::for_end(status, exit_code));
    if code != Some(want_code) {
        result
            .problems
            .push(format!("rai exited {code:?}, expected {want_code}"));
    }
    // Every earlier run printed a prefix of the output; the last run printed all of it (a cancelled job may be cut
    // short in any run).
    let (last, earlier) = segments.split_last().unwrap();
    for s in earlier {
        if !expected.starts_with(s.as_str()) {
            result.problems.push(format!(
                "an interrupted run printed what the job never prints: {s:?}"
            ));
        }
    }
    let complete = if kind == JobKind::Cancelled {
        expected.starts_with(last.as_str())
    } else {
        *last == expected
    };
    if !complete {
        let shown: String = last.chars().take(200).collect();
        result.problems.push(format!(
            "output of the final run is not the job's output ({} of {} bytes): {shown:?}",
            last.len(),
            expected.len()
        ));
    }
    result
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status();
}

/// Runs the plan: the stack, the students, the fault injector, and the checks at the end.
pub async fn run(plan: Plan) -> Report {
    let started = Instant::now();
    let stack = Stack::start(
        plan.kind,
        Options {
            workers: plan.workers,
            users: plan.clients,
            concurrency: SLOTS,
            lease: "6s",
            private_moto: true,
            gateways: 2,
            ..Options::default()
        },
    )
    .await;
    let homes: Vec<PathBuf> = stack.homes.iter().map(|h| h.path().to_path_buf()).collect();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // The students: each submits its share of the jobs, one after another, kinds in rotation.
    let mut students = Vec::new();
    for (user, home) in homes.iter().enumerate() {
        let home = home.clone();
        let mine: Vec<usize> = (0..plan.jobs)
            .filter(|n| n % plan.clients == user)
            .collect();
        students.push(tokio::task::spawn_blocking(move || {
            mine.into_iter()
                .map(|n| run_job(home.clone(), user, KINDS[n % KINDS.len()], n))
                .collect::<Vec<_>>()
        }));
    }

    // The fault injector, with the stack to itself until the students are done.
    let injector = {
        let done = done.clone();
        let plan_faults: Vec<Fault> = match plan.kind {
            Kind::Local => vec![
                Fault::KillWorker,
                Fault::KillGateway,
                Fault::RestartRedis,
                Fault::DrainWorker,
                Fault::KillWorkerWhileReady,
            ],
            Kind::Aws => vec![
                Fault::KillWorker,
                Fault::KillGateway,
                Fault::RestartRedis,
                Fault::PauseMoto,
                Fault::DrainWorker,
                Fault::KillWorkerWhileReady,
            ],
        };
        let (every, max) = (plan.fault_every, plan.max_faults);
        tokio::task::spawn_blocking(move || {
            let mut stack = stack;
            let mut faults: BTreeMap<String, usize> = BTreeMap::new();
            let mut max_rss = 0u64;
            let mut next = Instant::now() + every;
            let mut i = 0usize;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                max_rss = max_rss.max(stack.worker_rss_kib().into_iter().max().unwrap_or(0));
                if Instant::now() < next || i >= max {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                let fault = plan_faults[i % plan_faults.len()];
                let worker = stack.workers[i % stack.workers.len()].name.clone();
                let mut happened = fault;
                match fault {
                    Fault::KillWorker => stack.kill9_and_restart(&worker),
                    Fault::KillWorkerWhileReady => match worker_holding_a_ready_job(&stack) {
                        Some(ready) => stack.kill9_and_restart(&ready),
                        None => {
                            happened = Fault::KillWorker;
                            stack.kill9_and_restart(&worker);
                        }
                    },
                    Fault::KillGateway => {
                        let g = i % stack.gateways.len();
                        stack.kill9_gateway_and_restart(g);
                    }
                    Fault::RestartRedis => {
                        stack.redis.stop();
                        std::thread::sleep(Duration::from_millis(500));
                        stack.redis.restart();
                    }
                    Fault::PauseMoto => {
                        if let Some(moto) = &stack.moto {
                            signal(moto.pid(), "STOP");
                            std::thread::sleep(Duration::from_secs(3));
                            signal(moto.pid(), "CONT");
                        }
                    }
                    Fault::DrainWorker => stack.sigterm_and_restart(&worker),
                }
                *faults.entry(format!("{happened:?}")).or_default() += 1;
                i += 1;
                next = Instant::now() + every;
            }
            (stack, faults, max_rss)
        })
    };

    let mut results = Vec::new();
    let deadline = tokio::time::Instant::now() + plan.limit;
    let mut injector = injector;
    for s in students {
        tokio::select! {
            r = tokio::time::timeout_at(deadline, s) => match r {
                Ok(r) => results.extend(r.unwrap()),
                Err(_) => {
                    done.store(true, std::sync::atomic::Ordering::Relaxed);
                    panic!("the run did not finish within {:?}", plan.limit);
                }
            },
            // The injector runs until the students are done, so ending before them means a fault could not be
            // undone (a server that did not come back): fail now with its message, not at the deadline.
            ended = &mut injector => {
                done.store(true, std::sync::atomic::Ordering::Relaxed);
                match ended {
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    other => panic!("the fault injector ended before the students: {:?}", other.err()),
                }
            }
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (stack, faults, max_rss) = injector.await.unwrap();

    let mut report = Report {
        jobs: results.len(),
        faults,
        max_worker_rss_kib: max_rss,
        ..Report::default()
    };
    for r in &results {
        *report.by_kind.entry(format!("{:?}", r.kind)).or_default() += 1;
        report.reruns += r.reruns;
        for p in &r.problems {
            report.problems.push(format!(
                "job {} ({:?}, student{}): {p}",
                r.id, r.kind, r.user
            ));
        }
    }
    check_leftovers(&stack, &results, &mut report).await;
    report.elapsed = started.elapsed();
    if !report.problems.is_empty() {
        eprintln!("{}", stack.worker_logs());
    }
    report
}

/// One final record per job, matching what its student saw; no container, lease or dead letter left.
async fn check_leftovers(stack: &Stack, results: &[JobResult], report: &mut Report) {
    let mut by_user: HashMap<usize, Vec<&JobResult>> = HashMap::new();
    for r in results {
        by_user.entry(r.user).or_default().push(r);
    }
    for (user, jobs) in by_user {
        let out = stack.rai_blocking(user, &["history", "--json", "-n", "100000"]);
        let mut records: HashMap<String, usize> = HashMap::new();
        let mut statuses: HashMap<String, String> = HashMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            let id = v["id"].as_str().unwrap_or_default().to_string();
            *records.entry(id.clone()).or_default() += 1;
            statuses.insert(id, v["status"].as_str().unwrap_or_default().to_string());
        }
        for r in jobs {
            if r.id.is_empty() {
                continue;
            }
            match records.get(&r.id) {
                Some(1) => {}
                n => report
                    .problems
                    .push(format!("job {}: {n:?} records, expected exactly one", r.id)),
            }
            if let (Some(status), Some(recorded)) = (r.status, statuses.get(&r.id))
                && status.as_str() != recorded
            {
                report.problems.push(format!(
                    "job {}: the record says {recorded}, the student saw {status:?}",
                    r.id
                ));
            }
        }
    }
    // A killed worker's containers go when it restarts; give the last restart a moment.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stack.containers_left().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let left = stack.containers_left();
    if !left.is_empty() {
        report.problems.push(format!("containers left: {left:?}"));
    }
    let left = stack.job_dirs_left();
    if !left.is_empty() {
        report
            .problems
            .push(format!("job directories left: {left:?}"));
    }
    let queue = stack.queue().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut depth = queue.depth().await.unwrap();
    while depth != rai_backends::queue::Depth::default() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        depth = queue.depth().await.unwrap();
    }
    if depth != rai_backends::queue::Depth::default() {
        report
            .problems
            .push(format!("the queue still holds {depth:?}"));
    }
    let dead = queue.dead_letters(100).await.unwrap();
    if !dead.is_empty() {
        report
            .problems
            .push(format!("{} dead letters, expected none", dead.len()));
    }
}
