//! The parts of a course on hosts apart (issue 26): Redis, two gateways, two workers and a student, each in a network
//! namespace of its own on one switch (`rai_testkit::hosts`), as a campus or cloud network has them. Redis speaks
//! only TLS with client certificates and deploy/redis's users; the gateways serve HTTPS; the student's host may
//! reach nothing but the gateways' port. What crosses the Redis link and the student's link is captured (tcpdump)
//! for the whole job: neither holds the job's output, the Redis passwords or the student's key in clear. Then the
//! worker running a job loses its link mid-job, and the job is run again on the other.

use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

use rai_common::account::{
    Account, Profile, Registry, Role, encode_public_key, generate_signing_key,
};
use rai_testkit::PrivateRedis;
use rai_testkit::hosts::{Host, Lan, contains};
use rai_testkit::tls::TestCa;

const GATEWAY_PORT: u16 = 8443;
const METRICS_PORT: u16 = 9464;

/// Starts `raid ARGS -c config` inside `host`, logging to `log`.
fn start_raid(
    lan: &mut Lan,
    host: &Host,
    args: &[&str],
    config: &std::path::Path,
    log: &std::path::Path,
) {
    let log = std::fs::File::create(log).unwrap();
    let mut command = lan.command(host, rai_testkit::binary("raid"));
    command
        .args(args)
        .arg("-c")
        .arg(config)
        .env_remove("RAI_SECRET")
        .env("HOME", config.parent().unwrap())
        .env("RAI_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log);
    lan.keep(command);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_apart_leak_nothing_in_clear_and_a_cut_worker_hands_its_job_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new(d);
    let mut lan = Lan::new();
    let redis_host = lan.host("redis");
    let gateways = [lan.host("gw1"), lan.host("gw2")];
    let workers = [lan.host("w1"), lan.host("w2")];
    let student = lan.host("student");
    let redis = PrivateRedis::start_tls_on(&ca, &redis_host);

    // The course: one student, a registry, a store the servers share (as a bucket), a gateway key.
    let key = generate_signing_key();
    let user = "ana";
    let registry = d.join("registry.yml");
    std::fs::write(
        &registry,
        Registry {
            users: vec![Account {
                username: user.into(),
                email: String::new(),
                team: String::new(),
                role: Role::Student,
                public_key: encode_public_key(&key.verifying_key()),
                created: chrono::Utc::now(),
                revoked: None,
            }],
        }
        .to_yaml(),
    )
    .unwrap();
    let store = d.join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::write(
        d.join("gateway.key"),
        rai_common::account::gateway_key_file(rai_testkit::jobs::gateway_key()),
    )
    .unwrap();
    let queue = rai_testkit::unique("apart");
    let backends = |user: &str| {
        format!(
            "events:\n{}queue:\n  name: {queue}\n  lease: 4s\nstore:\n  backend: fs\n  path: {}\n",
            redis.events_lines(user),
            store.display()
        )
    };
    for (i, host) in gateways.iter().enumerate() {
        let cert = ca.issue(d, &format!("gw{i}"), &[&host.addr.to_string()]);
        let config = d.join(format!("gateway-{i}.yml"));
        std::fs::write(
            &config,
            format!(
                "{}gateway:\n  listen: {}:{GATEWAY_PORT}\n  tls_cert: {}\n  tls_key: {}\n  attestation_key: {}\n  queues: [{queue}]\nraid:\n  registry: {}\n  images: [\"rai-test/*\"]\n",
                backends("gateway"),
                host.addr,
                cert.cert.display(),
                cert.key.display(),
                d.join("gateway.key").display(),
                registry.display()
            ),
        )
        .unwrap();
        start_raid(
            &mut lan,
            host,
            &["gateway"],
            &config,
            &d.join(format!("gateway-{i}.log")),
        );
    }
    let names = [
        rai_testkit::unique("apart-w0"),
        rai_testkit::unique("apart-w1"),
    ];
    for (i, host) in workers.iter().enumerate() {
        let config = d.join(format!("raid-{i}.yml"));
        std::fs::write(
            &config,
            format!(
                "{}raid:\n  name: {}\n  gateway_keys: [{}]\n  queues: [{queue}]\n  images: [\"rai-test/*\"]\n  gpus: []\n  concurrency: 1\n  shutdown_grace: 2s\n  cancel_grace: 2s\n  registry: {}\n  work_dir: {}\n  metrics_address: {}:{METRICS_PORT}\n",
                backends("raid"),
                names[i],
                rai_testkit::jobs::gateway_public_key(),
                registry.display(),
                d.join(format!("jobs-{i}")).display(),
                host.addr,
            ),
        )
        .unwrap();
        start_raid(
            &mut lan,
            host,
            &[],
            &config,
            &d.join(format!("raid-{i}.log")),
        );
    }
    for g in &gateways {
        lan.wait_for(&student, g.addr, GATEWAY_PORT, Duration::from_secs(60));
    }
    for w in &workers {
        lan.wait_for(&gateways[0], w.addr, METRICS_PORT, Duration::from_secs(60));
    }

    // The student's host reaches the gateways' port and nothing else; the others are reachable from a server.
    lan.iptables(&student, &["-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT"]);
    lan.iptables(
        &student,
        &[
            "-A",
            "OUTPUT",
            "-m",
            "conntrack",
            "--ctstate",
            "ESTABLISHED,RELATED",
            "-j",
            "ACCEPT",
        ],
    );
    for g in &gateways {
        let to = g.addr.to_string();
        let port = GATEWAY_PORT.to_string();
        lan.iptables(
            &student,
            &[
                "-A", "OUTPUT", "-d", &to, "-p", "tcp", "--dport", &port, "-j", "ACCEPT",
            ],
        );
    }
    lan.iptables(&student, &["-P", "OUTPUT", "DROP"]);
    assert!(lan.reaches(&student, gateways[1].addr, GATEWAY_PORT));
    for (to, port) in [
        (redis_host.addr, 6380),
        (workers[0].addr, METRICS_PORT),
        (workers[1].addr, METRICS_PORT),
    ] {
        assert!(
            !lan.reaches(&student, to, port),
            "the student reached {to}:{port}"
        );
        assert!(
            lan.reaches(&gateways[0], to, port),
            "a gateway cannot reach {to}:{port}"
        );
    }

    // The student's machine: a profile, the course's config (both gateways, the course CA).
    let home = tempfile::tempdir().unwrap();
    let mut profile = Profile::new(&key, user);
    profile.team.name = String::new();
    std::fs::write(home.path().join(".rai_profile"), profile.to_yaml()).unwrap();
    let url = |a: Ipv4Addr| format!("https://{a}:{GATEWAY_PORT}");
    std::fs::write(
        home.path().join(".rai_config.yml"),
        format!(
            "client:\n  gateway: {}\n  fallback_gateways: [{}]\n  ca_file: {}\nqueue:\n  name: {queue}\n",
            url(gateways[0].addr),
            url(gateways[1].addr),
            ca.cert.display()
        ),
    )
    .unwrap();
    let canary = format!("canary-{}", rai_common::JobId::new());
    let project =
        rai_testkit::stack::project(&[&format!("echo {canary}; sleep 6; echo done")], &[]);

    let redis_link = lan.capture(&redis_host);
    let student_link = lan.capture(&student);
    let mut rai = lan.command(&student, rai_testkit::binary("rai"));
    rai.args(["submit", "-p"])
        .arg(project.path())
        .env("HOME", home.path())
        .env_remove("RAI_PROFILE")
        .env_remove("RAI_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let submit = tokio::process::Command::from(rai).spawn().unwrap();

    // Once the job runs (a container of one worker's is up), cut that worker's link.
    let logs =
        |i: usize| std::fs::read_to_string(d.join(format!("raid-{i}.log"))).unwrap_or_default();
    let containers = |name: &str| {
        let out = std::process::Command::new("docker")
            .args(["ps", "-q", "--filter", &format!("label=rai.worker={name}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let running = loop {
        if let Some(i) = (0..2).find(|&i| containers(&names[i]) > 0) {
            break i;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no worker took the job:\n{}\n{}",
            logs(0),
            logs(1)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    lan.cut(&workers[running]);
    let other = 1 - running;

    let out = tokio::time::timeout(Duration::from_secs(120), submit.wait_with_output())
        .await
        .expect("rai ends")
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    let redis_bytes = redis_link.stop();
    let student_bytes = student_link.stop();
    drop(lan);
    remove_containers(&names[running]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{stderr}\n--- w{running} (cut) ---\n{}\n--- w{other} ---\n{}",
        logs(running),
        logs(other)
    );
    assert!(stdout.ends_with("done\n"), "{stdout}");
    assert!(stdout.contains(&canary), "{stdout}");
    assert!(
        logs(other).contains("job finished") && logs(other).contains("status=succeeded"),
        "the job was not run again on w{other}:\n{}",
        logs(other)
    );

    // Both links carried the job (their captures are not empty: TLS records, thousands of bytes) and nothing of it
    // in clear: not the output, not a Redis password, not the student's key.
    let secrets: Vec<(String, Vec<u8>)> = vec![
        ("the job's output".into(), canary.clone().into_bytes()),
        (
            "the raid password".into(),
            password(&redis, "raid").into_bytes(),
        ),
        (
            "the gateway password".into(),
            password(&redis, "gateway").into_bytes(),
        ),
        (
            "the student's key".into(),
            profile.secret_key.clone().into_bytes(),
        ),
        ("the student's key (raw)".into(), key.to_bytes().to_vec()),
    ];
    println!(
        "captured {} bytes on the Redis link and {} on the student's; w{running} cut mid-job, w{other} ran it again",
        redis_bytes.len(),
        student_bytes.len()
    );
    for (link, bytes) in [("Redis", &redis_bytes), ("student", &student_bytes)] {
        assert!(
            bytes.len() > 4096,
            "the {link} link carried {} bytes",
            bytes.len()
        );
        assert!(
            contains(bytes, &[0x17, 0x03, 0x03]),
            "no TLS records on the {link} link"
        );
        for (what, secret) in &secrets {
            assert!(
                !contains(bytes, secret),
                "{what} crossed the {link} link in clear"
            );
        }
    }
}

/// Removes what the cut worker left running (it was killed with its host, its container was not).
fn remove_containers(name: &str) {
    let out = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=rai.worker={name}")])
        .output()
        .unwrap();
    for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", id])
            .output();
    }
}

/// The password of `user` in `redis`'s URL for it.
fn password(redis: &PrivateRedis, user: &str) -> String {
    let url = redis.target_for(user).url().to_string();
    let rest = url.split_once("://").unwrap().1;
    rest.split_once('@')
        .unwrap()
        .0
        .split_once(':')
        .unwrap()
        .1
        .to_string()
}
