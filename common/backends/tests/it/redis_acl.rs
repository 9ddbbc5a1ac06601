//! The Redis ACL of deploy/redis/users.acl, loaded into a Redis of its own: the gateway user can do what a gateway
//! does (bind owners, remember nonces, follow a job, cancel, queue) and nothing more; the worker user can do its
//! work; nobody else (students included) can connect.

use std::time::Duration;

use rai_backends::events::{EventBus, FollowOptions};
use rai_backends::queue::{JobQueue, RedisQueue};
use rai_common::JobId;
use rai_common::event::{EventBody, JobStatus};
use rai_testkit::PrivateRedis;

fn acl_redis() -> PrivateRedis {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/redis/users.acl"
    ))
    .unwrap();
    let text = text
        .replace(">CHANGE_ME_RAID_PASSWORD", ">raid-pw")
        .replace(">CHANGE_ME_GATEWAY_PASSWORD", ">gateway-pw");
    let path = std::env::temp_dir().join(format!("{}.acl", rai_testkit::unique("rai-acl")));
    std::fs::write(&path, text).unwrap();
    PrivateRedis::start_with(&["--aclfile", path.to_str().unwrap()])
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn refused(conn: &mut redis::aio::MultiplexedConnection, cmd: &mut redis::Cmd) -> String {
    match cmd.query_async::<redis::Value>(conn).await {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_user_does_a_gateways_work_and_nothing_more() {
    let redis = acl_redis();
    let raid_url = format!("redis://raid:raid-pw@127.0.0.1:{}", redis.port);
    let client_url = format!("redis://gateway:gateway-pw@127.0.0.1:{}", redis.port);

    // The worker side: create the queue group and publish a job's events.
    let worker_q = RedisQueue::connect(&raid_url, "rai", Duration::from_secs(30), 3)
        .await
        .unwrap()
        .with_borrow_quiet(Duration::from_secs(2));
    let worker_bus = EventBus::connect(&raid_url, Duration::from_secs(600))
        .await
        .unwrap();
    let job = JobId::new();
    let mut publisher = worker_bus.publisher(job).await.unwrap();
    publisher
        .send(EventBody::Stdout {
            data: "hello\n".into(),
        })
        .await
        .unwrap();
    worker_bus
        .update_state(
            &job,
            &rai_common::state::JobState::with_status(rai_common::event::JobStatus::Running),
        )
        .await
        .unwrap();

    // The gateway binds an id, declares its upload, spends a nonce, counts a submit, marks it accepted, follows,
    // reads state, asks for a cancel, queues.
    let client_bus = EventBus::connect(&client_url, Duration::from_secs(600))
        .await
        .unwrap();
    let other = JobId::new();
    let ttl = Duration::from_secs(60);
    assert_eq!(
        client_bus.bind_owner(&other, "jdoe", ttl).await.unwrap(),
        rai_backends::events::Binding::New
    );
    assert_eq!(
        client_bus.bind_owner(&other, "mallory", ttl).await.unwrap(),
        rai_backends::events::Binding::Taken
    );
    client_bus
        .declare_upload(&other, 10, "ab", ttl)
        .await
        .unwrap();
    assert!(
        client_bus
            .first_use_of_nonce("jdoe", "n1", ttl)
            .await
            .unwrap()
    );
    assert!(
        !client_bus
            .first_use_of_nonce("jdoe", "n1", ttl)
            .await
            .unwrap()
    );
    assert_eq!(client_bus.count_submit("jdoe", 1).await.unwrap(), 1);
    assert!(client_bus.mark_accepted(&other, ttl).await.unwrap());
    client_bus
        .update_state(
            &other,
            &rai_common::state::JobState::with_status(JobStatus::Queued),
        )
        .await
        .unwrap();
    let mut stream = client_bus.follow(job, 0, FollowOptions::default());
    assert_eq!(stream.next().await.unwrap().unwrap().seq, 1);
    publisher
        .send(EventBody::End {
            status: JobStatus::Succeeded,
            exit_code: Some(0),
            reason: None,
        })
        .await
        .unwrap();
    assert!(stream.next().await.unwrap().unwrap().is_end());
    assert_eq!(
        client_bus.state(&job).await.unwrap().unwrap().status,
        Some(JobStatus::Running)
    );
    client_bus.request_cancel(&job, "jdoe").await.unwrap();
    assert_eq!(
        worker_bus.cancel_requested(&job).await.unwrap().as_deref(),
        Some("jdoe")
    );
    let client_q = RedisQueue::connect(&client_url, "rai", Duration::from_secs(30), 3)
        .await
        .unwrap();
    client_q.send("{\"signed\":\"job\"}").await.unwrap();
    let leased = worker_q.receive(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(leased[0].body, "{\"signed\":\"job\"}");
    worker_q.ack(&leased[0]).await.unwrap();
    // Queued in the user's group: the second waits in its holding list until the first is acked.
    client_q.send_in_group("first", "jdoe").await.unwrap();
    assert_eq!(
        client_q.send_in_group("second", "jdoe").await.unwrap(),
        "held"
    );
    let first = worker_q.receive(5, Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        first.iter().map(|l| l.body.as_str()).collect::<Vec<_>>(),
        ["first"]
    );
    worker_q.ack(&first[0]).await.unwrap();
    let second = worker_q.receive(5, Duration::from_secs(5)).await.unwrap();
    assert_eq!(second[0].body, "second");
    // Borrowing (a free slot, nobody else waiting or sending lately) reads Redis's clock: `time` in both users.
    client_q.send_in_group("third", "jdoe").await.unwrap();
    let third = worker_q.receive(5, Duration::from_secs(5)).await.unwrap();
    assert_eq!(third[0].body, "third");
    for l in [&second[0], &third[0]] {
        worker_q.ack(l).await.unwrap();
    }

    // The dashboard's job index and sessions.
    client_bus
        .update_state(
            &other,
            &rai_common::state::JobState {
                team: Some("team1".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    client_bus
        .index_job(&other, chrono::Utc::now(), "jdoe", "team1", Some("m1"))
        .await
        .unwrap();
    let filter = rai_backends::events::index::JobFilter {
        team: Some("team1".into()),
        status: Some(JobStatus::Queued),
        ..Default::default()
    };
    let page = client_bus.list_jobs(&filter, 0, 10).await.unwrap();
    assert_eq!(page.jobs.len(), 1);
    let (token, csrf) = client_bus.open_session("ta1", ttl).await.unwrap();
    assert_eq!(
        client_bus.session(&token).await.unwrap(),
        Some(("ta1".to_string(), csrf))
    );
    assert!(client_bus.use_link_once("nonce-1", ttl).await.unwrap());
    assert!(!client_bus.use_link_once("nonce-1", ttl).await.unwrap());

    // Redis's memory and its job logs, for /metrics.
    let memory = client_bus.memory_report(3).await.unwrap();
    assert!(memory.used_bytes > 0 && memory.live_logs >= 1, "{memory:?}");

    // Staff dropping a dead letter: the gateway ends the job, marks it done and takes the message out.
    let dropped = JobId::new();
    client_bus.mark_done(&dropped).await.unwrap();
    let mut ender = client_bus.publisher(dropped).await.unwrap();
    ender
        .publish(&[rai_common::event::EventBody::End {
            status: JobStatus::Error,
            exit_code: None,
            reason: Some("dropped by ta1 from the dead letters".into()),
        }])
        .await
        .unwrap();
    assert!(
        !client_q
            .remove_dead_letter("no-such-message")
            .await
            .unwrap()
    );

    // And nothing else.
    let mut c = raw(&client_url).await;
    for (what, mut cmd) in [
        // It publishes on a job's own events channel only (a dropped dead letter's end, docs/admin.md).
        (
            "PUBLISH on another channel",
            redis::cmd("PUBLISH")
                .arg("rai:workers")
                .arg("{\"seq\":99}")
                .clone(),
        ),
        ("read another key", redis::cmd("GET").arg("secret").clone()),
        (
            "lease jobs",
            redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("raid")
                .arg("me")
                .arg("STREAMS")
                .arg("rai:queue:rai")
                .arg(">")
                .clone(),
        ),
        ("FLUSHALL", redis::cmd("FLUSHALL").clone()),
        (
            "CONFIG GET",
            redis::cmd("CONFIG").arg("GET").arg("*").clone(),
        ),
        (
            "a script reaching past the ACL",
            redis::cmd("EVAL")
                .arg("return redis.call('GET', 'secret')")
                .arg(0)
                .clone(),
        ),
        (
            "a script leasing jobs",
            redis::cmd("EVAL")
                .arg("return redis.call('XREADGROUP', 'GROUP', 'raid', 'me', 'STREAMS', KEYS[1], '>')")
                .arg(1)
                .arg("rai:queue:rai")
                .clone(),
        ),
    ] {
        let e = refused(&mut c, &mut cmd).await;
        assert!(
            e.contains("NOPERM") || e.contains("no permissions") || e.contains("can't access") || e.contains("can't run"),
            "{what}: {e}"
        );
    }

    // No anonymous access at all.
    let mut anon = raw(&format!("redis://127.0.0.1:{}", redis.port)).await;
    let e = refused(&mut anon, &mut redis::cmd("PING")).await;
    assert!(
        e.contains("NOAUTH") || e.contains("Authentication required"),
        "{e}"
    );
}
