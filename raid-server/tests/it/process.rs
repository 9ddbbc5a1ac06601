//! The `raid` binary as systemd runs it: a process that drains on SIGTERM, handing its job back, and a second
//! process that finishes the job.
//!
//! Over 450 lines: the drain, hand-back and restart tests share one process harness.

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
            "events:\n  redis_url: {}\nqueue:\n  name: {q}\n  lease: 6s\nstore:\n  path: {}\nraid:\n  name: {name}\n  gateway_keys: [{keys}]\n  queues: [{q}]\n  images: [\"rai-test/*\"]\n  gpus: []\n  concurrency: 1\n  shutdown_grace: 1s\n  registry: {}\n  work_dir: {}\n",
            config.events.redis_url,
            config.store.path.display(),
            config.raid.registry.display(),
            config.raid.work_dir.display(),
            q = config.queue.name,
            keys = config.raid.gateway_keys.join(", "),
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

/// The embedded default: one `raid` process with `gateway.listen` serves the gateway and runs the jobs it queues,
/// trusting its own gateway's key without listing it; SIGTERM stops both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_raid_process_with_an_embedded_gateway_takes_a_job_from_rai_to_its_end() {
    use std::sync::Arc;
    let mut dirs = Vec::new();
    let mut config = rai_testkit::jobs::worker_config(&mut dirs);
    config.raid.gateway_keys.clear();
    let key = generate_signing_key();
    rai_testkit::jobs::write_registry(&config, &[("jdoe", &key, false)]);
    let dir = dirs[0].path().to_path_buf();
    let gateway_key = dir.join("gateway.key");
    std::fs::write(
        &gateway_key,
        rai_common::account::gateway_key_file(&generate_signing_key()),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = write_config(&config, &dir, &rai_testkit::unique("embedded"));
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "gateway:\n  listen: 127.0.0.1:{port}\n  attestation_key: {}\n  queues: [{}]\n",
        gateway_key.display(),
        config.queue.name
    ));
    std::fs::write(&path, text).unwrap();
    let mut process = raid(&path);

    let mut client_config = rai_common::Config::defaults().client;
    client_config.gateway = Some(format!("http://127.0.0.1:{port}"));
    client_config.retry_for = rai_common::units::Span::from_secs(30);
    let client = rai_client::Client::new(&client_config, "jdoe", key.clone()).unwrap();
    // Packed and uploaded as `rai submit` does, then submitted and followed through the gateway.
    let project = tempfile::tempdir().unwrap();
    let build = rai_testkit::jobs::build_file(&["echo embedded"], "time: 30s");
    std::fs::write(project.path().join("rai_build.yml"), &build).unwrap();
    let bytes = rai_testkit::jobs::pack_dir(project.path());
    let file = project.path().join("upload.tar.zst");
    std::fs::write(&file, &bytes).unwrap();
    let sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let job = rai_common::JobId::new();
    let archive = rai_client::client::upload::Archive {
        path: &file,
        size: bytes.len() as u64,
        sha256: sha256.clone(),
    };
    client
        .upload(&job, &archive, &[], Arc::new(|_| {}))
        .await
        .unwrap();
    let request = rai_common::JobRequest {
        id: job,
        user: "jdoe".into(),
        team: "t".into(),
        queue: config.queue.name.clone(),
        created_at: chrono::Utc::now(),
        client_version: rai_common::VERSION.into(),
        build: rai_common::BuildSpec::parse(&build, "rai_build.yml").unwrap(),
        input: rai_common::job::InputObject {
            key: rai_common::objects::upload_key("jdoe", &job),
            size: bytes.len() as u64,
            sha256,
        },
        assignment: None,
        sweep: None,
    };
    client.submit(&request.sign(&key)).await.unwrap();
    let mut events = client.follow(job, 0);
    let mut out = String::new();
    let mut ended = None;
    while let Some(e) = tokio::time::timeout(Duration::from_secs(120), events.next())
        .await
        .unwrap()
    {
        match e.unwrap().body {
            EventBody::Stdout { data } => out.push_str(&data),
            EventBody::End { status, .. } => ended = Some(status),
            _ => {}
        }
    }
    assert_eq!(
        (out.as_str(), ended),
        ("embedded\n", Some(JobStatus::Succeeded))
    );
    assert!(
        Command::new("kill")
            .args(["-TERM", &process.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        wait_exit(&mut process, Duration::from_secs(30)).is_some_and(|s| s.success()),
        "raid exits cleanly on SIGTERM, gateway and all"
    );
}

/// Each instance of the test's group: its lifecycle state, and whether it is protected from scale-in.
type Instances = std::collections::BTreeMap<String, (String, bool)>;

/// raid in an EC2 Auto Scaling group (moto's Auto Scaling API, with the termination hook deploy/local/moto_server.py
/// adds): a busy worker's instance is protected from scale-in and an idle one is not; scaling in takes the idle one,
/// whose raid drains and completes the hook; the busy one finishes its job, loses its protection, and drains in turn
/// when the group takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_an_auto_scaling_group_busy_workers_are_protected_and_idle_ones_drain_before_termination()
 {
    use aws_sdk_autoscaling::Client;
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

    let aws = rai_testkit::aws_config();
    let asg = Client::new(&rai_backends::aws::sdk_config(&aws).await);
    let group = rai_testkit::unique("workers");
    asg.create_launch_configuration()
        .launch_configuration_name(&group)
        .image_id("ami-12c6146b")
        .instance_type("g4dn.xlarge")
        .send()
        .await
        .unwrap();
    asg.create_auto_scaling_group()
        .auto_scaling_group_name(&group)
        .launch_configuration_name(&group)
        .min_size(0)
        .max_size(4)
        .desired_capacity(2)
        .availability_zones("us-east-1a")
        .send()
        .await
        .unwrap();
    asg.put_lifecycle_hook()
        .auto_scaling_group_name(&group)
        .lifecycle_hook_name("drain")
        .lifecycle_transition("autoscaling:EC2_INSTANCE_TERMINATING")
        .heartbeat_timeout(60)
        .default_result("CONTINUE")
        .send()
        .await
        .unwrap();
    let instances = |asg: Client| async move {
        asg.describe_auto_scaling_instances()
            .send()
            .await
            .unwrap()
            .auto_scaling_instances()
            .iter()
            .map(|i| {
                (
                    i.instance_id().unwrap().to_owned(),
                    (
                        i.lifecycle_state().unwrap().to_owned(),
                        i.protected_from_scale_in().unwrap(),
                    ),
                )
            })
            .collect::<Instances>()
    };
    let ids: Vec<String> = instances(asg.clone()).await.into_keys().collect();
    let ids: Vec<String> = {
        let group_instances = asg
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&group)
            .send()
            .await
            .unwrap();
        let mine: Vec<String> = group_instances.auto_scaling_groups()[0]
            .instances()
            .iter()
            .map(|i| i.instance_id().unwrap().to_owned())
            .collect();
        ids.into_iter().filter(|i| mine.contains(i)).collect()
    };
    assert_eq!(ids.len(), 2);

    // One raid per instance; the worker name says which instance it runs on.
    let mut workers = Vec::new();
    for id in &ids {
        let path = write_config(&config, &dir, id);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&format!(
            "  fleet:\n    group: {group}\n    instance_id: {id}\n    check_every: 1s\naws:\n  region: us-east-1\n  endpoint_url: {}\n  access_key_id: testing\n  secret_access_key: testing\n",
            aws.endpoint_url.as_deref().unwrap()
        ));
        std::fs::write(&path, text).unwrap();
        workers.push(raid(&path));
    }
    let wait_for =
        |what: &'static str, ids: Vec<String>, want: fn(&Instances, &[String]) -> bool| {
            let asg = asg.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let now = instances(asg.clone()).await;
                    if want(&now, &ids) {
                        return now;
                    }
                    assert!(Instant::now() < deadline, "{what}: {now:?}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };

    let (wire, job) = rai_testkit::jobs::prepare_job(
        &store,
        &config.queue.name,
        &["echo begin; sleep 8; echo end"],
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
    let busy = bus.state(&job).await.unwrap().unwrap().worker.unwrap();
    let (busy_i, idle_i) = if busy == ids[0] { (0, 1) } else { (1, 0) };
    assert_eq!(
        busy, ids[busy_i],
        "the job runs on one of the group's workers"
    );
    let order = vec![ids[busy_i].clone(), ids[idle_i].clone()];
    wait_for(
        "the busy instance is protected, the idle one is not",
        order.clone(),
        |now, ids| now[&ids[0]].1 && !now[&ids[1]].1,
    )
    .await;

    // Scale in to nothing: the group takes the idle instance only; its raid drains, completes the hook and exits.
    asg.set_desired_capacity()
        .auto_scaling_group_name(&group)
        .desired_capacity(0)
        .send()
        .await
        .unwrap();
    let now = wait_for(
        "the idle instance drains and leaves; the busy one stays",
        order.clone(),
        |now, ids| {
            !now.contains_key(&ids[1]) && now.get(&ids[0]).is_some_and(|s| s.0 == "InService")
        },
    )
    .await;
    assert!(now[&order[0]].1, "still protected while its job runs");
    let mut idle = workers.remove(idle_i);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut idle, Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(
        status.map(|s| s.success()),
        Some(true),
        "the idle raid exits cleanly"
    );

    // The job ends where it ran, untouched by the scale-in; then the instance is no longer protected.
    let events = follower.await.unwrap();
    assert_eq!(end(&events).0, "succeeded", "{events:#?}");
    assert!(
        text(&events, "stdout").ends_with("begin\nend\n"),
        "{events:#?}"
    );
    wait_for(
        "an idle worker is not protected",
        order.clone(),
        |now, ids| !now[&ids[0]].1,
    )
    .await;

    // The group now takes the last one: it drains (nothing runs) and lets the group go on.
    asg.set_desired_capacity()
        .auto_scaling_group_name(&group)
        .desired_capacity(0)
        .send()
        .await
        .unwrap();
    wait_for(
        "the last instance drains and leaves",
        order.clone(),
        |now, ids| !now.contains_key(&ids[0]),
    )
    .await;
    let mut last = workers.remove(0);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut last, Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(
        status.map(|s| s.success()),
        Some(true),
        "the last raid exits cleanly"
    );
}
