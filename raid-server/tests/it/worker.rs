//! The worker as a whole: refusing bad messages, slots, fork bombs, and handing jobs back on shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::harness::Harness;
use rai_common::account::generate_signing_key;
use rai_common::event::{EventBody, JobStatus};
use rai_common::job::SignedJob;
use rai_testkit::jobs::{containers_of, end, text};

const LIMIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_are_refused_each_with_its_reason_and_the_worker_keeps_serving() {
    let mut dirs = Vec::new();
    let config = rai_testkit::jobs::worker_config(&mut dirs);
    let (key, revoked_key, stranger) = (
        generate_signing_key(),
        generate_signing_key(),
        generate_signing_key(),
    );
    rai_testkit::jobs::write_registry(
        &config,
        &[("jdoe", &key, false), ("gone", &revoked_key, true)],
    );
    let h = Harness::start_with(config, key.clone(), dirs).await;

    // Forged: jdoe's job signed with a stranger's key.
    let (forged, forged_id) = h
        .prepare(&["echo no"], "time: 10s", &[], &stranger, "jdoe")
        .await;
    // Unsigned: the signature stripped.
    let (good, unsigned_id) = h
        .prepare(&["echo no"], "time: 10s", &[], &key, "jdoe")
        .await;
    let mut env: SignedJob = serde_json::from_str(&good).unwrap();
    env.sig = String::new();
    let unsigned = String::from_utf8(env.to_bytes()).unwrap();
    // A revoked user's and an unknown user's jobs.
    let (revoked, revoked_id) = h
        .prepare(&["echo no"], "time: 10s", &[], &revoked_key, "gone")
        .await;
    let (unknown, unknown_id) = h
        .prepare(&["echo no"], "time: 10s", &[], &stranger, "nobody")
        .await;
    for wire in [&forged, &unsigned, &revoked, &unknown] {
        h.ctx.queues[0]
            .send(&rai_testkit::jobs::attest(wire))
            .await
            .unwrap();
    }
    h.ctx.queues[0].send("this is not a job").await.unwrap();
    h.ctx.queues[0]
        .send("{\"v\":1,\"payload\":\"{}\",\"sig\":\"\"}")
        .await
        .unwrap();

    for (id, reason) in [
        (
            forged_id,
            "bad signature: the job was not signed by user \"jdoe\"'s key",
        ),
        (unsigned_id, "bad signature"),
        (revoked_id, "user \"gone\" was revoked"),
        (unknown_id, "unknown user \"nobody\""),
    ] {
        let events = h.events(id, LIMIT).await;
        assert_eq!(
            events.len(),
            1,
            "a refused job gets only its end: {events:?}"
        );
        let (status, _, got) = end(&events);
        assert_eq!(status, "rejected");
        assert!(
            got.as_deref().unwrap_or("").contains(reason),
            "{got:?} lacks {reason}"
        );
    }

    // The worker still serves, and a replay of a finished job is dropped.
    let (wire, job) = h
        .prepare(&["echo fine"], "time: 10s", &[], &key, "jdoe")
        .await;
    h.ctx.queues[0]
        .send(&rai_testkit::jobs::attest(&wire))
        .await
        .unwrap();
    let events = h.events(job, LIMIT).await;
    assert_eq!(end(&events).0, "succeeded");
    h.ctx.queues[0]
        .send(&rai_testkit::jobs::attest(&wire))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        h.ctx.bus.history(&job, 0, 1000).await.unwrap().len(),
        events.len(),
        "a replay ran again"
    );
    // Every refused message was taken off the queue, the two that name no job included.
    assert_eq!(
        h.ctx.queues[0].depth().await.unwrap(),
        rai_backends::queue::Depth::default(),
        "refused messages stay on the queue"
    );
    h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_slots_twenty_jobs_never_more_than_four_running_and_four_ready() {
    let h = Harness::start(|c| c.raid.concurrency = Some(4)).await;
    let worker = h.ctx.name.clone();
    let (most_containers, most_listed) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let watcher = {
        let (most_containers, most_listed) = (most_containers.clone(), most_listed.clone());
        let (ctx, worker) = (h.ctx.clone(), worker.clone());
        tokio::spawn(async move {
            loop {
                let listed = ctx.running_jobs.lock().unwrap().len();
                most_listed.fetch_max(listed, Ordering::Relaxed);
                let n = tokio::task::spawn_blocking({
                    let w = worker.clone();
                    move || containers_of(&format!("rai.worker={w}"))
                })
                .await
                .unwrap();
                most_containers.fetch_max(n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut jobs = Vec::new();
    for i in 0..20 {
        jobs.push(
            h.submit(
                &[&format!("echo job {i}; sleep 1; echo done {i}")],
                "time: 30s",
                &[],
            )
            .await,
        );
    }
    // Each job's commands ran from its first output to its last: never more than four at once.
    let mut spans = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let events = h.events(*job, Duration::from_secs(180)).await;
        assert_eq!(text(&events, "stdout"), format!("job {i}\ndone {i}\n"));
        assert_eq!(end(&events).0, "succeeded");
        let out: Vec<_> = events
            .iter()
            .filter(|e| matches!(e.body, EventBody::Stdout { .. }))
            .map(|e| e.ts)
            .collect();
        spans.push((out[0], *out.last().unwrap()));
    }
    watcher.abort();
    let at_once = spans
        .iter()
        .map(|(from, _)| spans.iter().filter(|(a, b)| a <= from && from < b).count())
        .max()
        .unwrap();
    assert!(
        (1..=4).contains(&at_once),
        "{at_once} jobs ran at once with 4 slots"
    );
    let listed = most_listed.load(Ordering::Relaxed);
    assert!(
        (1..=4).contains(&listed),
        "{listed} jobs listed running with 4 slots"
    );
    // Four running, four ready (their containers started idle), and four whose containers are being removed.
    let containers = most_containers.load(Ordering::Relaxed);
    assert!(
        (1..=12).contains(&containers),
        "{containers} containers at once with 4 slots"
    );
    h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_burns_out_and_the_worker_stays_healthy() {
    let h = Harness::start(|c| c.raid.limits.pids = 64).await;
    let bomb = h
        .submit(
            &["bomb() { bomb | bomb & }; bomb; sleep 3; echo host-alive"],
            "time: 8s",
            &[],
        )
        .await;
    let events = h.events(bomb, LIMIT).await;
    let status = end(&events).0;
    assert!(
        status == "timed_out" || status == "succeeded" || status == "failed",
        "{status}"
    );
    let after = h.submit(&["echo still serving"], "time: 10s", &[]).await;
    let events = h.events(after, LIMIT).await;
    assert_eq!(
        (text(&events, "stdout").as_str(), end(&events).0.as_str()),
        ("still serving\n", "succeeded")
    );
    h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_a_long_job_back_and_another_worker_completes_it() {
    let mut dirs = Vec::new();
    let mut config = rai_testkit::jobs::worker_config(&mut dirs);
    config.raid.shutdown_grace = rai_common::units::Span::from_secs(1);
    let key = generate_signing_key();
    rai_testkit::jobs::write_registry(&config, &[("jdoe", &key, false)]);
    let first = Harness::start_with(config.clone(), key.clone(), Vec::new()).await;
    let job = first
        .submit(
            &["echo run on $(hostname); sleep 4; echo finished"],
            "time: 60s",
            &[],
        )
        .await;
    let bus = first.ctx.bus.clone();
    let follower = tokio::spawn({
        let bus = bus.clone();
        async move { rai_testkit::jobs::follow(&bus, job, Duration::from_secs(120)).await }
    });
    rai_testkit::jobs::wait_running(&bus, job).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // SIGTERM: drain with a 1 s grace, shorter than the job.
    first.shutdown.drain();
    tokio::time::timeout(Duration::from_secs(30), first.serving)
        .await
        .unwrap()
        .unwrap();

    // A second worker on the same queue picks the job up and runs it to the end.
    let mut second_config = config.clone();
    second_config.raid.name = Some(rai_testkit::unique("w2"));
    let second = Harness::start_with(second_config, key, dirs).await;
    let events = follower.await.unwrap();
    assert!(
        events.iter().any(|e| matches!(
            &e.body,
            EventBody::Status {
                status: JobStatus::Requeued,
                ..
            }
        )),
        "the client sees the job requeued: {events:#?}"
    );
    assert!(text(&events, "stdout").ends_with("finished\n"));
    assert_eq!(end(&events).0, "succeeded");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e.seq,
            i as u64 + 1,
            "no gap or duplicate across the two runs"
        );
    }
    second.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_serves_several_queues() {
    let second = rai_testkit::unique("q2");
    let h = Harness::start(|c| c.raid.queues.push(second.clone())).await;
    assert_eq!(h.ctx.queues.len(), 2);
    let (wire, job) = h
        .prepare(
            &["echo from the second queue"],
            "time: 10s",
            &[],
            &h.key.clone(),
            "jdoe",
        )
        .await;
    h.ctx.queues[1]
        .send(&rai_testkit::jobs::attest(&wire))
        .await
        .unwrap();
    let events = h.events(job, LIMIT).await;
    assert_eq!(text(&events, "stdout"), "from the second queue\n");
    assert_eq!(end(&events).0, "succeeded");
    h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cannot_run_another_students_upload() {
    let mut dirs = Vec::new();
    let config = rai_testkit::jobs::worker_config(&mut dirs);
    let (victim, thief) = (generate_signing_key(), generate_signing_key());
    rai_testkit::jobs::write_registry(
        &config,
        &[("victim", &victim, false), ("thief", &thief, false)],
    );
    let h = Harness::start_with(config, victim.clone(), dirs).await;
    let (victim_wire, _) = h
        .prepare(
            &["cat /src/secret.txt"],
            "time: 10s",
            &[("secret.txt", "answers")],
            &victim,
            "victim",
        )
        .await;
    let victim_job: SignedJob = serde_json::from_str(&victim_wire).unwrap();
    let victim_req: rai_common::JobRequest = serde_json::from_str(&victim_job.payload).unwrap();
    // The thief signs a job of its own that points at the victim's upload.
    let (thief_wire, thief_id) = h
        .prepare(&["cat /src/secret.txt"], "time: 10s", &[], &thief, "thief")
        .await;
    let thief_env: SignedJob = serde_json::from_str(&thief_wire).unwrap();
    let mut req: rai_common::JobRequest = serde_json::from_str(&thief_env.payload).unwrap();
    req.input = victim_req.input.clone();
    h.ctx.queues[0]
        .send(&rai_testkit::jobs::attest(
            &String::from_utf8(req.sign(&thief).to_bytes()).unwrap(),
        ))
        .await
        .unwrap();
    let events = h.events(thief_id, LIMIT).await;
    let (status, _, reason) = end(&events);
    assert_eq!(status, "rejected");
    assert!(reason.unwrap().contains("which is not its own"));
    assert!(!text(&events, "stdout").contains("answers"));
    h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stray_sweep_removes_a_workers_containers_that_no_job_holds_and_only_those() {
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let worker = rai_testkit::unique("sweep");
    let (held, stray) = (rai_testkit::unique("held"), rai_testkit::unique("stray"));
    for job in [&held, &stray] {
        rai_testkit::jobs::leftover_container(job, &worker);
    }
    let label = format!("rai.worker={worker}");
    let removed = raid::sandbox::remove_strays(&docker, &label, |job| job == held).await;
    assert_eq!(removed, 1);
    assert_eq!(
        containers_of(&format!("rai.job={stray}")),
        0,
        "the stray is still there"
    );
    assert_eq!(
        containers_of(&format!("rai.job={held}")),
        1,
        "the held job's container was removed"
    );
    raid::sandbox::remove_container(&docker, &format!("rai-job-{held}")).await;
}
