//! Standby containers (`raid.standby`): after a job, the worker keeps a container like its own started and idle;
//! the next job of that shape on a free slot runs in it, with its own id, upload and `/build`, and a job of another
//! shape starts its own. Draining removes them.

use std::time::{Duration, Instant};

use crate::harness::Harness;
use rai_testkit::jobs::{end, text};

const LIMIT: Duration = Duration::from_secs(60);

/// The names of the containers matching every `filters` (`key=value`).
fn names(filters: &[String]) -> Vec<String> {
    let mut args = vec![
        "ps".to_string(),
        "-a".into(),
        "--format".into(),
        "{{.Names}}".into(),
    ];
    for f in filters {
        args.extend(["--filter".to_string(), f.clone()]);
    }
    let out = std::process::Command::new("docker")
        .args(&args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The worker's idle standbys (not yet taken by a job).
fn standbys(worker: &str) -> Vec<String> {
    names(&[format!("label=rai.standby={worker}")])
        .into_iter()
        .filter(|n| n.starts_with("rai-standby-"))
        .collect()
}

/// Waits for the worker to keep exactly one standby ready, and returns its name (checked against Docker's list).
async fn one_standby(h: &Harness) -> String {
    let deadline = Instant::now() + LIMIT;
    loop {
        let ready = h.ctx.standbys.ready();
        let w = h.ctx.name.clone();
        let listed = tokio::task::spawn_blocking(move || standbys(&w))
            .await
            .unwrap();
        assert!(listed.len() < 2, "one slot, yet standbys: {listed:?}");
        if ready.len() == 1 && listed == ready {
            return listed[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no standby ready: {ready:?}, listed {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the job's container to exist, and returns the labels it carries among `rai.job` and `rai.standby`.
async fn labels_of_job_container(job: &str) -> (bool, bool) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let name = format!("name=rai-job-{job}");
        let (j, s) = (
            format!("label=rai.job={job}"),
            "label=rai.standby".to_string(),
        );
        let found = tokio::task::spawn_blocking(move || {
            (
                names(std::slice::from_ref(&name)).len(),
                names(&[name.clone(), j]).len(),
                names(&[name, s]).len(),
            )
        })
        .await
        .unwrap();
        if found.0 == 1 {
            return (found.1 == 1, found.2 == 1);
        }
        assert!(Instant::now() < deadline, "job {job} never got a container");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_job_runs_in_the_standby_made_after_the_last_one() {
    let h = Harness::start(|c| c.raid.concurrency = Some(1)).await;
    let worker = h.ctx.name.clone();
    let first = h
        .submit(&["echo first"], "time: 30s, memory: 64m", &[])
        .await;
    assert_eq!(end(&h.events(first, LIMIT).await).0, "succeeded");
    let standby = one_standby(&h).await;

    // The same shape: the job takes the standby, renamed to its own name, and sees its own id, upload and /build.
    let second = h
        .submit(
            &[
                "sleep 1; echo job $RAI_JOB_ID; cat /src/input.txt",
                "touch /build/made; test -f /build/made && echo made; touch /src/x 2>/dev/null || echo src read-only",
            ],
            "time: 30s, memory: 64m",
            &[("input.txt", "the second's input\n")],
        )
        .await;
    let (made_for_it, was_standby) = labels_of_job_container(&second.to_string()).await;
    assert!(
        was_standby && !made_for_it,
        "the job did not run in the standby (labels: job {made_for_it}, standby {was_standby})"
    );
    let events = h.events(second, LIMIT).await;
    assert_eq!(end(&events).0, "succeeded", "{}", text(&events, "system"));
    assert_eq!(
        text(&events, "stdout"),
        format!("job {second}\nthe second's input\nmade\nsrc read-only\n")
    );
    assert!(
        names(&[format!("name={standby}")]).is_empty(),
        "the standby {standby} is still there under its own name"
    );

    // Another shape (more memory): its own container, made for it; then a standby of the new shape replaces the
    // old one (one slot, one standby).
    let _ = one_standby(&h).await;
    let third = h
        .submit(&["sleep 1; echo third"], "time: 30s, memory: 96m", &[])
        .await;
    let (made_for_it, was_standby) = labels_of_job_container(&third.to_string()).await;
    assert!(
        made_for_it && !was_standby,
        "a job of another shape took a standby (labels: job {made_for_it}, standby {was_standby})"
    );
    let events = h.events(third, LIMIT).await;
    assert_eq!(text(&events, "stdout"), "third\n");
    let replaced = one_standby(&h).await;
    let memory = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{.HostConfig.Memory}}", &replaced])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&memory.stdout).trim(),
        (96u64 << 20).to_string(),
        "the standby kept is not of the last job's shape"
    );

    // Draining removes the standby and its folder.
    let jobs_dir = h.ctx.jobs_dir();
    h.drain_and_stop().await;
    assert!(
        names(&[format!("label=rai.worker={worker}")]).is_empty(),
        "containers left after draining"
    );
    let left: Vec<_> = std::fs::read_dir(&jobs_dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "folders left after draining: {left:?}");
}
