//! The system the catalogue's cases run against, and what they use to reach it: one `raid` process over the local
//! stack with small limits, three students (one revoked), the queue, the store and the event bus behind the
//! gateway's back, and a canary folder on the host that hostile archives aim at. After every case the harness
//! checks that the worker is the process first started and the canary untouched, and keeps the worker's peak RSS.

use std::path::Path;
use std::time::{Duration, Instant};

use rai_backends::events::{EventBus, FollowOptions};
use rai_backends::store::FsStore;
use rai_common::JobId;
use rai_common::account::Profile;
use rai_common::event::{Event, EventBody};
use rai_common::job::{JobRequest, SignedJob};

use super::Case;
use crate::jobs::build_file;
use crate::stack::{Kind, Options, Stack, text};

/// The worker's limits for the catalogue: small enough that every cap is reached quickly.
const RAID_LIMITS: &str = "  limits:
    time: 2m
    memory: 1g
    cpus: 2
    pids: 256
    nofile: 1024
    log_bytes: 32m
    upload_bytes: 16m
    output_bytes: 64m
    network: false
  defaults:
    time: 1m
    memory: 256m
    cpus: 1
";

pub(super) struct Harness {
    pub(super) stack: Stack,
    pub(super) bus: EventBus,
    pub(super) store: FsStore,
    pub(super) queue: std::sync::Arc<dyn rai_backends::queue::JobQueue>,
    /// A folder on the host that hostile archives aim at.
    pub(super) canary: tempfile::TempDir,
    pub(super) cases: Vec<Case>,
    pub(super) problems: Vec<String>,
    pub(super) peak_rss: u64,
}

/// How a job ended, as its events tell.
pub(super) struct Ended {
    pub(super) status: String,
    pub(super) exit_code: Option<i64>,
    pub(super) reason: String,
    pub(super) stdout: String,
    pub(super) system: String,
    pub(super) events: usize,
}

impl Ended {
    pub(super) fn line(&self) -> String {
        let mut s = self.status.clone();
        if let Some(c) = self.exit_code {
            s.push_str(&format!(" (exit {c})"));
        }
        if !self.reason.is_empty() {
            s.push_str(": ");
            s.push_str(&self.reason);
        }
        s
    }
}

/// What `rai submit` printed and how it exited.
pub(super) struct Submitted {
    pub(super) code: Option<i32>,
    pub(super) stdout: Vec<u8>,
    pub(super) stderr: String,
}

impl Submitted {
    /// The exit code and rai's last `✱` line (or its error).
    pub(super) fn line(&self) -> String {
        let last = self
            .stderr
            .lines()
            .rev()
            .find(|l| l.starts_with('✱') || l.starts_with("error"))
            .unwrap_or_else(|| self.stderr.lines().last().unwrap_or(""));
        format!("exit {:?}; {last}", self.code.unwrap_or(-1))
    }
}

/// Everything in `dir`, recursively, as sorted relative paths.
pub(super) fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// What a directory tree takes on disk, in MiB (`du`); 0 when it is gone.
pub(super) fn used_mib(path: &Path) -> f64 {
    let Ok(out) = std::process::Command::new("du")
        .arg("-sk")
        .arg(path)
        .output()
    else {
        return 0.0;
    };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|k| k.parse::<f64>().ok())
        .map_or(0.0, |k| k / 1024.0)
}

pub(super) fn free_mib(path: &Path) -> f64 {
    let out = std::process::Command::new("df")
        .args(["-k", "--output=avail"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse::<f64>().ok())
        .map_or(0.0, |k| k / 1024.0)
}

impl Harness {
    pub(super) async fn start() -> Harness {
        let stack = Stack::start(
            Kind::Local,
            Options {
                users: 3,
                revoked: &[1],
                raid_extra: RAID_LIMITS,
                ..Options::default()
            },
        )
        .await;
        let bus = EventBus::connect(stack.redis.target(), Duration::from_secs(3600))
            .await
            .unwrap();
        let store = FsStore::open(stack.dir.path().join("store")).unwrap();
        let queue = stack.queue().await;
        let canary = tempfile::Builder::new()
            .prefix("rai-canary-")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::write(canary.path().join("keep"), "untouched").unwrap();
        Harness {
            stack,
            bus,
            store,
            queue,
            canary,
            cases: Vec::new(),
            problems: Vec::new(),
            peak_rss: 0,
        }
    }

    pub(super) fn user(&self, i: usize) -> String {
        format!("student{i}")
    }

    pub(super) fn key(&self, i: usize) -> ed25519_dalek::SigningKey {
        Profile::load(&self.stack.home(i).join(".rai_profile"))
            .unwrap()
            .signing_key("profile")
            .unwrap()
    }

    /// A job for student `user`: `archive` goes into the store, and the signed message (after `tweak`) is returned.
    pub(super) async fn signed(
        &self,
        user: usize,
        build: &str,
        archive: Vec<u8>,
        tweak: impl FnOnce(&mut JobRequest),
    ) -> (String, JobId) {
        let name = self.user(user);
        crate::jobs::sign_upload(
            &self.store,
            &self.stack.queue,
            &name,
            &self.key(user),
            build,
            archive,
            tweak,
        )
        .await
    }

    /// Queues a plain job of student `user` with `archive` as its upload, signed after `tweak`, then changed by
    /// `forge`; returns how it ended.
    pub(super) async fn queued(
        &self,
        user: usize,
        archive: Vec<u8>,
        tweak: impl FnOnce(&mut JobRequest),
        forge: impl FnOnce(SignedJob) -> SignedJob,
    ) -> Ended {
        let plain = build_file(&["echo hi"], "time: 20s");
        let (wire, job) = self.signed(user, &plain, archive, tweak).await;
        let env = forge(serde_json::from_str(&wire).unwrap());
        self.send(&String::from_utf8(env.to_bytes()).unwrap()).await;
        self.ended(job).await
    }

    /// Queues a student's signed message as a gateway would: attested with the test gateway key.
    pub(super) async fn send(&self, wire: &str) {
        self.queue.send(&crate::jobs::attest(wire)).await.unwrap();
    }

    /// Every event of `job` until its end.
    pub(super) async fn ended(&self, job: JobId) -> Ended {
        let mut stream = self.bus.follow(job, 0, FollowOptions::default());
        let mut events: Vec<Event> = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(180), async {
            while let Some(Ok(e)) = stream.next().await {
                events.push(e);
            }
        })
        .await;
        let mut ended = Ended {
            status: "no end within 180 s".into(),
            exit_code: None,
            reason: String::new(),
            stdout: String::new(),
            system: String::new(),
            events: events.len(),
        };
        for e in &events {
            match &e.body {
                EventBody::Stdout { data } => ended.stdout.push_str(data),
                EventBody::System { data } => {
                    ended.system.push_str(data);
                    ended.system.push('\n');
                }
                EventBody::End {
                    status,
                    exit_code,
                    reason,
                } => {
                    ended.status = status.to_string();
                    ended.exit_code = *exit_code;
                    ended.reason = reason.clone().unwrap_or_default();
                }
                _ => {}
            }
        }
        ended
    }

    /// The reasons the worker logged for refusing messages that name no job.
    pub(super) fn logged_refusals(&self) -> Vec<String> {
        self.stack
            .worker_logs()
            .lines()
            .filter(|l| l.contains("rejected a job message"))
            .map(|l| l.split("reason=").nth(1).unwrap_or(l).trim().to_string())
            .collect()
    }

    /// Sends a message that names no job and returns what the worker logged about it.
    pub(super) async fn send_nameless(&self, body: &str) -> String {
        let before = self.logged_refusals().len();
        self.queue.send(body).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = self.logged_refusals();
            if now.len() > before {
                return format!("dropped; worker logged: {}", now[before]);
            }
            if Instant::now() > deadline {
                return "the worker logged nothing within 30 s".into();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `rai submit` of a project with `build` (and `files`) as student 0.
    pub(super) async fn submit(&self, build: &str, files: &[(&str, &[u8])]) -> Submitted {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rai_build.yml"), build).unwrap();
        for (name, data) in files {
            std::fs::write(dir.path().join(name), data).unwrap();
        }
        let out = self
            .stack
            .rai(0, &["submit", "-p", dir.path().to_str().unwrap()])
            .await;
        Submitted {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: text(&out.stderr),
        }
    }

    /// Runs one case: its check, then whether the worker and the host came through it.
    pub(super) async fn run(&mut self, case: super::HostileCase) {
        let super::HostileCase {
            group,
            name,
            expected,
            check,
        } = case;
        let started = Instant::now();
        let (observed, ok) = check(&*self).await;
        // The kernel's high-water mark, not the RSS after the case: a spike in the middle is what a worker's
        // memory limit meets. A worker restarted after dying starts its own mark.
        self.peak_rss = self.peak_rss.max(
            self.stack
                .worker_peak_rss_kib()
                .into_iter()
                .max()
                .unwrap_or(0),
        );
        let mut ok = ok;
        let mut observed = observed;
        if !self.stack.worker_alive(0) {
            ok = false;
            observed.push_str(" [the worker died]");
            self.problems
                .push(format!("the worker died during {group} / {name}"));
            self.stack
                .kill9_and_restart(&self.stack.workers[0].name.clone());
        }
        let canary = listing(self.canary.path());
        if canary != ["keep"] {
            ok = false;
            observed.push_str(&format!(" [the host canary folder changed: {canary:?}]"));
        }
        self.cases.push(Case {
            group,
            name,
            expected,
            observed,
            ok,
            secs: started.elapsed().as_secs_f64(),
        });
    }

    /// The file a hostile archive tries to write in the canary folder, by its absolute path.
    pub(super) fn canary_file(&self) -> String {
        format!("{}/pwned", self.canary.path().display())
    }

    /// A path that climbs from any job directory to the canary folder.
    pub(super) fn climb(&self) -> String {
        format!(
            "{}{}/pwned",
            "../".repeat(24),
            self.canary
                .path()
                .display()
                .to_string()
                .trim_start_matches('/')
        )
    }
}

/// Refused, for the reason named.
pub(super) fn refused(e: &Ended, words: &str) -> bool {
    e.status == "rejected" && e.reason.contains(words)
}

/// Refused before anything ran: the job's only event is its end, so a forged message writes nothing else.
pub(super) fn refused_unread(e: &Ended, words: &str) -> bool {
    refused(e, words) && e.events == 1
}

impl Harness {
    /// Runs `rai ARGS` as student 0 with a terminal for its stdout and stderr; returns what the terminal got.
    pub(super) async fn on_a_terminal(&self, args: &[&str]) -> String {
        let rai = crate::binary("rai");
        let line = std::iter::once(rai.display().to_string())
            .chain(args.iter().map(|a| a.to_string()))
            .collect::<Vec<_>>()
            .join(" ");
        // rai_command's environment (HOME, no AWS variables), on `script`, which gives rai a terminal.
        let env = crate::stack::rai_command(self.stack.home(0), &[]);
        let mut script = std::process::Command::new("script");
        script.args(["-qec", &line, "/dev/null"]);
        for (k, v) in env.get_envs() {
            match v {
                Some(v) => script.env(k, v),
                None => script.env_remove(k),
            };
        }
        let out = tokio::task::spawn_blocking(move || script.output().unwrap())
            .await
            .unwrap();
        text(&out.stdout)
    }
}
