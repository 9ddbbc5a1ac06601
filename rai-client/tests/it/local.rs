//! `rai run --local` (issue 31, part 1), through the `rai` binary: the same build files run on this machine's
//! Docker engine and through a worker of the local stack (TLS gateway, Redis over TLS with deploy/redis's ACL
//! users) give the same output lines and the same exit code; `/build` is left in a folder; GPUs go through a real
//! engine's device requests (the test kit's GPU engine), and an engine without the NVIDIA driver, or no engine at
//! all, gets a message that says what to install.

use std::path::Path;

use rai_testkit::gpu_engine::GpuEngine;
use rai_testkit::stack::{Kind, Options, Stack, text};

/// A project of one source file whose build file is `build` (the commands and anything else under `rai:`).
fn project(build: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.cu"), "int main() { return 0; }\n").unwrap();
    std::fs::write(dir.path().join(".raiignore"), "notes/\n").unwrap();
    std::fs::create_dir(dir.path().join("notes")).unwrap();
    std::fs::write(dir.path().join("notes/todo.txt"), "left out\n").unwrap();
    std::fs::write(
        dir.path().join("rai_build.yml"),
        format!(
            "rai:\n  version: 0.2\n  image: {}\n{build}",
            rai_testkit::image()
        ),
    )
    .unwrap();
    dir
}

/// What a run showed the student, less what names where it ran: the job's own output and the `✱` lines of its
/// commands and its end, the job id blanked.
fn seen(stdout: &[u8], stderr: &[u8]) -> (String, Vec<String>) {
    let lines = text(stderr)
        .lines()
        // `✱ Job ID (3 files, 432 B).` says what was uploaded; `✱ Job ID failed ...` is the end.
        .filter(|l| {
            !l.starts_with('✱')
                || l.starts_with("✱ Running ")
                || (l.starts_with("✱ Job ") && !l.contains(" files, "))
        })
        .map(|l| match l.strip_prefix("✱ Job ") {
            Some(rest) => format!("✱ Job ID{}", &rest[rest.find(' ').unwrap_or(rest.len())..]),
            None => l.to_string(),
        })
        .collect();
    (text(stdout), lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_build_files_give_the_same_lines_and_exit_codes_locally_and_on_a_worker() {
    let s = Stack::start(Kind::Local, Options::default()).await;
    let cases: [(&str, i32); 4] = [
        // The sandbox as a job sees it: non-root, /src as uploaded and read-only, the root read-only, /tmp
        // writable, no network, no GPU, the environment, /build the working directory.
        (
            "commands:\n  build:\n    - echo out; echo err >&2\n    - \"[ $(id -u) != 0 ] && echo non-root; ls /src; echo \
             $RAI $RAI_SOURCE_DIR $RAI_BUILD_DIR $HOME $NVIDIA_VISIBLE_DEVICES; pwd\"\n    - touch /src/x || \
             touch /x || echo tmp > /tmp/t && cat /tmp/t\n    - \"grep CapEff /proc/self/status; cat /sys/class/net/*/address \
             | wc -l; echo made > /build/out.txt\"\n",
            0,
        ),
        // A failing command ends the job with its code; the next never runs.
        (
            "commands:\n  build:\n    - echo first\n    - sh -c 'echo failing >&2; exit 3'\n    - echo never\n",
            3,
        ),
        // The time limit, as the build file asks it.
        (
            "resources:\n  limits: { time: 2s }\ncommands:\n  build:\n    - echo start\n    - sleep 30\n",
            124,
        ),
        // A broken build file is refused the same way before anything runs.
        ("commands:\n  build: echo not a list\n  nonsense: [\n", 2),
    ];
    for (i, (build, code)) in cases.into_iter().enumerate() {
        let p = project(build);
        let dir = p.path().to_str().unwrap();
        let queued = s.rai(0, &["-p", dir]).await;
        let out = tempfile::tempdir().unwrap();
        let kept = out.path().join("build");
        let local = s
            .rai(
                0,
                &["run", "--local", "-p", dir, "-o", kept.to_str().unwrap()],
            )
            .await;
        let (queued_seen, local_seen) = (
            seen(&queued.stdout, &queued.stderr),
            seen(&local.stdout, &local.stderr),
        );
        assert_eq!(
            queued.status.code(),
            Some(code),
            "case {i} queued: {}",
            text(&queued.stderr)
        );
        assert_eq!(
            local.status.code(),
            Some(code),
            "case {i} local: {}",
            text(&local.stderr)
        );
        assert_eq!(local_seen, queued_seen, "case {i}");
        if i == 0 {
            let (stdout, _) = &local_seen;
            assert!(
                stdout.contains(
                    "non-root\nmain.cu\nrai_build.yml\n1 /src /build /build void\n/build\n"
                ),
                "{stdout}"
            );
            assert!(
                stdout.contains("CapEff:\t0000000000000000\n1\n"),
                "no capabilities, only the loopback interface: {stdout}"
            );
            let stderr = text(&local.stderr);
            assert!(stderr.contains("Read-only file system"), "{stderr}");
            assert!(stderr.contains("✱ Your /build folder is in"), "{stderr}");
            assert_eq!(
                std::fs::read_to_string(kept.join("out.txt")).unwrap(),
                "made\n",
                "/build is left in the folder"
            );
        }
        if i == 2 {
            let stderr = text(&local.stderr);
            assert!(
                stderr.contains("timed out: time limit 2s exceeded"),
                "{stderr}"
            );
        }
    }
    assert!(
        s.containers_left().is_empty(),
        "no container is left behind"
    );
    let left = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", "label=rai.local"])
        .output()
        .unwrap();
    assert_eq!(text(&left.stdout), "", "no local container is left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_a_local_job_as_a_cancel_stops_a_queued_one() {
    let p = project("commands:\n  build:\n    - echo started; sleep 60\n    - echo never\n");
    let out = tempfile::tempdir().unwrap();
    let kept = out.path().join("build");
    let mut rai = rai_command(p.path(), &["-o", kept.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the job's first line, then Ctrl-C.
    let stdout = rai.stdout.take().unwrap();
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        line
    })
    .await
    .unwrap();
    assert_eq!(first, "started\n");
    let started = std::time::Instant::now();
    std::process::Command::new("kill")
        .args(["-INT", &rai.id().to_string()])
        .status()
        .unwrap();
    let done = tokio::task::spawn_blocking(move || rai.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = text(&done.stderr);
    assert_eq!(done.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains("✱ Cancelled by you (Ctrl-C); stopping the job"),
        "{stderr}"
    );
    assert!(
        stderr.contains("cancelled: cancelled by you (Ctrl-C)."),
        "{stderr}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the sleep got SIGTERM, not a wait for its end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpus_go_through_the_engines_device_requests_and_a_missing_driver_or_engine_says_what_to_install()
 {
    let p = project(
        "resources:\n  gpu:\n    count: 1\ncommands:\n  build:\n    - echo \"sees $NVIDIA_VISIBLE_DEVICES\"\n",
    );
    // An engine with the NVIDIA hook: the job gets GPU 0 through a device request.
    let engine = tokio::task::spawn_blocking(|| {
        let engine = GpuEngine::start();
        engine.load(&rai_testkit::image());
        engine
    })
    .await
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let kept = |name: &str| out.path().join(name).to_str().unwrap().to_string();
    let done = run_local(p.path(), &["-o", &kept("gpu")], Some(engine.host())).await;
    let stderr = text(&done.stderr);
    assert_eq!(done.status.code(), Some(0), "{stderr}");
    let stdout = text(&done.stdout);
    assert_eq!(stdout, "sees 0\n");
    assert!(
        stderr.contains("running on this machine (rai run --local) with GPU 0."),
        "{stderr}"
    );
    let calls = engine.hook_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].visible, "0");

    // --gpus 0 on the same file: no device request, and a line saying so.
    let calls_before = engine.hook_calls().len();
    let done = run_local(
        p.path(),
        &["--gpus", "0", "-o", &kept("none")],
        Some(engine.host()),
    )
    .await;
    let stderr = text(&done.stderr);
    assert!(
        stderr.contains("✱ Running with 0 GPUs (--gpus); the build file asks for 1."),
        "{stderr}"
    );
    assert!(
        text(&done.stdout).starts_with("sees void\n"),
        "{}",
        text(&done.stdout)
    );
    assert_eq!(engine.hook_calls().len(), calls_before);

    // The machine's usual engine has no NVIDIA driver.
    let done = run_local(p.path(), &["-o", &kept("nodriver")], None).await;
    let stderr = text(&done.stderr);
    assert_eq!(done.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("install the NVIDIA Container Toolkit") && stderr.contains("--gpus 0"),
        "{stderr}"
    );

    // No engine at all.
    let done = run_local(
        p.path(),
        &["-o", &kept("nodocker")],
        Some("unix:///nonexistent/docker.sock".into()),
    )
    .await;
    let stderr = text(&done.stderr);
    assert_eq!(done.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot reach a Docker engine") && stderr.contains("install Docker"),
        "{stderr}"
    );
}

/// [`rai_command`] run to its end, on the engine `docker_host` (`None`: the machine's usual one).
async fn run_local(dir: &Path, args: &[&str], docker_host: Option<String>) -> std::process::Output {
    let mut cmd = rai_command(dir, args);
    if let Some(host) = docker_host {
        cmd.env("DOCKER_HOST", host);
    }
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// `rai run --local -p DIR ARGS`, with no profile: a local run needs none.
fn rai_command(dir: &Path, args: &[&str]) -> std::process::Command {
    let home = tempfile::tempdir().unwrap().keep();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rai"));
    cmd.env_clear()
        .env("HOME", &home)
        .env("PATH", std::env::var_os("PATH").unwrap())
        .args(["run", "--local", "-p", dir.to_str().unwrap()])
        .args(args);
    cmd
}
