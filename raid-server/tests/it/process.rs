//! The `raid` binary as systemd runs it: a process that drains on SIGTERM, handing its job back, and a second
//! process that finishes the job.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rai_backends::events::EventBus;
use rai_backends::queue::{JobQueue, RedisQueue};
use rai_backends::store::FsStore;
use rai_common::account::generate_signing_key;
use rai_common::event::{EventBody, JobStatus};
use rai_testkit::jobs::{end, text};

fn write_config(
    config: &rai_common::Config,
    dir: &std::path::Path,
    name: &str,
) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.yml"));
    std::fs::write(
        &path,
        format!(
            "events:\n  redis_url: {}\nqueue:\n  name: {q}\n  lease: 6s\nstore:\n  path: {}\nraid:\n  name: {name}\n  queues: [{q}]\n  images: [\"rai-test/*\"]\n  gpus: []\n  concurrency: 1\n  shutdown_grace: 1s\n  registry: {}\n  work_dir: {}\n",
            config.events.redis_url,
            config.store.path.display(),
            config.raid.registry.display(),
            config.raid.work_dir.display(),
            q = config.queue.name,
        ),
    )
    .unwrap();
    path
}

fn raid(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_raid"))
        .args(["-c", config.to_str().unwrap()])
        .env_remove("RAI_SECRET")
        .env("HOME", config.parent().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_process_and_a_second_process_finishes_the_job() {
    let mut dirs = Vec::new();
    let config = rai_testkit::jobs::worker_config(&mut dirs);
    let key = generate_signing_key();
    rai_testkit::jobs::write_registry(&config, &[("jdoe", &key, false)]);
    let dir = dirs[0].path().to_path_buf();
    let store = FsStore::open(&config.store.path).unwrap();
    let queue = RedisQueue::connect(
        &config.events.redis_url,
        &config.queue.name,
        Duration::from_secs(6),
        5,
    )
    .await
    .unwrap();
    let bus = EventBus::connect(&config.events.redis_url, Duration::from_secs(600))
        .await
        .unwrap();

    let mut first = raid(&write_config(&config, &dir, &rai_testkit::unique("p1")));
    let (wire, job) = rai_testkit::jobs::prepare_job(
        &store,
        &config.queue.name,
        &["echo begin; sleep 5; echo end"],
        "time: 60s",
        &[],
        &key,
        "jdoe",
    )
    .await;
    queue.send(&rai_testkit::jobs::attest(&wire)).await.unwrap();
    let follower = tokio::spawn({
        let bus = bus.clone();
        async move { rai_testkit::jobs::follow(&bus, job, Duration::from_secs(120)).await }
    });
    rai_testkit::jobs::wait_running(&bus, job).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        Command::new("kill")
            .args(["-TERM", &first.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status =
        tokio::task::spawn_blocking(move || wait_exit(&mut first, Duration::from_secs(30)))
            .await
            .unwrap();
    assert_eq!(
        status.map(|s| s.success()),
        Some(true),
        "raid exits cleanly after draining"
    );
    assert_eq!(
        bus.state(&job).await.unwrap().unwrap().status,
        Some(JobStatus::Requeued)
    );

    let mut second = raid(&write_config(&config, &dir, &rai_testkit::unique("p2")));
    let events = follower.await.unwrap();
    assert!(events.iter().any(|e| matches!(
        &e.body,
        EventBody::Status {
            status: JobStatus::Requeued,
            ..
        }
    )));
    assert!(
        text(&events, "stdout").ends_with("begin\nend\n"),
        "{events:#?}"
    );
    assert_eq!(end(&events).0, "succeeded");
    let _ = second.kill();
    let _ = second.wait();
}
