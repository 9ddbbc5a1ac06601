//! The gateway under a course's load, on the local stack (Redis queue, fs store, `raid` workers, one `raid gateway`
//! process), each figure beside a reference measured in the same run:
//!
//!     deploy/local/report.sh   (or, with the stack up and release binaries built:
//!                               cargo bench -p rai-client --bench gateway)
//!
//! 1. Submit burst: 300 students each upload and submit one job within 10 s, through `rai_client::Client` as `rai`
//!    does: all accepted; submit latency (`POST /v1/jobs`) p99 <= 1 s, beside a signed `GET /v1/whoami` round trip
//!    measured in the same burst (the gateway's floor).
//! 2. 1,000 followers on one gateway (100 on each of 10 jobs printing about 1,000 lines/s in all): the gateway's
//!    peak RSS <= 256 MiB (beside its RSS before the followers came), the Redis connections the followers added
//!    (target: the gateway's total stays <= 10), and the latency from the worker's publish (the event's `ts`) to a
//!    follower receiving it, p99 <= 100 ms, beside one follower alone on one job; every line received.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rai_client::Client;
use rai_client::client::upload::{Archive, Progress};
use rai_common::account::{Profile, SigningKey};
use rai_common::event::EventBody;
use rai_common::job::{InputObject, JobId, JobRequest};
use rai_testkit::stack::{Kind, Options, Stack};
use sha2::Digest;

const STUDENTS: usize = 300;
const JOBS: usize = 10;
const FOLLOWERS_PER_JOB: usize = 100;
const LINES: u64 = 1000;

fn student(stack: &Stack, i: usize) -> (Client, SigningKey, String) {
    let profile = Profile::load(&stack.home(i).join(".rai_profile")).unwrap();
    let key = profile.signing_key("profile").unwrap();
    let mut config = rai_common::Config::defaults().client;
    config.gateway = Some(stack.gateways[0].url.clone());
    let client = Client::new(&config, &profile.username, key.clone()).unwrap();
    (client, key, profile.username)
}

/// A packed project of `commands` in a file: (dir, path, size, sha256, build file text).
fn packed(commands: &[&str]) -> (tempfile::TempDir, std::path::PathBuf, u64, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let build = rai_testkit::jobs::build_file(commands, "time: 120s");
    let project = dir.path().join("project");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(project.join("rai_build.yml"), &build).unwrap();
    let bytes = rai_testkit::jobs::pack_dir(&project);
    let file = dir.path().join("upload.tar.zst");
    std::fs::write(&file, &bytes).unwrap();
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    (dir, file, bytes.len() as u64, sha, build)
}

/// Uploads and submits one job; returns its id and how long the submit call took.
async fn submit(
    client: &Client,
    key: &SigningKey,
    user: &str,
    queue: &str,
    upload: &(tempfile::TempDir, std::path::PathBuf, u64, String, String),
) -> (JobId, Duration) {
    let job = JobId::new();
    let archive = Archive {
        path: &upload.1,
        size: upload.2,
        sha256: upload.3.clone(),
    };
    let progress: Progress = Arc::new(|_| {});
    client.upload(&job, &archive, progress).await.unwrap();
    let request = JobRequest {
        id: job,
        user: user.into(),
        team: "team".into(),
        queue: queue.into(),
        created_at: chrono::Utc::now(),
        client_version: rai_common::VERSION.into(),
        build: rai_common::BuildSpec::parse(&upload.4, "rai_build.yml").unwrap(),
        input: InputObject {
            key: rai_common::objects::upload_key(user, &job),
            size: upload.2,
            sha256: upload.3.clone(),
        },
        assignment: None,
    };
    let signed = request.sign(key);
    let started = Instant::now();
    client.submit(&signed).await.unwrap();
    (job, started.elapsed())
}

fn p(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() as f64 - 1.0) * q).round() as usize]
}

/// Prints one row; a row with a verdict (`met`) goes into the report too.
fn row(what: &str, value: String, reference: String, target: &str, met: Option<bool>) {
    let mark = match met {
        Some(true) => "ok",
        Some(false) => "MISSED",
        None => "",
    };
    println!("{what:<62} {value:>12} {reference:>12}  {target} {mark}");
    if let Some(met) = met {
        rai_testkit::report(rai_testkit::Figure {
            name: what.trim(),
            value,
            reference,
            ratio: None,
            target,
            met,
        });
    }
}

fn vm_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn redis_clients(target: &rai_backends::redis_link::RedisTarget) -> u64 {
    let mut conn = target
        .client()
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Follows `job` and returns the publish-to-receive latency of every stdout event (ms) and the lines received.
async fn follow(client: Client, job: JobId) -> (Vec<f64>, u64) {
    let mut events = client.follow(job, 0);
    let (mut latencies, mut lines) = (Vec::new(), 0u64);
    while let Some(e) = events.next().await {
        let e = e.unwrap();
        if let EventBody::Stdout { data } = &e.body {
            let ms = (chrono::Utc::now() - e.ts).num_microseconds().unwrap_or(0) as f64 / 1e3;
            latencies.push(ms);
            lines += data.lines().count() as u64;
        }
    }
    (latencies, lines)
}

#[tokio::main]
async fn main() {
    // 1: the submit burst.
    let stack = Stack::start(
        Kind::Local,
        Options {
            users: STUDENTS,
            concurrency: 4,
            // Plain HTTP: these figures compare with the earlier issues' plain ones (the HTTPS rows are
            // issue 26's).
            plain_gateway: true,
            ..Options::default()
        },
    )
    .await;
    let upload = Arc::new(packed(&["true"]));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..STUDENTS {
        let (client, key, user) = student(&stack, i);
        let (upload, queue) = (upload.clone(), stack.queue.clone());
        tasks.push(tokio::spawn(async move {
            // Spread over 10 s, as a deadline's last seconds are.
            tokio::time::sleep(Duration::from_millis((i as u64 * 10_000) / STUDENTS as u64)).await;
            let t = Instant::now();
            client.whoami().await.unwrap();
            let whoami = t.elapsed();
            let (_, took) = submit(&client, &key, &user, &queue, &upload).await;
            (took, whoami)
        }));
    }
    let (mut submits, mut whoamis) = (Vec::new(), Vec::new());
    for t in tasks {
        let (took, whoami) = t.await.unwrap();
        submits.push(took.as_secs_f64());
        whoamis.push(whoami.as_secs_f64());
    }
    let burst = started.elapsed();
    let accepted = submits.len();
    drop(stack);

    // 2: a thousand followers.
    let stack = Stack::start(
        Kind::Local,
        Options {
            users: 1,
            concurrency: JOBS + 1,
            raid_extra: "  limits:\n    cpus: 1\n",
            // Plain HTTP: these figures compare with the earlier issues' plain ones (the HTTPS rows are
            // issue 26's).
            plain_gateway: true,
            ..Options::default()
        },
    )
    .await;
    let gateway_pid = stack.gateway_pid(0).expect("the gateway runs");
    let (client, key, user) = student(&stack, 0);
    let script = format!(
        "sleep 4; i=0; while [ $i -lt {LINES} ]; do echo line $i; i=$((i+1)); sleep 0.01; done"
    );
    let printing = Arc::new(packed(&[&script]));
    // One follower alone first: the reference latency.
    let (alone, _) = submit(&client, &key, &user, &stack.queue, &printing).await;
    let (mut alone_latency, alone_lines) = follow(client.clone(), alone).await;
    assert_eq!(alone_lines, LINES, "the lone follower lost lines");
    let idle_rss = vm_kib(gateway_pid, "VmRSS:");
    let idle_clients = redis_clients(&stack.redis.target()).await;
    let mut jobs = Vec::new();
    for _ in 0..JOBS {
        jobs.push(
            submit(&client, &key, &user, &stack.queue, &printing)
                .await
                .0,
        );
    }
    let mut followers = Vec::new();
    for job in &jobs {
        for _ in 0..FOLLOWERS_PER_JOB {
            followers.push(tokio::spawn(follow(client.clone(), *job)));
        }
    }
    let sampler = {
        let target = stack.redis.target();
        tokio::spawn(async move {
            let mut peak = 0;
            for _ in 0..400 {
                peak = peak.max(redis_clients(&target).await);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak
        })
    };
    let (mut latency, mut lines) = (Vec::new(), 0u64);
    for f in followers {
        let (l, n) = f.await.unwrap();
        latency.extend(l);
        lines += n;
    }
    let peak_clients = sampler.await.unwrap();
    let peak_rss = vm_kib(gateway_pid, "VmHWM:");
    let expected_lines = LINES * (JOBS * FOLLOWERS_PER_JOB) as u64;
    // The gateway's own connections before the followers: its event bus, its hub's subscription, its queue.
    let gateway_base = 3;
    let added = peak_clients.saturating_sub(idle_clients);

    println!(
        "gateway, local stack (Redis queue, fs store, raid gateway process, Docker {})",
        rai_testkit::image()
    );
    println!("{:<62} {:>12} {:>12}  target", "", "measured", "reference");
    let (s99, w99) = (p(&mut submits, 0.99), p(&mut whoamis, 0.99));
    row(
        &format!(
            "submit burst: {STUDENTS} students in {:.1} s, accepted",
            burst.as_secs_f64()
        ),
        format!("{accepted}/{STUDENTS}"),
        String::new(),
        "all",
        Some(accepted == STUDENTS),
    );
    row(
        "  submit latency p99 (ref: signed whoami p99)",
        format!("{:.3} s", s99),
        format!("{:.3} s", w99),
        "<= 1 s",
        Some(s99 <= 1.0),
    );
    row(
        "  submit latency p50",
        format!("{:.3} s", p(&mut submits, 0.5)),
        format!("{:.3} s", p(&mut whoamis, 0.5)),
        "",
        None,
    );
    row(
        &format!(
            "{} followers: gateway peak RSS (ref: before them)",
            JOBS * FOLLOWERS_PER_JOB
        ),
        format!("{:.1} MiB", peak_rss as f64 / 1024.0),
        format!("{:.1} MiB", idle_rss as f64 / 1024.0),
        "<= 256 MiB",
        Some(peak_rss <= 256 * 1024),
    );
    row(
        "  Redis connections the followers added (gateway total)",
        format!("{added} ({})", gateway_base + added),
        format!("{idle_clients} all"),
        "total <= 10",
        Some(gateway_base + added <= 10),
    );
    let (l99, a99) = (p(&mut latency, 0.99), p(&mut alone_latency, 0.99));
    row(
        "  publish -> follower latency p99 (ref: one follower alone)",
        format!("{l99:.1} ms"),
        format!("{a99:.1} ms"),
        "<= 100 ms",
        Some(l99 <= 100.0),
    );
    row(
        "  publish -> follower latency p50",
        format!("{:.1} ms", p(&mut latency, 0.5)),
        format!("{:.1} ms", p(&mut alone_latency, 0.5)),
        "",
        None,
    );
    row(
        "  lines lost",
        (expected_lines - lines.min(expected_lines)).to_string(),
        String::new(),
        "0",
        Some(lines == expected_lines),
    );
}
