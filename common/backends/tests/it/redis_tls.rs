//! Redis as a course deploys it across a network (docs/admin.md, "Redis over TLS"): TLS only, client certificates
//! required, deploy/redis's ACL users. What connects, what is refused and why, and a restart that loses nothing.

use std::time::Duration;

use rai_backends::events::EventBus;
use rai_backends::queue::{JobQueue, RedisQueue};
use rai_backends::redis_link::RedisTarget;
use rai_testkit::PrivateRedis;
use rai_testkit::tls::TestCa;

async fn ping(target: &RedisTarget) -> Result<String, redis::RedisError> {
    let mut conn = target.client()?.get_multiplexed_async_connection().await?;
    redis::cmd("PING").query_async(&mut conn).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_redis_takes_only_tls_with_a_certificate_and_a_user_and_keeps_its_data_through_a_restart()
 {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let mut redis = PrivateRedis::start_tls(&ca);
    let raid = redis.target_for("raid");
    assert!(raid.is_tls());
    assert_eq!(raid.user(), "raid");
    assert_eq!(ping(&raid).await.unwrap(), "PONG");

    // Plain text on the TLS port: no answer a client can use.
    let plain = RedisTarget::from(raid.url().replacen("rediss://", "redis://", 1).as_str());
    assert!(
        tokio::time::timeout(Duration::from_secs(10), ping(&plain))
            .await
            .map_or(true, |r| r.is_err()),
        "a plain-text client got an answer"
    );
    // A CA or client certificate with a plain URL is a mistake in the config, said so.
    let mixed = RedisTarget::new(plain.url(), Some(&ca.cert), None, None);
    let e = ping(&mixed).await.unwrap_err().to_string();
    assert!(e.contains("not rediss://"), "{e}");
    // Without a client certificate (mutual TLS): refused.
    let no_cert = RedisTarget::new(raid.url(), Some(&ca.cert), None, None);
    assert!(ping(&no_cert).await.is_err());
    // Trusting another CA: Redis's certificate does not verify.
    let other_dir = tempfile::tempdir().unwrap();
    let other = TestCa::new(other_dir.path());
    let (_, cert, key) = redis.tls_files().unwrap();
    let wrong_ca = RedisTarget::new(raid.url(), Some(&other.cert), Some(&cert), Some(&key));
    assert!(ping(&wrong_ca).await.is_err());
    // The default user is off; a wrong password is refused.
    let anonymous = RedisTarget::new(
        &format!("rediss://127.0.0.1:{}", redis.port),
        Some(&ca.cert),
        Some(&cert),
        Some(&key),
    );
    let e = ping(&anonymous).await.unwrap_err().to_string();
    assert!(
        e.contains("NOAUTH") || e.contains("WRONGPASS") || e.contains("Authentication"),
        "{e}"
    );
    let wrong = RedisTarget::new(
        &format!("rediss://raid:nope@127.0.0.1:{}", redis.port),
        Some(&ca.cert),
        Some(&cert),
        Some(&key),
    );
    assert!(ping(&wrong).await.is_err());

    // The worker's user queues and reads events; the data survives a restart.
    let queue = RedisQueue::connect(&raid, "rai", Duration::from_secs(30), 3)
        .await
        .unwrap();
    queue.send("a job").await.unwrap();
    let bus = EventBus::connect(&redis.target_for("gateway"), Duration::from_secs(60))
        .await
        .unwrap();
    let job = rai_common::JobId::new();
    assert!(
        bus.mark_accepted(&job, Duration::from_secs(60))
            .await
            .unwrap()
    );
    // A job's events (a script, whose effects the append-only file keeps as a transaction) and its state.
    let worker_bus = EventBus::connect(&raid, Duration::from_secs(60))
        .await
        .unwrap();
    let mut publisher = worker_bus.publisher(job).await.unwrap();
    publisher
        .send(rai_common::event::EventBody::Stdout {
            data: "before the restart\n".into(),
        })
        .await
        .unwrap();
    redis.restart();
    assert_eq!(ping(&raid).await.unwrap(), "PONG");
    let leased = queue.receive(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        leased.iter().map(|l| l.body.as_str()).collect::<Vec<_>>(),
        ["a job"],
        "the queued job survived the restart"
    );
    let bus = EventBus::connect(&redis.target_for("gateway"), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        !bus.mark_accepted(&job, Duration::from_secs(60))
            .await
            .unwrap(),
        "the acceptance was lost in the restart"
    );
    // Redis 7.0 replays each transaction of its append-only file as its default user: without the permissions
    // deploy/redis gives that (disabled) user, every event written before a restart was silently dropped.
    let history = bus.history(&job, 0, 10).await.unwrap();
    assert_eq!(
        history.len(),
        1,
        "the job's events were lost in the restart"
    );
}
