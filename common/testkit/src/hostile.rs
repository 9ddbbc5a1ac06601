//! The hostile-input catalogue (issue 6): bad queue messages, uploads, build files and jobs, each sent through the
//! real system with the outcome it must have.
//!
//! One `raid` process serves the local stack. What a student's `rai` can send goes through the `rai` binary; what
//! only an attacker would send (a forged message, a hand-made archive) goes straight onto the queue or into the
//! store, past every check the client makes. After each case the worker must still be the process first started;
//! at the end nothing may be left behind (containers, job directories, queued messages), a canary folder on the
//! host must be exactly as it was, the disk must not have filled, and a plain job must still succeed. [`run`]
//! returns one row per case: the short sizes run in the ordinary tests, the full ones in
//! `cargo bench --bench hostile`.
//!
//! One long file on purpose: it is the catalogue, 48 cases each with its input, its expected outcome and its check,
//! read as one list.

use std::path::Path;
use std::time::{Duration, Instant};

use rai_backends::events::{EventBus, FollowOptions};
use rai_backends::store::{FsStore, ObjectStore};
use rai_common::account::{Profile, generate_signing_key};
use rai_common::build_spec::LimitsRequest;
use rai_common::event::{Event, EventBody};
use rai_common::job::{JobRequest, SignedJob};
use rai_common::objects::upload_key;
use rai_common::units::Bytes;
use rai_common::{BuildSpec, JobId};

mod projects;

use crate::jobs::build_file;
use crate::stack::{Kind, Options, Stack, job_id, text};

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

struct Catalogue {
    stack: Stack,
    bus: EventBus,
    store: FsStore,
    queue: std::sync::Arc<dyn rai_backends::queue::JobQueue>,
    /// A folder on the host that hostile archives aim at.
    canary: tempfile::TempDir,
    cases: Vec<Case>,
    problems: Vec<String>,
    peak_rss: u64,
}

/// How a job ended, as its events tell.
struct Ended {
    status: String,
    exit_code: Option<i64>,
    reason: String,
    stdout: String,
    system: String,
    events: usize,
}

impl Ended {
    fn line(&self) -> String {
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
struct Submitted {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Submitted {
    /// The exit code and rai's last `✱` line (or its error).
    fn line(&self) -> String {
        let last = self
            .stderr
            .lines()
            .rev()
            .find(|l| l.starts_with('✱') || l.starts_with("error"))
            .unwrap_or_else(|| self.stderr.lines().last().unwrap_or(""));
        format!("exit {:?}; {last}", self.code.unwrap_or(-1))
    }
}

/// A tar header with any name and link target (`../x`, `/etc/x`).
fn raw_header(name: &str, kind: tar::EntryType, size: u64, link: Option<&str>) -> tar::Header {
    crate::raw_tar_header(name.as_bytes(), kind, size, 0o644, link.map(str::as_bytes))
}

/// One archive entry: its header and its bytes.
type Entry = (tar::Header, Vec<u8>);

/// An archive (tar + zstd, as rai makes them) of a build file and `entries`.
fn archive(build: &str, entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(zstd::Encoder::new(Vec::new(), 3).unwrap());
    let h = raw_header(
        "rai_build.yml",
        tar::EntryType::Regular,
        build.len() as u64,
        None,
    );
    b.append(&h, build.as_bytes()).unwrap();
    for (h, data) in entries {
        b.append(h, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

/// One file that claims `bytes` of zeros: a few hundred KiB compressed.
fn bomb(build: &str, bytes: u64) -> Vec<u8> {
    use std::io::Write;
    let mut enc = zstd::Encoder::new(Vec::new(), 1).unwrap();
    let h = raw_header(
        "rai_build.yml",
        tar::EntryType::Regular,
        build.len() as u64,
        None,
    );
    enc.write_all(h.as_bytes()).unwrap();
    let mut data = build.as_bytes().to_vec();
    data.resize(data.len().div_ceil(512) * 512, 0);
    enc.write_all(&data).unwrap();
    enc.write_all(raw_header("zeros", tar::EntryType::Regular, bytes, None).as_bytes())
        .unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..bytes >> 20 {
        enc.write_all(&zeros).unwrap();
    }
    enc.finish().unwrap()
}

/// `n` empty files, streamed into the encoder (the plain tar would be n × 512 bytes).
fn empty_files(build: &str, n: u64) -> Vec<u8> {
    let mut b = tar::Builder::new(zstd::Encoder::new(Vec::new(), 3).unwrap());
    let h = raw_header(
        "rai_build.yml",
        tar::EntryType::Regular,
        build.len() as u64,
        None,
    );
    b.append(&h, build.as_bytes()).unwrap();
    for i in 0..n {
        let h = raw_header(
            &format!("e/{:03}/{i}", i % 1000),
            tar::EntryType::Regular,
            0,
            None,
        );
        b.append(&h, &[][..]).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

/// Everything in `dir`, recursively, as sorted relative paths.
fn listing(dir: &Path) -> Vec<String> {
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
fn used_mib(path: &Path) -> f64 {
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

fn free_mib(path: &Path) -> f64 {
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

impl Catalogue {
    async fn start() -> Catalogue {
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
        Catalogue {
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

    fn user(&self, i: usize) -> String {
        format!("student{i}")
    }

    fn key(&self, i: usize) -> ed25519_dalek::SigningKey {
        Profile::load(&self.stack.home(i).join(".rai_profile"))
            .unwrap()
            .signing_key("profile")
            .unwrap()
    }

    /// A job for student `user`: `archive` goes into the store, and the signed message (after `tweak`) is returned.
    async fn signed(
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
    async fn queued(
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
    async fn send(&self, wire: &str) {
        self.queue.send(&crate::jobs::attest(wire)).await.unwrap();
    }

    /// Every event of `job` until its end.
    async fn ended(&self, job: JobId) -> Ended {
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
    fn logged_refusals(&self) -> Vec<String> {
        self.stack
            .worker_logs()
            .lines()
            .filter(|l| l.contains("rejected a job message"))
            .map(|l| l.split("reason=").nth(1).unwrap_or(l).trim().to_string())
            .collect()
    }

    /// Sends a message that names no job and returns what the worker logged about it.
    async fn send_nameless(&self, body: &str) -> String {
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
    async fn submit(&self, build: &str, files: &[(&str, &[u8])]) -> Submitted {
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

    /// Runs one case; `body` returns what was observed and whether it is what was expected.
    async fn case<F>(
        &mut self,
        group: &'static str,
        name: &'static str,
        expected: &'static str,
        body: F,
    ) where
        F: AsyncFnOnce(&Catalogue) -> (String, bool),
    {
        let started = Instant::now();
        let (observed, ok) = body(&*self).await;
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

    /// A path that climbs from any job directory to the canary folder.
    fn climb(&self) -> String {
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
fn refused(e: &Ended, words: &str) -> bool {
    e.status == "rejected" && e.reason.contains(words)
}

/// Refused before anything ran: the job's only event is its end, so a forged message writes nothing else.
fn refused_unread(e: &Ended, words: &str) -> bool {
    refused(e, words) && e.events == 1
}

/// Runs the whole catalogue.
pub async fn run(scale: Scale) -> Report {
    let started = Instant::now();
    let mut cat = Catalogue::start().await;
    let disk_before = free_mib(cat.stack.dir.path());
    let plain = build_file(&["echo hi"], "time: 20s");

    // ---- Messages put straight on the queue. ----
    cat.case("message", "not JSON", "dropped, reason logged", async |c| {
        let seen = c.send_nameless("this is not a job at all").await;
        let ok = seen.contains("malformed job message");
        (seen, ok)
    })
    .await;
    cat.case(
        "message",
        "malformed envelope",
        "dropped, reason logged",
        async |c| {
            let seen = c
                .send_nameless(r#"{"v":2,"job":{"v":1,"payload":"{\"id\":42}","sig":""}}"#)
                .await;
            let ok = seen.contains("malformed job message");
            (seen, ok)
        },
    )
    .await;
    cat.case(
        "message",
        "oversized (300 KiB, raw XADD)",
        "rejected: over 262144 bytes",
        async |c| {
            let (_, job) = c.signed(0, &plain, archive(&plain, &[]), |_| {}).await;
            let (wire, _) = c
                .signed(0, &plain, archive(&plain, &[]), |r| {
                    r.id = job;
                    r.team = "t".repeat(300 * 1024);
                })
                .await;
            // The gateway would refuse it; a rogue gateway (or anyone with a gateway key and Redis) could XADD it.
            let mut redis = c
                .stack
                .redis
                .target()
                .client()
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let _: String = redis::cmd("XADD")
                .arg(format!("rai:queue:{}", c.stack.queue))
                .arg("*")
                .arg("body")
                .arg(crate::jobs::attest(&wire))
                .query_async(&mut redis)
                .await
                .unwrap();
            let e = c.ended(job).await;
            (e.line(), refused_unread(&e, "allowed"))
        },
    )
    .await;
    let no_tweak = |_: &mut JobRequest| {};
    let as_is = |env: SignedJob| env;
    // Three ways to get past signing without the student's key; each must be refused for its signature.
    type Forge = Box<dyn FnOnce(SignedJob) -> SignedJob>;
    let forgeries: Vec<(&str, Forge)> = vec![
        (
            "unsigned",
            Box::new(|mut env| {
                env.sig.clear();
                env
            }),
        ),
        (
            "forged (a stranger's key)",
            Box::new(|env| {
                let request: JobRequest = serde_json::from_str(&env.payload).unwrap();
                request.sign(&generate_signing_key())
            }),
        ),
        (
            "edited after signing",
            Box::new(|mut env| {
                env.payload = env.payload.replace("echo hi", "echo pwned");
                env
            }),
        ),
    ];
    for (name, forge) in forgeries {
        cat.case("message", name, "rejected: bad signature", async |c| {
            let e = c.queued(0, archive(&plain, &[]), no_tweak, forge).await;
            (e.line(), refused_unread(&e, "bad signature"))
        })
        .await;
    }
    cat.case(
        "message",
        "replayed after it ran",
        "dropped: no second run",
        async |c| {
            let (wire, job) = c.signed(0, &plain, archive(&plain, &[]), |_| {}).await;
            c.send(&wire).await;
            let first = c.ended(job).await;
            c.send(&wire).await;
            tokio::time::sleep(Duration::from_secs(3)).await;
            let again = c.bus.history(&job, 0, 10_000).await.unwrap().len();
            let depth = c.queue.depth().await.unwrap();
            (
                format!(
                    "first run {}; after the replay {} events (was {}), queue {depth:?}",
                    first.status, again, first.events
                ),
                first.status == "succeeded"
                    && again == first.events
                    && depth == rai_backends::queue::Depth::default(),
            )
        },
    )
    .await;
    let victim = cat
        .signed(2, &plain, archive(&plain, &[]), no_tweak)
        .await
        .0;
    let victim: JobRequest =
        serde_json::from_str(&serde_json::from_str::<SignedJob>(&victim).unwrap().payload).unwrap();
    let absurd = build_file(&["echo hi"], "time: 1000h, memory: 100t");
    type Tweak = Box<dyn FnOnce(&mut JobRequest)>;
    let refusals: Vec<(&str, &str, usize, Tweak, &str)> = vec![
        (
            "revoked user",
            "rejected: revoked",
            1,
            Box::new(|_| {}),
            "was revoked",
        ),
        (
            "unknown user",
            "rejected: unknown user",
            0,
            Box::new(|r| r.user = "mallory".into()),
            "unknown user \"mallory\"",
        ),
        (
            "another student's upload",
            "rejected: not its own",
            0,
            Box::new(move |r| r.input = victim.input),
            "which is not its own",
        ),
        (
            "absurd limits, signed",
            "rejected: over the worker's maximum",
            0,
            Box::new(move |r| {
                r.build = BuildSpec::parse(&absurd, "rai_build.yml").unwrap();
            }),
            "exceeds this worker's maximum",
        ),
        (
            "memory \"0\" (Docker: no limit), signed",
            "rejected: too little memory",
            0,
            Box::new(|r| {
                r.build.resources.limits = Some(LimitsRequest {
                    memory: Some(Bytes(0)),
                    ..LimitsRequest::default()
                })
            }),
            "resources.limits.memory: 0 is too little memory",
        ),
        (
            "cpus 1e-10 (Docker: no limit), signed",
            "rejected: too little CPU",
            0,
            Box::new(|r| {
                r.build.resources.limits = Some(LimitsRequest {
                    cpus: Some(1e-10),
                    ..LimitsRequest::default()
                })
            }),
            "resources.limits.cpus: 0.0000000001 CPUs is too little",
        ),
    ];
    cat.case(
        "message",
        "backdated (created 2 days ago by the client's clock)",
        "runs: the gateway's accepted_at counts",
        async |c| {
            let e = c
                .queued(
                    0,
                    archive(&plain, &[]),
                    |r| r.created_at = chrono::Utc::now() - chrono::Duration::days(2),
                    as_is,
                )
                .await;
            let ok = e.status == "succeeded";
            (e.line(), ok)
        },
    )
    .await;
    cat.case(
        "message",
        "stale (accepted 2 days ago, held back)",
        "rejected: too old",
        async |c| {
            let (wire, job) = c.signed(0, &plain, archive(&plain, &[]), |_| {}).await;
            let held =
                crate::jobs::attest_at(&wire, chrono::Utc::now() - chrono::Duration::days(2));
            c.queue.send(&held).await.unwrap();
            let e = c.ended(job).await;
            (e.line(), refused_unread(&e, "older than"))
        },
    )
    .await;
    for (name, expected, user, tweak, words) in refusals {
        cat.case("message", name, expected, async |c| {
            let e = c.queued(user, archive(&plain, &[]), tweak, as_is).await;
            (e.line(), refused(&e, words))
        })
        .await;
    }

    // ---- Uploads put straight in the store, with a validly signed job. ----
    let climb = cat.climb();
    let canary_abs = format!("{}/pwned", cat.canary.path().display());
    let hostile_uploads: Vec<(&str, Vec<Entry>, &str)> = vec![
        (
            "path traversal (../ to a host folder)",
            vec![(
                raw_header(&climb, tar::EntryType::Regular, 5, None),
                b"pwned".to_vec(),
            )],
            "..",
        ),
        (
            "absolute path",
            vec![(
                raw_header(&canary_abs, tar::EntryType::Regular, 5, None),
                b"pwned".to_vec(),
            )],
            "absolute path",
        ),
        (
            "symlink escape",
            vec![
                (
                    raw_header(
                        "esc",
                        tar::EntryType::Symlink,
                        0,
                        Some(&cat.canary.path().display().to_string()),
                    ),
                    vec![],
                ),
                (
                    raw_header("esc/pwned", tar::EntryType::Regular, 5, None),
                    b"pwned".to_vec(),
                ),
            ],
            "",
        ),
        (
            "hardlink escape",
            vec![(
                raw_header("h", tar::EntryType::Link, 0, Some(&canary_abs)),
                vec![],
            )],
            "",
        ),
        (
            "device file",
            vec![(raw_header("dev", tar::EntryType::Char, 0, None), vec![])],
            "",
        ),
    ];
    for (name, entries, words) in hostile_uploads {
        cat.case("upload", name, "rejected: not a safe archive", async |c| {
            let e = c
                .queued(0, archive(&plain, &entries), no_tweak, as_is)
                .await;
            (
                e.line(),
                refused(&e, "the upload is not a safe archive") && e.reason.contains(words),
            )
        })
        .await;
    }
    cat.case(
        "upload",
        "zstd bomb",
        "rejected: unpacks to more than 64 MiB",
        async |c| {
            let bytes = bomb(&plain, scale.bomb_bytes);
            let e = c.queued(0, bytes, no_tweak, as_is).await;
            (
                format!("{} GiB claimed; {}", scale.bomb_bytes >> 30, e.line()),
                refused(&e, "unpacks to more than 64.0 MiB"),
            )
        },
    )
    .await;
    cat.case(
        "upload",
        "a million empty files",
        "rejected: more than 200000 entries",
        async |c| {
            let bytes = empty_files(&plain, scale.empty_files);
            let size = bytes.len();
            let e = c.queued(0, bytes, no_tweak, as_is).await;
            (
                format!(
                    "{} files in {:.1} MiB; {}",
                    scale.empty_files,
                    size as f64 / 1048576.0,
                    e.line()
                ),
                refused(&e, "more than 200000 entries"),
            )
        },
    )
    .await;
    cat.case(
        "upload",
        "GNU long name claiming 8 GiB",
        "rejected before it is read; raid's peak RSS +<50 MiB",
        async |c| {
            let bytes = crate::header_bomb(tar::EntryType::GNULongName, 8 << 30, 64 << 20);
            let size = bytes.len();
            let before = c.stack.worker_peak_rss_kib().into_iter().max().unwrap_or(0);
            let e = c.queued(0, bytes, no_tweak, as_is).await;
            let grew = c
                .stack
                .worker_peak_rss_kib()
                .into_iter()
                .max()
                .unwrap_or(0)
                .saturating_sub(before);
            (
                format!(
                    "{} KiB archive; peak RSS +{:.1} MiB; {}",
                    size >> 10,
                    grew as f64 / 1024.0,
                    e.line()
                ),
                refused(&e, "GNU long name claims 8.0 GiB") && grew < 50 << 10,
            )
        },
    )
    .await;
    cat.case("upload", "not an archive", "rejected: corrupt", async |c| {
        let garbage = b"MZ\x90\x00 definitely not tar+zstd".to_vec();
        let e = c.queued(0, garbage, no_tweak, as_is).await;
        (e.line(), refused(&e, "corrupt"))
    })
    .await;
    cat.case(
        "upload",
        "swapped for a bigger object",
        "rejected: larger than signed",
        async |c| {
            let (wire, job) = c.signed(0, &plain, archive(&plain, &[]), |_| {}).await;
            let key = upload_key(&c.user(0), &job);
            let mut bytes = archive(&plain, &[]);
            bytes.extend(std::iter::repeat_n(1u8, 32 << 20));
            c.store.put_bytes(&key, bytes).await.unwrap();
            c.send(&wire).await;
            let e = c.ended(job).await;
            (e.line(), refused(&e, "larger than"))
        },
    )
    .await;
    cat.case("upload", "missing", "rejected: cannot fetch", async |c| {
        let (wire, job) = c.signed(0, &plain, archive(&plain, &[]), |_| {}).await;
        c.store.delete(&upload_key(&c.user(0), &job)).await.unwrap();
        c.send(&wire).await;
        let e = c.ended(job).await;
        (e.line(), refused(&e, "cannot fetch the upload"))
    })
    .await;

    // ---- Build files, submitted with rai. ----
    cat.case(
        "build",
        "alias bomb",
        "refused by rai, nothing queued",
        async |c| {
            let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
            for i in 1..12 {
                let prev = if i == 1 { "a".to_string() } else { format!("a{}", i - 1) };
                text.push_str(&format!(
                    "a{i}: &a{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
                ));
            }
            text.push_str(&build_file(&["echo hi"], "time: 10s"));
            let s = c.submit(&text, &[]).await;
            (s.line(), s.code == Some(2) && s.stderr.contains("alias"))
        },
    )
    .await;
    cat.case(
        "build",
        "huge build file (3 MB)",
        "refused by rai",
        async |c| {
            let mut text = build_file(&["echo hi"], "time: 10s");
            text.push_str(&format!("# {}\n", "x".repeat(3_000_000)));
            let s = c.submit(&text, &[]).await;
            (
                s.line(),
                s.code == Some(2) && s.stderr.contains("rai_build.yml"),
            )
        },
    )
    .await;
    cat.case(
        "build",
        "unknown key",
        "refused by rai, with a suggestion",
        async |c| {
            let text = build_file(&["echo hi"], "time: 10s").replace("commands:", "comands:");
            let s = c.submit(&text, &[]).await;
            (
                s.line(),
                s.code == Some(2) && s.stderr.contains("comands") && s.stderr.contains("commands"),
            )
        },
    )
    .await;
    cat.case(
        "build",
        "absurd limits",
        "refused, naming the maximum",
        async |c| {
            let s = c
                .submit(&build_file(&["echo hi"], "time: 1000h, memory: 100t"), &[])
                .await;
            (s.line(), s.code != Some(0) && s.stderr.contains("maximum"))
        },
    )
    .await;
    cat.case(
        "build",
        "image allow-list: * crossing /",
        "rejected: rai-test/* does not allow rai-test/a/b",
        async |c| {
            let text = build_file(&["echo hi"], "time: 10s")
                .replace(&crate::image(), "rai-test/nested/evil:latest");
            let s = c.submit(&text, &[]).await;
            (
                s.line(),
                s.code != Some(0) && s.stderr.contains("is not allowed on this worker"),
            )
        },
    )
    .await;
    cat.case(
        "build",
        "image not allowed",
        "rejected by the worker",
        async |c| {
            let text =
                build_file(&["echo hi"], "time: 10s").replace(&crate::image(), "evil/miner:latest");
            let s = c.submit(&text, &[]).await;
            (
                s.line(),
                s.code != Some(0) && s.stderr.contains("is not allowed on this worker"),
            )
        },
    )
    .await;

    // ---- Jobs, submitted with rai. ----
    cat.case("job", "fork bomb", "ends; the next job runs", async |c| {
        let s = c
            .submit(
                &build_file(
                    &["bomb() { bomb | bomb & }; bomb; sleep 3; echo after"],
                    "time: 15s",
                ),
                &[],
            )
            .await;
        let next = c
            .submit(&build_file(&["echo next"], "time: 20s"), &[])
            .await;
        (
            format!("{}; next job: {}", s.line(), next.line()),
            s.code.is_some() && next.code == Some(0) && next.stdout == b"next\n",
        )
    })
    .await;
    cat.case("job", "memory hog", "failed: out of memory", async |c| {
        let s = c
            .submit(
                &build_file(
                    &["x=$(head -c 400000000 /dev/zero | tr '\\0' a); echo ${#x}"],
                    "time: 30s, memory: 64m",
                ),
                &[],
            )
            .await;
        (s.line(), s.stderr.contains("out of memory (limit 64m)"))
    })
    .await;
    cat.case(
        "job",
        "disk filler in /tmp",
        "failed: no space (tmpfs)",
        async |c| {
            let s = c
                .submit(
                    &build_file(&["cat /dev/zero > /tmp/fill"], "time: 30s, memory: 64m"),
                    &[],
                )
                .await;
            (
                s.line(),
                s.code == Some(1) && s.stderr.contains("No space left"),
            )
        },
    )
    .await;
    cat.case(
        "job",
        "disk filler in /build",
        "failed: /build over 64 MiB",
        async |c| {
            let s = c
                .submit(
                    &build_file(
                        &["i=0; while true; do head -c 8000000 /dev/zero > /build/f$i; i=$((i+1)); done"],
                        "time: 60s",
                    ),
                    &[],
                )
                .await;
            (
                s.line(),
                s.stderr
                    .contains("/build grew past this worker's limit of 64.0 MiB"),
            )
        },
    )
    .await;
    cat.case(
        "job",
        "/build deeper than PATH_MAX, 3x the limit at the bottom",
        "failed: /build over 64 MiB; nothing left on the host disk",
        async |c| {
            let name = "n".repeat(200);
            let command = format!(
                "i=0; while [ $i -lt 40 ]; do mkdir {name} && cd -P {name} || exit 9; i=$((i+1)); done; \
                 head -c 201326592 /dev/zero > fill; sleep 20"
            );
            let before = free_mib(c.stack.dir.path());
            let s = c.submit(&build_file(&[&command], "time: 60s"), &[]).await;
            // The job directory goes once the job ends; give the worker a moment.
            let mut after = free_mib(c.stack.dir.path());
            for _ in 0..50 {
                if c.stack.job_dirs_left().is_empty() {
                    after = free_mib(c.stack.dir.path());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let lost = before - after;
            // What the workers' job directories still hold decides; the free space of the whole disk is shown
            // too, but other programs on the machine (a compiler, a log) move it while the case runs.
            let left: f64 = (0..c.stack.workers.len())
                .map(|i| used_mib(&c.stack.dir.path().join(format!("jobs-{i}"))))
                .sum();
            (
                format!(
                    "{}; job directories hold {left:.1} MiB after; disk free {:+.0} MiB",
                    s.line(),
                    -lost
                ),
                s.stderr.contains("/build grew past this worker's limit of 64.0 MiB") && left < 1.0,
            )
        },
    )
    .await;
    cat.case(
        "job",
        "links in /build leading out through other links",
        "f and g not kept; rai download leaves no link out",
        async |c| {
            let command = "mkdir -p /build/d/x; ln -s .. /build/d/x/up; ln -s d/x/up/.. /build/e; \
                           ln -s e/.. /build/f; ln -s f/etc /build/g";
            let s = c.submit(&build_file(&[command], "time: 20s"), &[]).await;
            let job = job_id(&s.stderr);
            let home = c.stack.home(0);
            let dest = home.join(format!("links-{job}"));
            let out = c
                .stack
                .rai(0, &["download", &job, "-o", dest.to_str().unwrap()])
                .await;
            let mut kept: Vec<String> = std::fs::read_dir(&dest)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            kept.sort();
            let escaping: Vec<&String> = kept
                .iter()
                .filter(|k| !rai_common::archive::resolves_inside(&dest, Path::new(k.as_str())))
                .collect();
            (
                format!(
                    "{}; download exit {:?}, kept {kept:?}, leading out: {escaping:?}",
                    s.line(),
                    out.status.code()
                ),
                s.code == Some(0)
                    && out.status.success()
                    && kept == ["d", "e"]
                    && escaping.is_empty(),
            )
        },
    )
    .await;
    cat.case(
        "job",
        "a reason that writes over rai's lines",
        "shown visibly by rai status",
        async |c| {
            let command = "exit 3 # \r✱ Job succeeded.\u{8}\u{8} \u{202E}evil";
            let s = c.submit(&build_file(&[command], "time: 20s"), &[]).await;
            let job = job_id(&s.stderr);
            let tty = c.on_a_terminal(&["status", &job]).await;
            let reason = tty
                .lines()
                .find(|l| l.starts_with("reason:"))
                .unwrap_or("")
                .to_string();
            (
                format!("rai status shows {reason:?}"),
                s.code == Some(3)
                    && reason.contains("^M✱ Job succeeded.^H^H ⟨U+202E⟩evil")
                    && !tty.contains('\u{202E}')
                    && !tty.contains('\u{8}'),
            )
        },
    )
    .await;
    cat.case(
        "job",
        "endless output",
        "timed out; output capped at 32 MiB",
        async |c| {
            let s = c
                .submit(
                    &build_file(&["yes $(head -c 1000 /dev/zero | tr '\\0' y)"], "time: 8s"),
                    &[],
                )
                .await;
            (
                format!(
                    "{:.1} MiB shown; {}",
                    s.stdout.len() as f64 / 1048576.0,
                    s.line()
                ),
                s.code == Some(124) && s.stdout.len() <= 32 << 20 && s.stderr.contains("log limit"),
            )
        },
    )
    .await;
    cat.case(
        "job",
        "one huge line, no newline",
        "delivered in pieces, whole or up to the 32 MiB log cap",
        async |c| {
            let n = scale.long_line;
            let cap: u64 = 32 << 20;
            let s = c
                .submit(
                    &build_file(
                        &[&format!("head -c {n} /dev/zero | tr '\\0' x")],
                        "time: 60s",
                    ),
                    &[],
                )
                .await;
            let all_x = s.stdout.iter().all(|b| *b == b'x');
            let got = s.stdout.len() as u64;
            let whole = if n <= cap {
                got == n
            } else {
                got <= cap && got + (1 << 20) > cap && s.stderr.contains("log limit")
            };
            (
                format!(
                    "{got} of {n} bytes shown, all the line's: {all_x}; {}",
                    s.line()
                ),
                s.code == Some(0) && whole && all_x,
            )
        },
    )
    .await;
    cat.case(
        "job",
        "a huge line, then /build 60 deep past its limit",
        "capped line, then failed: /build over 64 MiB; worker peak RSS <= 128 MiB",
        async |c| {
            // Seen on a course's worker (issue 25): the two back to back took raid to 158 MiB.
            let n = scale.long_line;
            let line = c
                .submit(
                    &build_file(
                        &[&format!("head -c {n} /dev/zero | tr '\\0' y")],
                        "time: 60s",
                    ),
                    &[],
                )
                .await;
            let name = "d".repeat(200);
            let deep = c
                .submit(
                    &build_file(
                        &[&format!(
                            "i=0; while [ $i -lt 60 ]; do mkdir {name} && cd -P {name} || exit 9; i=$((i+1)); \
                             done; head -c 201326592 /dev/zero > fill; sleep 20"
                        )],
                        "time: 60s",
                    ),
                    &[],
                )
                .await;
            let peak = c.stack.worker_peak_rss_kib().into_iter().max().unwrap_or(0);
            (
                format!(
                    "{} bytes shown, {}; {}; worker peak RSS {:.1} MiB",
                    line.stdout.len(),
                    line.line(),
                    deep.line(),
                    peak as f64 / 1024.0
                ),
                line.code == Some(0)
                    && line.stdout.len() as u64 <= n.min(32 << 20)
                    && deep
                        .stderr
                        .contains("/build grew past this worker's limit of 64.0 MiB")
                    && peak <= 128 << 10,
            )
        },
    )
    .await;
    cat.case(
        "job",
        "terminal escape sequences",
        "exact to a pipe; made visible on a terminal",
        async |c| {
            let command = r"printf '\033]0;pwned\007\033[31mred\033[0m\n'";
            let s = c.submit(&build_file(&[command], "time: 20s"), &[]).await;
            let exact = s.stdout == b"\x1b]0;pwned\x07\x1b[31mred\x1b[0m\n";
            // The same job's output on a terminal: `script` gives rai one.
            let job = job_id(&s.stderr);
            let tty = c.on_a_terminal(&["logs", &job]).await;
            let shown = tty.contains("␛]0;pwned^G\x1b[31mred\x1b[0m");
            (
                format!(
                    "pipe byte-exact: {exact}; terminal shows {:?}",
                    tty.lines()
                        .find(|l| l.contains("red") && !l.contains("Running"))
                        .unwrap_or("")
                ),
                exact && shown && !tty.contains("\x1b]0;"),
            )
        },
    )
    .await;
    cat.case(
        "job",
        "ignores SIGTERM, then cancelled",
        "cancelled; killed after the grace",
        async |c| {
            let build = build_file(
                &["trap '' TERM; echo started; while true; do sleep 1; done"],
                "time: 60s",
            );
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("rai_build.yml"), build).unwrap();
            let running = c
                .stack
                .spawn_rai(0, &["submit", "-p", dir.path().to_str().unwrap()]);
            let line = running.wait_stderr("✱ Job ", Duration::from_secs(60)).await;
            let job = job_id(&line);
            let start = Instant::now();
            loop {
                if running.stdout.lock().unwrap().contains("started") {
                    break;
                }
                if start.elapsed() > Duration::from_secs(60) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let asked = Instant::now();
            c.stack.rai(0, &["cancel", &job]).await;
            let (code, _, stderr) = running.finish().await;
            let took = asked.elapsed().as_secs_f64();
            (
                format!(
                    "exit {code:?} {:.1} s after the cancel; {}",
                    took,
                    stderr.lines().last().unwrap_or("")
                ),
                stderr.contains("cancelled") && took < 15.0,
            )
        },
    )
    .await;
    // Probes of the sandbox: each prints what it reached; a forbidden word in the output is a hole.
    let probes = [
        (
            "reach the network / the host",
            "no route: network is off",
            "for a in 1.1.1.1 172.17.0.1 127.0.0.1:6379; do if wget -q -T 2 -O /dev/null http://$a/ 2>/dev/null; then echo open $a; else echo closed $a; fi; done",
            "open",
        ),
        (
            "reach the Docker socket",
            "absent",
            "for p in /var/run/docker.sock /run/docker.sock; do if [ -e $p ]; then echo found $p; else echo absent $p; fi; done",
            "found",
        ),
        (
            "write outside /build, be root",
            "read-only, not root",
            "for p in /evil /src/evil /etc/evil; do if touch $p 2>/dev/null; then echo wrote $p; else echo refused $p; fi; done; if [ $(id -u) = 0 ]; then echo wrote as root; else echo uid $(id -u); fi",
            "wrote",
        ),
    ];
    for (name, expected, command, hole) in probes {
        cat.case("job", name, expected, async |c| {
            let s = c.submit(&build_file(&[command], "time: 30s"), &[]).await;
            let out = text(&s.stdout);
            (
                out.trim().replace('\n', ", "),
                s.code == Some(0) && !out.is_empty() && !out.contains(hole),
            )
        })
        .await;
    }

    // ---- Chunked projects, declared to the gateway (issue 30). ----
    projects::cases(&mut cat).await;

    // ---- The whole run. ----
    cat.case("after", "a plain job", "succeeds", async |c| {
        let s = c
            .submit(&build_file(&["echo still here"], "time: 20s"), &[])
            .await;
        (s.line(), s.code == Some(0) && s.stdout == b"still here\n")
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while (!cat.stack.containers_left().is_empty() || !cat.stack.job_dirs_left().is_empty())
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let containers = cat.stack.containers_left();
    if !containers.is_empty() {
        cat.problems
            .push(format!("containers left: {containers:?}"));
    }
    let dirs = cat.stack.job_dirs_left();
    if !dirs.is_empty() {
        cat.problems.push(format!("job directories left: {dirs:?}"));
    }
    let depth = cat.queue.depth().await.unwrap();
    if depth != rai_backends::queue::Depth::default() {
        cat.problems
            .push(format!("the queue still holds {depth:?}"));
    }
    let used = disk_before - free_mib(cat.stack.dir.path());
    if used > 512.0 {
        cat.problems
            .push(format!("the disk lost {used:.0} MiB during the run"));
    }
    Report {
        cases: std::mem::take(&mut cat.cases),
        problems: std::mem::take(&mut cat.problems),
        worker_peak_rss_kib: cat.peak_rss,
        disk_used_mib: used,
        elapsed: started.elapsed(),
    }
}

impl Catalogue {
    /// Runs `rai ARGS` as student 0 with a terminal for its stdout and stderr; returns what the terminal got.
    async fn on_a_terminal(&self, args: &[&str]) -> String {
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
