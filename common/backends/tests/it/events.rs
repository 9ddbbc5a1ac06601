//! Job events end to end on real Redis servers: order, no gaps, no duplicates, through killed connections and a
//! Redis restart.
//!
//! Over 450 lines: one test per delivery promise of the event bus, sharing the Redis faults.

use std::time::Duration;

use rai_backends::events::{EventBus, FollowOptions};
use rai_common::JobId;
use rai_common::event::{EventBody, JobStatus};
use rai_testkit::PrivateRedis;

const RETENTION: Duration = Duration::from_secs(3600);

fn line(i: u64) -> EventBody {
    EventBody::Stdout {
        data: format!("line {i}\n"),
    }
}

fn end(code: i64) -> EventBody {
    EventBody::End {
        status: if code == 0 {
            JobStatus::Succeeded
        } else {
            JobStatus::Failed
        },
        exit_code: Some(code),
        reason: None,
    }
}

/// Collects a follower's events until the end; checks seq runs 1..=n without gap or repeat.
async fn collect(bus: &EventBus, job: JobId, after: u64) -> Vec<rai_common::event::Event> {
    let mut stream = bus.follow(job, after, FollowOptions::default());
    let mut out = Vec::new();
    while let Some(e) = stream.next().await {
        out.push(e.expect("the follower never errors while Redis comes back"));
    }
    for (i, e) in out.iter().enumerate() {
        assert_eq!(
            e.seq,
            after + 1 + i as u64,
            "a gap or a duplicate at position {i}"
        );
    }
    out
}

#[tokio::test]
async fn live_and_replayed_followers_see_the_same_events() {
    let bus = EventBus::connect(&rai_testkit::redis_url(), RETENTION)
        .await
        .unwrap();
    let job = JobId::new();
    let mut publisher = bus.publisher(job).await.unwrap();
    let live = {
        let bus = bus.clone();
        tokio::spawn(async move { collect(&bus, job, 0).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    publisher
        .send(EventBody::Status {
            status: JobStatus::Running,
            worker: Some("w1".into()),
            detail: None,
        })
        .await
        .unwrap();
    publisher
        .publish(&[
            line(1),
            EventBody::Stderr {
                data: "warn\n".into(),
            },
            line(2),
        ])
        .await
        .unwrap();
    publisher.send(end(0)).await.unwrap();
    let live = live.await.unwrap();
    assert_eq!(live.len(), 5);
    assert!(live.last().unwrap().is_end());

    // A follower that arrives after the end replays exactly the same events; one that starts at seq 3 gets the rest.
    let replay = collect(&bus, job, 0).await;
    assert_eq!(replay, live);
    let tail = collect(&bus, job, 3).await;
    assert_eq!(tail, live[3..].to_vec());
}

#[tokio::test]
async fn a_rerun_continues_the_numbering_and_a_stale_worker_is_refused() {
    let bus = EventBus::connect(&rai_testkit::redis_url(), RETENTION)
        .await
        .unwrap();
    let job = JobId::new();
    let mut first = bus.publisher(job).await.unwrap();
    first.publish(&[line(1), line(2)]).await.unwrap();
    // The job is redelivered to another worker: it continues at 3.
    let mut second = bus.publisher(job).await.unwrap();
    assert_eq!(
        second
            .send(EventBody::Status {
                status: JobStatus::Requeued,
                worker: None,
                detail: None
            })
            .await
            .unwrap(),
        3
    );
    // The first worker, still alive somehow, cannot publish over it.
    let e = first.send(line(3)).await.unwrap_err().to_string();
    assert!(e.contains("another worker has the job"), "{e}");
    second.send(end(0)).await.unwrap();
    assert_eq!(collect(&bus, job, 0).await.len(), 4);
}

#[tokio::test]
async fn a_job_whose_end_is_published_is_never_claimed_again() {
    use rai_backends::events::state::Claim;
    let bus = EventBus::connect(&rai_testkit::redis_url(), RETENTION)
        .await
        .unwrap();
    let ttl = Duration::from_secs(30);
    let job = JobId::new();
    assert_eq!(bus.claim(&job, "w1", ttl).await.unwrap(), Claim::Fresh);
    let mut p = bus.publisher(job).await.unwrap();
    p.publish(&[line(1), line(2)]).await.unwrap();
    // w1 dies mid-run: after its claim expires (unclaim stands in for the expiry), the job reruns elsewhere.
    bus.unclaim(&job).await.unwrap();
    assert!(matches!(
        bus.claim(&job, "w2", ttl).await.unwrap(),
        Claim::Rerun { .. }
    ));
    // w2 publishes the end and dies before marking the job done or acking its message: the redelivery is dropped.
    let mut p = bus.publisher(job).await.unwrap();
    p.send(end(0)).await.unwrap();
    bus.unclaim(&job).await.unwrap();
    assert_eq!(bus.claim(&job, "w3", ttl).await.unwrap(), Claim::Finished);
    assert_eq!(bus.claim(&job, "w3", ttl).await.unwrap(), Claim::Finished);
    // A job whose log holds the word "end" only in its output is not finished by it.
    let other = JobId::new();
    let mut p = bus.publisher(other).await.unwrap();
    p.send(EventBody::Stdout {
        data: r#"{"kind":"end"}"#.into(),
    })
    .await
    .unwrap();
    assert!(matches!(
        bus.claim(&other, "w1", ttl).await.unwrap(),
        Claim::Rerun { .. }
    ));
}

/// Publishes `total` numbered lines in batches, then the end, holding the last batch back until `faults_done` is
/// set: the faults then always land while events are being published, however fast this machine publishes.
async fn publish_lines_until(
    bus: EventBus,
    job: JobId,
    total: u64,
    batch: u64,
    faults_done: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
) {
    let mut p = bus.publisher(job).await.unwrap();
    let mut i = 0;
    while i < total {
        if i + batch >= total
            && let Some(done) = &faults_done
        {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let events: Vec<EventBody> = (i..(i + batch).min(total)).map(|n| line(n + 1)).collect();
        i += events.len() as u64;
        p.publish(&events).await.unwrap();
    }
    p.send(end(0)).await.unwrap();
}

fn check_lines(events: &[rai_common::event::Event], total: u64) {
    assert_eq!(events.len() as u64, total + 1);
    for (i, e) in events[..total as usize].iter().enumerate() {
        assert_eq!(e.body, line(i as u64 + 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_events_survive_five_killed_connections() {
    let redis = PrivateRedis::start();
    let bus = EventBus::connect(&redis.url(), RETENTION).await.unwrap();
    let job = JobId::new();
    let follower = {
        let bus = bus.clone();
        tokio::spawn(async move { collect(&bus, job, 0).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let kills_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = tokio::spawn(publish_lines_until(
        bus.clone(),
        job,
        100_000,
        50,
        Some(kills_done.clone()),
    ));
    let killer_url = redis.url();
    let killer = tokio::spawn(async move {
        let client = redis::Client::open(killer_url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut killed = 0;
        // Until five kills landed: a kill that finds the follower between connections (draining what the killed
        // connection had buffered, then re-subscribing: seconds on a machine busy with the rest of the suite) kills
        // nothing and does not count. The publisher holds its last batch until the kills are done, so waiting is safe.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while killed < 5 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let n: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("pubsub")
                .query_async(&mut conn)
                .await
                .unwrap();
            killed += n;
        }
        killed
    });
    let killed = killer.await.unwrap();
    assert!(
        !publisher.is_finished(),
        "the kills must come while events are being published"
    );
    kills_done.store(true, std::sync::atomic::Ordering::SeqCst);
    publisher.await.unwrap();
    assert!(
        killed >= 5,
        "the follower's connection was killed {killed} times"
    );
    let events = tokio::time::timeout(Duration::from_secs(120), follower)
        .await
        .unwrap()
        .unwrap();
    check_lines(&events, 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_events_survive_a_redis_restart() {
    let mut redis = PrivateRedis::start();
    let bus = EventBus::connect(&redis.url(), RETENTION).await.unwrap();
    let job = JobId::new();
    let follower = {
        let bus = bus.clone();
        tokio::spawn(async move { collect(&bus, job, 0).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let restart_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = tokio::spawn(publish_lines_until(
        bus.clone(),
        job,
        100_000,
        50,
        Some(restart_done.clone()),
    ));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !publisher.is_finished(),
        "the restart must come while events are being published"
    );
    let restarted = tokio::task::spawn_blocking(move || {
        redis.restart();
        redis
    })
    .await
    .unwrap();
    restart_done.store(true, std::sync::atomic::Ordering::SeqCst);
    publisher.await.unwrap();
    let events = tokio::time::timeout(Duration::from_secs(120), follower)
        .await
        .unwrap()
        .unwrap();
    check_lines(&events, 100_000);
    drop(restarted);
}

#[tokio::test]
async fn state_cancel_and_heartbeats() {
    let bus = EventBus::connect(&rai_testkit::redis_url(), RETENTION)
        .await
        .unwrap();
    let job = JobId::new();
    assert!(bus.state(&job).await.unwrap().is_none());
    bus.update_state(
        &job,
        &rai_common::state::JobState {
            status: Some(JobStatus::Running),
            worker: Some("w9".into()),
            exit_code: Some(3),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // An update sets only what it holds: the worker stays.
    bus.update_state(
        &job,
        &rai_common::state::JobState::with_status(JobStatus::Failed),
    )
    .await
    .unwrap();
    let s = bus.state(&job).await.unwrap().unwrap();
    assert_eq!(
        (s.status, s.worker.as_deref(), s.exit_code),
        (Some(JobStatus::Failed), Some("w9"), Some(3))
    );

    assert_eq!(bus.cancel_requested(&job).await.unwrap(), None);
    bus.request_cancel(&job, "jdoe").await.unwrap();
    assert_eq!(
        bus.cancel_requested(&job).await.unwrap().as_deref(),
        Some("jdoe")
    );

    let name = rai_testkit::unique("worker");
    let info = rai_common::state::WorkerInfo {
        name: name.clone(),
        queues: vec!["rai".into()],
        slots: 2,
        running: vec![],
        gpus: 0,
        version: rai_common::VERSION.into(),
        started_at: chrono::Utc::now(),
        jobs: vec![],
        beat_at: Some(chrono::Utc::now()),
    };
    bus.heartbeat(&info, Duration::from_millis(500))
        .await
        .unwrap();
    assert!(bus.workers().await.unwrap().iter().any(|w| w.name == name));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !bus.workers().await.unwrap().iter().any(|w| w.name == name),
        "a dead worker's heartbeat expires"
    );
}

#[tokio::test]
async fn unreachable_redis_is_reported_with_its_address() {
    let e = EventBus::connect("redis://127.0.0.1:1", RETENTION)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.starts_with("cannot reach Redis at 127.0.0.1:1"), "{e}");
}

/// Counts the clients of `redis` with `kind` (`pubsub`, `normal`).
async fn clients(url: &str, kind: &str) -> usize {
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg(kind)
        .query_async(&mut conn)
        .await
        .unwrap();
    list.lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_followers_on_one_subscription_survive_a_redis_restart() {
    use rai_backends::events::EventHub;
    let mut redis = PrivateRedis::start();
    let bus = EventBus::connect(&redis.url(), RETENTION).await.unwrap();
    let hub = EventHub::start(bus.clone());
    let jobs: Vec<JobId> = (0..4).map(|_| JobId::new()).collect();
    let mut followers = Vec::new();
    for i in 0..100 {
        let job = jobs[i % jobs.len()];
        // Some start late, from the middle of a job.
        let after = if i % 10 == 9 { 5 } else { 0 };
        let mut stream = hub.follow(job, after, FollowOptions::default());
        followers.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            while let Some(e) = stream.next().await {
                seqs.push(
                    e.expect("a follower never errors while Redis comes back")
                        .seq,
                );
            }
            (after, seqs)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One subscription for all hundred (the test's own connection is the one normal client counted apart).
    assert_eq!(clients(&redis.url(), "pubsub").await, 1);
    assert_eq!(hub.followed_jobs(), jobs.len());
    let restart_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publishers: Vec<_> = jobs
        .iter()
        .map(|&job| {
            tokio::spawn(publish_lines_until(
                bus.clone(),
                job,
                20_000,
                10,
                Some(restart_done.clone()),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        publishers.iter().any(|p| !p.is_finished()),
        "the restart must come while events are being published"
    );
    let restarted = tokio::task::spawn_blocking(move || {
        redis.restart();
        redis
    })
    .await
    .unwrap();
    restart_done.store(true, std::sync::atomic::Ordering::SeqCst);
    for p in publishers {
        p.await.unwrap();
    }
    for f in followers {
        let (after, seqs) = tokio::time::timeout(Duration::from_secs(120), f)
            .await
            .unwrap()
            .unwrap();
        let expected: Vec<u64> = (after + 1..=20_001).collect();
        assert!(
            seqs == expected,
            "a gap, a repeat or a missing end after {after}"
        );
    }
    // Everyone left: nothing is kept for the jobs.
    assert_eq!(hub.followed_jobs(), 0);
    drop(restarted);
}

/// The dashboard's index: newest first, pages that continue where the last stopped, filters by team, assignment
/// and status, and jobs whose state expired left out.
#[tokio::test]
async fn the_job_index_pages_and_filters() {
    use rai_backends::events::index::JobFilter;
    use rai_common::state::JobState;
    let redis = PrivateRedis::start();
    let bus = EventBus::connect(&redis.url(), RETENTION).await.unwrap();
    let t0 = chrono::Utc::now();
    let mut jobs = Vec::new();
    for i in 0..7 {
        let job = JobId::new();
        let team = if i % 2 == 0 { "even" } else { "odd" };
        let status = if i == 3 {
            JobStatus::Failed
        } else {
            JobStatus::Succeeded
        };
        let assignment = (i >= 5).then_some("m1");
        let state = JobState {
            status: Some(status),
            user: Some(format!("u{i}")),
            team: Some(team.into()),
            assignment: assignment.map(str::to_string),
            ..JobState::default()
        };
        if i != 4 {
            // Job 4's state has expired: listed nowhere.
            bus.update_state(&job, &state).await.unwrap();
        }
        bus.index_job(
            &job,
            t0 + chrono::Duration::seconds(i),
            &format!("u{i}"),
            team,
            assignment,
        )
        .await
        .unwrap();
        jobs.push(job);
    }
    let ids = |page: &rai_backends::events::index::JobPage| {
        page.jobs.iter().map(|(j, _)| *j).collect::<Vec<_>>()
    };
    let all = JobFilter::default();
    let first = bus.list_jobs(&all, 0, 3).await.unwrap();
    assert_eq!(ids(&first), [jobs[6], jobs[5], jobs[3]]);
    let second = bus.list_jobs(&all, first.next.unwrap(), 3).await.unwrap();
    assert_eq!(ids(&second), [jobs[2], jobs[1], jobs[0]]);
    let rest = bus.list_jobs(&all, second.next.unwrap(), 3).await.unwrap();
    assert!(rest.jobs.is_empty() && rest.next.is_none());

    let even_succeeded = JobFilter {
        team: Some("even".into()),
        status: Some(JobStatus::Succeeded),
        ..JobFilter::default()
    };
    assert_eq!(
        ids(&bus.list_jobs(&even_succeeded, 0, 10).await.unwrap()),
        [jobs[6], jobs[2], jobs[0]]
    );
    let failed = JobFilter {
        status: Some(JobStatus::Failed),
        ..JobFilter::default()
    };
    assert_eq!(
        ids(&bus.list_jobs(&failed, 0, 10).await.unwrap()),
        [jobs[3]]
    );
    let m1_odd = JobFilter {
        assignment: Some("m1".into()),
        team: Some("odd".into()),
        ..JobFilter::default()
    };
    assert_eq!(
        ids(&bus.list_jobs(&m1_odd, 0, 10).await.unwrap()),
        [jobs[5]]
    );
    let user = JobFilter {
        user: Some("u1".into()),
        ..JobFilter::default()
    };
    assert_eq!(ids(&bus.list_jobs(&user, 0, 10).await.unwrap()), [jobs[1]]);
}
