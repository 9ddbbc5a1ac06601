//! Redis bounded, logs kept in the store (issue 18):
//!
//!     cargo bench -p rai-client --bench logs [-- JOBS]   (stack up, release binaries built)
//!
//! 10,000 finished jobs of 100 KB of output each (100 events of 1 KB, then the end), published as a worker
//! publishes them, on the local stack's Redis. Run twice on the same Redis: first as before issue 18 (the whole log
//! stays in Redis for `events.retention`), the reference; then as the worker does now (the log stored in the object
//! store, Redis keeping it `events.live_retention`, one second here). Figures: Redis `used_memory` once the
//! retention has passed, target <= 64 MiB, beside the reference; and `rai logs ID` of a job served from the store,
//! time to its first line of output, p50 target <= 0.2 s, beside the same for a job whose log is still in Redis.

use std::io::BufRead;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rai_backends::events::EventBus;
use rai_backends::events::archive::archive_log;
use rai_backends::store::FsStore;
use rai_common::JobId;
use rai_common::event::{EventBody, JobStatus};
use rai_testkit::bench::percentile;
use rai_testkit::stack::{Kind, Options, Stack, rai_command};

const EVENTS_PER_JOB: usize = 100;
const EVENT_BYTES: usize = 1024;
const KEEP_LIVE: Duration = Duration::from_secs(1);

/// Publishes `n` finished jobs of student0; archives each when `store` is given. Returns their ids.
async fn publish_jobs(bus: &EventBus, store: Option<&FsStore>, n: usize) -> Vec<JobId> {
    let line = format!("{}\n", "x".repeat(EVENT_BYTES - 1));
    let batch: Vec<EventBody> = (0..EVENTS_PER_JOB)
        .map(|_| EventBody::Stdout { data: line.clone() })
        .collect();
    let mut jobs = Vec::with_capacity(n);
    let mut pending = futures::stream::FuturesUnordered::new();
    for _ in 0..n {
        let job = JobId::new();
        jobs.push(job);
        let (bus, batch) = (bus.clone(), batch.clone());
        pending.push(async move {
            bus.bind_owner(&job, "student0", Duration::from_secs(86400))
                .await
                .unwrap();
            let mut p = bus.publisher(job).await.unwrap();
            p.publish(&batch).await.unwrap();
            p.send(EventBody::End {
                status: JobStatus::Succeeded,
                exit_code: Some(0),
                reason: None,
            })
            .await
            .unwrap();
            if let Some(store) = store {
                archive_log(&bus, store, "student0", &job, KEEP_LIVE)
                    .await
                    .unwrap();
            }
        });
        if pending.len() >= 16 {
            futures::StreamExt::next(&mut pending).await;
        }
    }
    while futures::StreamExt::next(&mut pending).await.is_some() {}
    jobs
}

async fn used_memory(bus: &EventBus) -> u64 {
    bus.memory_report(1).await.unwrap().used_bytes
}

/// Seconds from starting `rai logs ID` to its first line of output.
fn first_line(s: &Stack, job: &JobId) -> f64 {
    let started = Instant::now();
    let mut child = rai_command(s.home(0), &["logs", &job.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let took = started.elapsed().as_secs_f64();
    assert!(line.starts_with("xxxx"), "rai logs printed {line:?}");
    let _ = child.kill();
    let _ = child.wait();
    took
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let s = Stack::start(
        Kind::Local,
        Options {
            workers: 0,
            ..Options::default()
        },
    )
    .await;
    let bus = EventBus::connect(s.redis.target(), Duration::from_secs(7 * 86400))
        .await
        .unwrap();
    let store = FsStore::open(s.dir.path().join("store")).unwrap();
    let empty = used_memory(&bus).await;

    // The reference: every log stays in Redis.
    let t = Instant::now();
    let kept = publish_jobs(&bus, None, n).await;
    let kept_memory = used_memory(&bus).await;
    println!(
        "logs: {n} jobs x {} KB published in {:.0} s with the logs kept in Redis: used_memory {:.1} MiB (empty: {:.1} MiB)",
        EVENTS_PER_JOB * EVENT_BYTES / 1024,
        t.elapsed().as_secs_f64(),
        kept_memory as f64 / 1048576.0,
        empty as f64 / 1048576.0
    );
    let live: Vec<f64> = kept.iter().take(25).map(|j| first_line(&s, j)).collect();
    redis::cmd("FLUSHALL")
        .query_async::<()>(&mut s.redis.connection().await)
        .await
        .unwrap();

    // As the worker does now: stored, then Redis lets go after live_retention.
    let t = Instant::now();
    let stored = publish_jobs(&bus, Some(&store), n).await;
    let publish_secs = t.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(120);
    while bus.memory_report(1).await.unwrap().live_logs > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let bounded_memory = used_memory(&bus).await;
    println!(
        "logs: {n} jobs published and stored in {publish_secs:.0} s; after live_retention ({} s): used_memory {:.1} MiB",
        KEEP_LIVE.as_secs(),
        bounded_memory as f64 / 1048576.0
    );
    let from_store: Vec<f64> = stored.iter().take(25).map(|j| first_line(&s, j)).collect();
    let (store_p50, live_p50) = (percentile(&from_store, 0.5), percentile(&live, 0.5));
    println!(
        "logs: rai logs, first line: p50 {:.3} s from the store, {:.3} s from Redis",
        store_p50, live_p50
    );
    let mib = |b: u64| b as f64 / 1048576.0;
    rai_testkit::report(rai_testkit::Figure {
        name: &format!("Redis memory after {n} finished 100 KB jobs"),
        value: format!("{:.1} MiB", mib(bounded_memory)),
        reference: format!("{:.1} MiB (logs kept in Redis)", mib(kept_memory)),
        ratio: Some(bounded_memory as f64 / kept_memory as f64),
        target: "<= 64 MiB",
        met: bounded_memory <= 64 << 20,
    });
    rai_testkit::report(rai_testkit::Figure {
        name: "rai logs of a stored job: first line, p50",
        value: format!("{store_p50:.3} s"),
        reference: format!("{live_p50:.3} s (log in Redis)"),
        ratio: Some(store_p50 / live_p50),
        target: "<= 0.2 s",
        met: store_p50 <= 0.2,
    });
}
