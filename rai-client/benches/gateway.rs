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
//!
//! Each runs over HTTPS with Redis over TLS (mutual TLS, deploy/redis's ACL users), as a course runs it, and then on
//! a stack with a plain-HTTP gateway and a plain Redis, whose figures are printed beside (issue 26).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rai_client::Client;
use rai_client::client::upload::{Archive, Progress};
use rai_common::account::{Profile, SigningKey};
use rai_common::event::EventBody;
use rai_common::job::{InputObject, JobId, JobRequest};
use rai_testkit::bench::{header, percentile, row, status_kib};
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
    config.ca_file = Some(stack.ca.cert.clone());
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
    client.upload(&job, &archive, &[], progress).await.unwrap();
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
        sweep: None,
    };
    let signed = request.sign(key);
    let started = Instant::now();
    client.submit(&signed).await.unwrap();
    (job, started.elapsed())
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

/// What the submit burst measured.
struct Burst {
    submits: Vec<f64>,
    whoamis: Vec<f64>,
    took: Duration,
    accepted: usize,
}

/// What the thousand followers measured.
struct Followers {
    idle_rss: u64,
    peak_rss: u64,
    idle_clients: u64,
    peak_clients: u64,
    latency: Vec<f64>,
    alone_latency: Vec<f64>,
    lines: u64,
}

/// 300 students submitting within 10 s, over HTTPS and TLS Redis (`tls`), or plain HTTP and plain Redis.
async fn burst(tls: bool) -> Burst {
    let stack = Stack::start(
        Kind::Local,
        Options {
            users: STUDENTS,
            concurrency: 4,
            plain_gateway: !tls,
            plain_redis: !tls,
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
    Burst {
        took: started.elapsed(),
        accepted: submits.len(),
        submits,
        whoamis,
    }
}

/// A thousand followers on one gateway, over HTTPS and TLS Redis (`tls`), or plain HTTP and plain Redis.
async fn followers(tls: bool) -> Followers {
    let stack = Stack::start(
        Kind::Local,
        Options {
            users: 1,
            concurrency: JOBS + 1,
            raid_extra: "  limits:\n    cpus: 1\n",
            // The one student stands for a thousand: no per-student cap on live streams.
            gateway_extra: "  max_followers: 0\n",
            plain_gateway: !tls,
            plain_redis: !tls,
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
    let (alone_latency, alone_lines) = follow(client.clone(), alone).await;
    assert_eq!(alone_lines, LINES, "the lone follower lost lines");
    let idle_rss = status_kib(Some(gateway_pid), "VmRSS:");
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
            // A client (a connection) of its own each, as a thousand `rai logs -f` are: one client would multiplex
            // them all on one HTTP/2 connection, whose stream limit holds most of them back.
            let (own, _, _) = student(&stack, 0);
            followers.push(tokio::spawn(follow(own, *job)));
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
    let peak_rss = status_kib(Some(gateway_pid), "VmHWM:");

    Followers {
        idle_rss,
        peak_rss,
        idle_clients,
        peak_clients,
        latency,
        alone_latency,
        lines,
    }
}

#[tokio::main]
async fn main() {
    // Each over HTTPS and TLS Redis, as a course runs it, then plain for reference.
    let tls_burst = burst(true).await;
    let plain_burst = burst(false).await;
    let tls_followers = followers(true).await;
    let plain_followers = followers(false).await;
    println!(
        "gateway, local stack (Redis queue, fs store, raid gateway process, Docker {})",
        rai_testkit::image()
    );
    header("measured", "reference");
    let expected_lines = LINES * (JOBS * FOLLOWERS_PER_JOB) as u64;
    // The gateway's own connections before the followers: its event bus, its hub's subscription, its queue.
    let gateway_base = 3;
    let (label, b, f) = ("over HTTPS + TLS Redis", tls_burst, tls_followers);
    let (pb, pf) = (plain_burst, plain_followers);
    let (submits, whoamis) = (b.submits, b.whoamis);
    row(
        &format!(
            "submit burst {label}: {STUDENTS} students in {:.1} s, accepted",
            b.took.as_secs_f64()
        ),
        format!("{}/{STUDENTS}", b.accepted),
        format!("{}/{STUDENTS} plain", pb.accepted),
        None,
        "all",
        Some(b.accepted == STUDENTS),
    );
    let (s99, w99) = (percentile(&submits, 0.99), percentile(&whoamis, 0.99));
    row(
        "  submit latency p99 (ref: signed whoami p99)",
        format!("{s99:.3} s"),
        format!("{w99:.3} s"),
        None,
        "<= 1 s",
        Some(s99 <= 1.0),
    );
    row(
        "  submit latency p99 (ref: the same over plain HTTP + plain Redis)",
        format!("{s99:.3} s"),
        format!("{:.3} s", percentile(&pb.submits, 0.99)),
        None,
        "",
        None,
    );
    row(
        "  submit latency p50 (ref: plain)",
        format!("{:.3} s", percentile(&submits, 0.5)),
        format!("{:.3} s", percentile(&pb.submits, 0.5)),
        None,
        "",
        None,
    );
    row(
        &format!(
            "{} followers {label}: gateway peak RSS (ref: plain)",
            JOBS * FOLLOWERS_PER_JOB
        ),
        format!("{:.1} MiB", f.peak_rss as f64 / 1024.0),
        format!("{:.1} MiB", pf.peak_rss as f64 / 1024.0),
        None,
        "<= 256 MiB",
        Some(f.peak_rss <= 256 * 1024),
    );
    row(
        "  gateway RSS before the followers (ref: plain)",
        format!("{:.1} MiB", f.idle_rss as f64 / 1024.0),
        format!("{:.1} MiB", pf.idle_rss as f64 / 1024.0),
        None,
        "",
        None,
    );
    let added = f.peak_clients.saturating_sub(f.idle_clients);
    row(
        "  Redis connections the followers added (gateway total)",
        format!("{added} ({})", gateway_base + added),
        format!("{} all", f.idle_clients),
        None,
        "total <= 10",
        Some(gateway_base + added <= 10),
    );
    let (latency, alone) = (f.latency, f.alone_latency);
    let (l99, a99) = (percentile(&latency, 0.99), percentile(&alone, 0.99));
    row(
        "  publish -> follower latency p99 (ref: one follower alone)",
        format!("{l99:.1} ms"),
        format!("{a99:.1} ms"),
        None,
        "<= 100 ms",
        Some(l99 <= 100.0),
    );
    row(
        "  publish -> follower latency p99 (ref: plain)",
        format!("{l99:.1} ms"),
        format!("{:.1} ms", percentile(&pf.latency, 0.99)),
        None,
        "",
        None,
    );
    row(
        "  publish -> follower latency p50 (ref: plain)",
        format!("{:.1} ms", percentile(&latency, 0.5)),
        format!("{:.1} ms", percentile(&pf.latency, 0.5)),
        None,
        "",
        None,
    );
    row(
        "  lines lost (ref: plain)",
        (expected_lines - f.lines.min(expected_lines)).to_string(),
        (expected_lines - pf.lines.min(expected_lines)).to_string(),
        None,
        "0",
        Some(f.lines == expected_lines),
    );
}
