//! End to end on the local stack: the `rai` binary as a student runs it, against a `raid` worker (in this process)
//! on the test Redis, an fs store and the real Docker engine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use rai_common::account::{
    Account, Profile, Registry, Role, encode_public_key, generate_signing_key,
};
use rai_common::{Config, testenv};
use raid::shutdown::Phase;
use tokio::sync::watch;

struct Stack {
    home: tempfile::TempDir,
    _store: tempfile::TempDir,
    _work: tempfile::TempDir,
    phase: watch::Sender<Phase>,
}

async fn stack() -> Stack {
    let (home, store, work) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let queue = testenv::unique("e2e");
    let key = generate_signing_key();
    let mut profile = Profile::new(&key, "jdoe");
    profile.team.name = "t".into();
    std::fs::write(home.path().join(".rai_profile"), profile.to_yaml()).unwrap();
    let registry = store.path().join("registry.yml");
    let reg = Registry {
        users: vec![Account {
            username: "jdoe".into(),
            email: String::new(),
            team: "t".into(),
            role: Role::Student,
            public_key: encode_public_key(&key.verifying_key()),
            created: chrono::Utc::now(),
            revoked: None,
        }],
    };
    std::fs::write(&registry, reg.to_yaml()).unwrap();
    std::fs::write(
        home.path().join(".rai_config.yml"),
        format!(
            "events:\n  redis_url: {}\nqueue:\n  name: {queue}\nstore:\n  path: {}\n",
            testenv::redis_url(),
            store.path().display()
        ),
    )
    .unwrap();
    let mut config = Config::defaults();
    config.events.redis_url = testenv::redis_url();
    config.queue.name = queue.clone();
    config.store.path = store.path().to_path_buf();
    config.raid.queues = vec![queue];
    config.raid.images = vec!["rai-test/*".into()];
    config.raid.gpus = Some(vec![]);
    config.raid.registry = registry;
    config.raid.work_dir = work.path().to_path_buf();
    config.raid.name = Some(testenv::unique("e2e-w"));
    config.raid.cancel_grace = rai_common::units::Span::from_secs(2);
    let ctx = Arc::new(raid::setup::context(config).await.unwrap());
    let (phase, phase_rx) = watch::channel(Phase::Running);
    let (hup, hup_rx) = watch::channel(0);
    std::mem::forget(hup);
    tokio::spawn(raid::worker::serve(ctx, 2, phase_rx, hup_rx));
    Stack {
        home,
        _store: store,
        _work: work,
        phase,
    }
}

fn project(commands: &[&str], files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let list: String = commands
        .iter()
        .map(|c| format!("    - {}\n", serde_json::to_string(c).unwrap()))
        .collect();
    std::fs::write(
        dir.path().join("rai_build.yml"),
        format!("rai:\n  version: 0.2\n  image: {}\nresources:\n  limits: {{ time: 60s }}\ncommands:\n  build:\n{list}", testenv::image()),
    )
    .unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

async fn rai(home: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rai"));
    cmd.args(args)
        .env("HOME", home)
        .env_remove("RAI_PROFILE")
        .env_remove("RAI_SECRET");
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn job_id(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("✱ Job ")
                .map(|r| r.split_whitespace().next().unwrap().to_string())
        })
        .unwrap_or_else(|| panic!("no job id in: {stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_job_prints_exactly_what_the_container_printed_and_downloads_build() {
    let s = stack().await;
    let p = project(
        &[
            "echo hello; echo oops >&2; cp /src/data.txt /build/result.txt",
            "echo second",
        ],
        &[("data.txt", "42\n")],
    );
    let out = rai(s.home.path(), &["-p", p.path().to_str().unwrap()]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\nsecond\n");
    for line in [
        "✱ Checking your authentication credentials.",
        "✱ Preparing your project directory for upload.",
        "✱ Uploading your project directory...",
        "✱ Your job request has been posted to the queue.",
        "oops",
    ] {
        assert!(stderr.contains(line), "{line} missing from:\n{stderr}");
    }
    let id = job_id(&stderr);
    let dest: PathBuf = s.home.path().join("out");
    let out = rai(
        s.home.path(),
        &["download", &id, "-o", dest.to_str().unwrap()],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("result.txt")).unwrap(),
        "42\n"
    );
    let out = rai(s.home.path(), &["history"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains(&id));
    let _ = s.phase.send(Phase::Drain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_sets_the_exit_code() {
    let s = stack().await;
    let p = project(&["echo before", "exit 3", "echo never"], &[]);
    let out = rai(s.home.path(), &["submit", "-p", p.path().to_str().unwrap()]).await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "before\n");
    let _ = s.phase.send(Phase::Drain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detach_then_logs_follow_shows_everything_once() {
    let s = stack().await;
    let p = project(
        &["for i in 1 2 3 4 5; do echo line $i; sleep 0.3; done"],
        &[],
    );
    let out = rai(
        s.home.path(),
        &["submit", "--detach", "-p", p.path().to_str().unwrap()],
    )
    .await;
    assert_eq!(out.status.code(), Some(0));
    let id = job_id(&String::from_utf8_lossy(&out.stderr));
    let out = rai(s.home.path(), &["logs", "-f", &id]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "line 1\nline 2\nline 3\nline 4\nline 5\n"
    );
    let out = rai(s.home.path(), &["status", &id]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("status:   succeeded") && text.contains("exit:     0"),
        "{text}"
    );
    let _ = s.phase.send(Phase::Drain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_from_another_process_ends_the_job_cancelled() {
    let s = stack().await;
    let p = project(&["echo started; sleep 60"], &[]);
    let out = rai(
        s.home.path(),
        &["submit", "--detach", "-p", p.path().to_str().unwrap()],
    )
    .await;
    let id = job_id(&String::from_utf8_lossy(&out.stderr));
    let follower = {
        let home = s.home.path().to_path_buf();
        let id = id.clone();
        tokio::spawn(async move { rai(&home, &["logs", "-f", &id]).await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out = rai(s.home.path(), &["cancel", &id]).await;
    assert!(out.status.success());
    let out = follower.await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cancelled: cancelled by jdoe"));
    let _ = s.phase.send(Phase::Drain);
}

#[tokio::test]
async fn an_invalid_build_file_is_reported_before_anything_is_uploaded() {
    let home = tempfile::tempdir().unwrap();
    let p = tempfile::tempdir().unwrap();
    std::fs::write(
        p.path().join("rai_build.yml"),
        "rai:\n  image: x\ncommands:\n  biuld: [make]\n",
    )
    .unwrap();
    let out = rai(home.path(), &["-p", p.path().to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "rai_build.yml:4:3: commands: unknown key \"biuld\" (did you mean \"build\"?)"
        )
    );
}
