//! Jobs made ready while a slot's job runs (`raid.prepare_next`): handed back at once when the worker drains, and
//! their lease kept alive however long the running job takes. (kill -9 while a job is ready: the chaos tests.)

use std::time::Duration;

use crate::harness::Harness;
use rai_common::account::generate_signing_key;
use rai_common::event::{Event, EventBody, JobStatus};
use rai_common::job::JobId;
use rai_testkit::jobs::{containers_of, end, text};

const LIMIT: Duration = Duration::from_secs(120);

/// One slot, the given queue lease and shutdown grace.
fn one_slot(lease_secs: u64, grace_secs: u64) -> (rai_common::Config, Vec<tempfile::TempDir>) {
    let mut dirs = Vec::new();
    let mut config = rai_testkit::jobs::worker_config(&mut dirs);
    config.raid.concurrency = Some(1);
    config.queue.lease = rai_common::units::Span::from_secs(lease_secs);
    config.raid.shutdown_grace = rai_common::units::Span::from_secs(grace_secs);
    (config, dirs)
}

/// A worker of one slot (`lease_secs`, `grace_secs`) running a long job (`sleep_secs`) with a second job made ready
/// behind it; and what a second worker on the same queue needs.
struct LongThenReady {
    first: Harness,
    long: JobId,
    ready: JobId,
    config: rai_common::Config,
    key: ed25519_dalek::SigningKey,
    dirs: Vec<tempfile::TempDir>,
}

async fn long_then_ready(lease_secs: u64, grace_secs: u64, sleep_secs: u32) -> LongThenReady {
    let (config, dirs) = one_slot(lease_secs, grace_secs);
    let key = generate_signing_key();
    rai_testkit::jobs::write_registry(&config, &[("jdoe", &key, false)]);
    let first = Harness::start_with(config.clone(), key.clone(), Vec::new()).await;
    let command = format!("echo long; sleep {sleep_secs}; echo long done");
    let long = first.submit(&[&command], "time: 60s", &[]).await;
    rai_testkit::jobs::wait_running(&first.ctx.bus, long).await;
    let ready = first.submit(&["echo ready"], "time: 60s", &[]).await;
    wait_ready(&first, ready).await;
    LongThenReady {
        first,
        long,
        ready,
        config,
        key,
        dirs,
    }
}

impl LongThenReady {
    /// A second worker on the same queue.
    async fn second_worker(&mut self) -> Harness {
        let mut config = self.config.clone();
        config.raid.name = Some(rai_testkit::unique("w2"));
        Harness::start_with(config, self.key.clone(), std::mem::take(&mut self.dirs)).await
    }
}

/// Waits until `job` is ready on a worker: its container made, its commands not begun.
async fn wait_ready(h: &Harness, job: JobId) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let label = format!("rai.job={job}");
        let made = tokio::task::spawn_blocking(move || containers_of(&label))
            .await
            .unwrap();
        let state = h.ctx.bus.state(&job).await.unwrap();
        assert_ne!(
            state.and_then(|s| s.status),
            Some(JobStatus::Running),
            "job {job} ran at once: the slot was not busy"
        );
        if made == 1 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {job} never got ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The workers that announced running the job, in order.
fn ran_on(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Status {
                status: JobStatus::Running,
                worker,
                ..
            } => worker.clone(),
            _ => None,
        })
        .collect()
}

fn requeued(events: &[Event]) -> bool {
    events.iter().any(|e| {
        matches!(
            e.body,
            EventBody::Status {
                status: JobStatus::Requeued,
                ..
            }
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_job_goes_back_to_the_queue_at_once_on_sigterm() {
    // A long grace: the running job may finish; the ready one must not wait for it.
    let mut setup = long_then_ready(6, 60, 6).await;
    let (long, ready) = (setup.long, setup.ready);

    // SIGTERM: the worker drains. The ready job goes back now, its container removed, queued again.
    setup.first.shutdown.drain();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let label = format!("rai.job={ready}");
        let left = tokio::task::spawn_blocking(move || containers_of(&label))
            .await
            .unwrap();
        let state = setup.first.ctx.bus.state(&ready).await.unwrap();
        if left == 0 && state.and_then(|s| s.status) == Some(JobStatus::Queued) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the ready job was not handed back at once ({left} containers)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Another worker runs it while the first still finishes its long job.
    let second = setup.second_worker().await;
    let ready_events = second.events(ready, LIMIT).await;
    assert_eq!(text(&ready_events, "stdout"), "ready\n");
    assert_eq!(end(&ready_events).0, "succeeded");
    assert_eq!(
        ran_on(&ready_events),
        std::slice::from_ref(&second.ctx.name)
    );
    assert!(
        !requeued(&ready_events),
        "a job handed back before it began runs as a first run: {ready_events:#?}"
    );
    let long_events = setup.first.events(long, LIMIT).await;
    assert_eq!(text(&long_events, "stdout"), "long\nlong done\n");
    assert_eq!(
        ran_on(&long_events),
        std::slice::from_ref(&setup.first.ctx.name)
    );
    assert!(
        ready_events.last().unwrap().ts < long_events.last().unwrap().ts,
        "the ready job ended before the long one: it did not wait for the first worker's grace"
    );
    tokio::time::timeout(Duration::from_secs(60), setup.first.serving)
        .await
        .expect("the first worker stopped once its long job ended")
        .unwrap();
    second.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_jobs_lease_outlives_a_long_running_job() {
    // A 2 s lease; the running job takes four times that.
    let mut setup = long_then_ready(2, 30, 8).await;
    let (long, ready) = (setup.long, setup.ready);
    // An idle worker on the same queue: a lapsed lease would let it take the ready job.
    let second = setup.second_worker().await;
    let first = setup.first;

    let long_events = first.events(long, LIMIT).await;
    let ready_events = first.events(ready, LIMIT).await;
    assert_eq!(end(&long_events).0, "succeeded");
    assert_eq!(text(&ready_events, "stdout"), "ready\n");
    assert_eq!(end(&ready_events).0, "succeeded");
    assert_eq!(
        ran_on(&ready_events),
        std::slice::from_ref(&first.ctx.name),
        "the ready job kept its lease and ran where it was made ready, once"
    );
    assert!(!requeued(&ready_events), "{ready_events:#?}");
    let stdout_ts = |events: &[Event]| -> Vec<_> {
        events
            .iter()
            .filter(|e| matches!(e.body, EventBody::Stdout { .. }))
            .map(|e| e.ts)
            .collect()
    };
    assert!(
        stdout_ts(&ready_events)[0] >= *stdout_ts(&long_events).last().unwrap(),
        "the ready job's command began after the long job's last output"
    );
    assert_eq!(
        second
            .ctx
            .completed
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "the idle worker took nothing"
    );
    first.drain_and_stop().await;
    second.drain_and_stop().await;
}
