//! raid running real jobs in real containers (the local busybox image) against the test Redis.
//!
//! Over 450 lines: one test per way a real job ends in a real container, sharing the worker harness.

use std::time::Duration;

use crate::harness::Harness;
use rai_common::event::{EventBody, JobStatus};
use rai_common::objects::{output_key, record_key};
use rai_testkit::jobs::{containers_of, end, text};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_job_streams_stores_and_cleans_up() {
    let h = Harness::start(|_| {}).await;
    let job = h
        .submit(
            &[
                "echo hello from $RAI_JOB_ID; echo careful >&2",
                "cat /src/input.txt > /build/out.txt; ls /src",
            ],
            "time: 30s, memory: 64m",
            &[("input.txt", "the input\n")],
        )
        .await;
    let events = h.events(job, LIMIT).await;
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
    }
    assert!(
        matches!(
            &events[0].body,
            EventBody::Status {
                status: JobStatus::Running,
                ..
            }
        ),
        "{:?}",
        events[0]
    );
    assert_eq!(
        text(&events, "stdout"),
        format!("hello from {job}\ninput.txt\nrai_build.yml\n")
    );
    assert_eq!(text(&events, "stderr"), "careful\n");
    assert!(
        text(&events, "system").contains("✱ Running echo hello from $RAI_JOB_ID; echo careful >&2")
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.body, EventBody::Artifact { .. }))
    );
    assert_eq!(end(&events), ("succeeded".into(), Some(0), None));

    let record: serde_json::Value = serde_json::from_slice(
        &h.ctx
            .store
            .get_bytes(&record_key("jdoe", &job))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(record["status"], "succeeded");
    let output = h
        .ctx
        .store
        .get_bytes(&output_key("jdoe", &job))
        .await
        .unwrap();
    let unpacked = tempfile::tempdir().unwrap();
    rai_common::archive::unpack(output.as_slice(), unpacked.path(), Default::default()).unwrap();
    assert_eq!(
        std::fs::read_to_string(unpacked.path().join("out.txt")).unwrap(),
        "the input\n"
    );

    // Acked after the end: give the worker a moment, then nothing of the job is left.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(containers_of(&format!("rai.job={job}")), 0);
    assert!(!h.ctx.jobs_dir().join(job.to_string()).exists());
    h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_removes_job_directories_its_crashed_run_left() {
    let mut leftover = std::path::PathBuf::new();
    let h = Harness::start(|c| {
        // What a kill -9 leaves: a job directory with the upload unpacked in it.
        let name = c.raid.name.clone().unwrap();
        leftover = c
            .raid
            .work_dir
            .join(name)
            .join("01m80000000000000000000000");
        std::fs::create_dir_all(leftover.join("src")).unwrap();
        std::fs::write(leftover.join("src/main.c"), "int main;").unwrap();
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !leftover.exists(),
        "the leftover job directory is still there"
    );
    h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_failing_command_ends_the_job_with_its_code() {
    let h = Harness::start(|_| {}).await;
    let job = h
        .submit(
            &["echo one", "echo two; exit 3", "echo three"],
            "time: 30s",
            &[],
        )
        .await;
    let events = h.events(job, LIMIT).await;
    assert_eq!(text(&events, "stdout"), "one\ntwo\n");
    let (status, code, reason) = end(&events);
    assert_eq!((status.as_str(), code), ("failed", Some(3)));
    assert!(reason.unwrap().contains("exit code 3"));
    h.drain_and_stop().await;
}

/// The Debian image debootstrap made (deploy/local/lib.sh) runs jobs as a course's images do: bash, coreutils, the
/// job's user and its folders, in the same sandbox as busybox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_on_the_fresh_debian_image_with_bash_and_coreutils() {
    let h = Harness::start(|_| {}).await;
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("rai_build.yml"),
        format!(
            "rai:\n  version: 0.2\n  image: {}\nresources:\n  limits: {{ time: 60s }}\ncommands:\n  build:\n    - bash -c 'echo \"$BASH_VERSION\" | cut -d. -f1'\n    - bash -c 'seq 3 | sort -r | paste -sd,'\n    - bash -c 'id -un; cd /build && cp /src/data.txt . && sha256sum data.txt | cut -c1-8'\n",
            rai_testkit::env::debian_image()
        ),
    )
    .unwrap();
    std::fs::write(project.path().join("data.txt"), "rai\n").unwrap();
    let job = h.submit_dir(project.path(), |_| {}).await;
    let events = h.events(job, LIMIT).await;
    assert_eq!(end(&events).0, "succeeded", "{events:#?}");
    // bash 5 (bookworm), GNU seq/sort/paste, the job's user `rai` (uid 1000), /build writable.
    assert_eq!(text(&events, "stdout"), "5\n3,2,1\nrai\n129b3c91\n");
    h.drain_and_stop().await;
}

/// The job's record of a run, as the worker stored it.
async fn record_of(h: &Harness, job: rai_common::JobId) -> rai_common::record::JobRecord {
    serde_json::from_slice(
        &h.ctx
            .store
            .get_bytes(&record_key(&h.user, &job))
            .await
            .unwrap(),
    )
    .unwrap()
}

/// `/build/results.json` (Gradescope's format) is read after the commands and kept in the record; a broken one, a
/// link, or one too large gets a ✱ line saying what, and the job ends as its commands did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_scores_are_read_from_results_json_strictly_and_kept_in_the_record() {
    let h = Harness::start(|_| {}).await;
    let good = r#"{"tests": [{"name": "add", "score": 2, "max_score": 2, "status": "passed"}, {"name": "speed", "score": 1, "max_score": 3, "visibility": "hidden"}]}"#;
    let job = h
        .submit(
            &[&format!("printf '%s' '{good}' > /build/results.json")],
            "time: 30s",
            &[],
        )
        .await;
    let events = h.events(job, LIMIT).await;
    assert_eq!(end(&events).0, "succeeded");
    assert!(
        text(&events, "system").contains("Scores read from /build/results.json (2 tests)"),
        "{events:#?}"
    );
    let record = record_of(&h, job).await;
    let results = record.results.expect("the record keeps the scores");
    assert_eq!(
        (results.total(), results.max_total()),
        (Some(3.0), Some(5.0))
    );

    for (commands, says) in [
        (
            r#"printf '{\n  "score": 3,\n  "tests": [ {"name": "a",} ]\n}' > /build/results.json"#,
            "results.json:3:",
        ),
        (
            r#"printf '{"score": 1, "grade": "A"}' > /build/results.json"#,
            "unknown field `grade`",
        ),
        (
            "ln -s /etc/passwd /build/results.json",
            "not a regular file",
        ),
        (
            "head -c 1100000 /dev/zero > /build/results.json",
            "over the 1048576",
        ),
    ] {
        let job = h.submit(&[commands], "time: 30s", &[]).await;
        let events = h.events(job, LIMIT).await;
        assert_eq!(
            end(&events).0,
            "succeeded",
            "{commands}: the job ends as its commands did"
        );
        let system = text(&events, "system");
        assert!(
            system.contains(says) && system.contains("the job's scores were not kept"),
            "{commands}: {system}"
        );
        assert_eq!(record_of(&h, job).await.results, None, "{commands}");
    }
    h.drain_and_stop().await;
}

/// An assignment that requires results fails a graded run that wrote none, or wrote a broken file, and says why;
/// one that wrote them succeeds. Ungraded runs are never failed for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graded_run_without_required_results_fails_with_the_reason() {
    let h = Harness::start(|_| {}).await;
    let graded = rai_common::job::Graded {
        assignment: "mp1".into(),
        late: false,
        build: None,
        results_required: true,
        regrade_of: None,
    };
    let mut outcomes = Vec::new();
    for commands in [
        "echo no scores",
        r#"printf '{"score": ' > /build/results.json"#,
        r#"printf '{"score": 10, "max_score": 10}' > /build/results.json"#,
    ] {
        // The student's request names the assignment, as `rai submit --submit mp1` does.
        let (wire, job) = rai_testkit::jobs::sign_upload(
            h.ctx.store.as_ref(),
            &h.config.queue.name,
            &h.user,
            &h.key,
            &rai_testkit::jobs::build_file(&[commands], "time: 30s"),
            rai_testkit::jobs::pack_dir(tempfile::tempdir().unwrap().path()),
            |r| r.assignment = Some("mp1".into()),
        )
        .await;
        h.ctx.queues[0]
            .send(&rai_testkit::jobs::attest_graded(&wire, graded.clone()))
            .await
            .unwrap();
        let (status, _, reason) = end(&h.events(job, LIMIT).await);
        outcomes.push((status, reason.unwrap_or_default()));
    }
    assert_eq!(outcomes[0].0, "failed", "{outcomes:?}");
    assert!(
        outcomes[0]
            .1
            .contains("requires the job's scores in /build/results.json")
            && outcomes[0].1.contains("wrote no /build/results.json"),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1].0, "failed");
    assert!(outcomes[1].1.contains("results.json:1:"), "{outcomes:?}");
    assert_eq!(outcomes[2].0, "succeeded", "{outcomes:?}");
    // Not graded: no scores is no failure.
    let job = h.submit(&["echo plain"], "time: 30s", &[]).await;
    assert_eq!(end(&h.events(job, LIMIT).await).0, "succeeded");
    h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_limit_kills_the_job() {
    let h = Harness::start(|_| {}).await;
    let job = h.submit(&["echo start; sleep 60"], "time: 5s", &[]).await;
    let events = h.events(job, LIMIT).await;
    assert_eq!(
        end(&events),
        (
            "timed_out".into(),
            None,
            Some("time limit 5s exceeded".into())
        )
    );
    h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_hog_is_killed_by_the_oom_killer() {
    let h = Harness::start(|_| {}).await;
    let job = h
        .submit(
            &["x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived ${#x}"],
            "time: 30s, memory: 64m",
            &[],
        )
        .await;
    let events = h.events(job, LIMIT).await;
    let (status, _, reason) = end(&events);
    assert_eq!(
        (status.as_str(), reason.as_deref()),
        ("failed", Some("out of memory (limit 64m)")),
        "{events:#?}"
    );
    h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_holds() {
    let h = Harness::start(|_| {}).await;
    let job = h
        .submit(
            &[
                "if wget -q -T 2 -O /dev/null http://127.0.0.1:1/ 2>/dev/null; then echo net-open; else echo net-closed; fi",
                "if touch /evil 2>/dev/null; then echo root-writable; else echo root-readonly; fi",
                "if touch /src/evil 2>/dev/null; then echo src-writable; else echo src-readonly; fi",
                "echo ok > /build/ok && echo build-writable",
                "id -u",
                "if ls /var/run/docker.sock 2>/dev/null; then echo docker-visible; else echo no-docker; fi",
            ],
            "time: 30s",
            &[("f.txt", "x")],
        )
        .await;
    let events = h.events(job, LIMIT).await;
    assert_eq!(
        text(&events, "stdout"),
        "net-closed\nroot-readonly\nsrc-readonly\nbuild-writable\n1000\nno-docker\n",
        "{events:#?}"
    );
    assert_eq!(end(&events).0, "succeeded");
    h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_job_with_who_asked() {
    let h = Harness::start(|_| {}).await;
    let job = h
        .submit(
            &["echo started; trap 'echo got TERM; exit 143' TERM; sleep 60 & wait"],
            "time: 60s",
            &[],
        )
        .await;
    let bus = h.ctx.bus.clone();
    let follower = tokio::spawn({
        let bus = bus.clone();
        async move { rai_testkit::jobs::follow(&bus, job, LIMIT).await }
    });
    rai_testkit::jobs::wait_running(&bus, job).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    bus.request_cancel(&job, "jdoe").await.unwrap();
    let events = follower.await.unwrap();
    let (status, _, reason) = end(&events);
    assert_eq!(
        (status.as_str(), reason.as_deref()),
        ("cancelled", Some("cancelled by jdoe"))
    );
    assert!(
        text(&events, "stdout").contains("got TERM"),
        "SIGTERM reached the job first: {events:#?}"
    );
    h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noisy_job_is_capped_and_completes() {
    let h = Harness::start(|c| c.raid.limits.log_bytes = rai_common::units::Bytes(1 << 20)).await;
    // Peak memory of this process (the worker runs in it) from here on.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = status_kib("VmRSS:");
    // About 50 MB of output.
    let job = h.submit(&["i=0; while [ $i -lt 50 ]; do head -c 1000000 /dev/zero | tr '\\0' 'x' | fold -w 99; i=$((i+1)); done; echo done >&2"], "time: 60s", &[]).await;
    let events = h.events(job, LIMIT).await;
    let shown = text(&events, "stdout").len();
    assert!(shown <= 1 << 20, "{shown} bytes shown past a 1 MiB cap");
    assert!(text(&events, "system").contains("passed the log limit of 1.0 MiB"));
    let grew = status_kib("VmHWM:").saturating_sub(rss_before);
    assert!(
        grew < 40 * 1024,
        "the worker's memory grew by {grew} KiB for 50 MB of output"
    );
    assert_eq!(end(&events).0, "succeeded");
    h.drain_and_stop().await;
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_filling_build_is_stopped_at_the_output_limit() {
    let h =
        Harness::start(|c| c.raid.limits.output_bytes = rai_common::units::Bytes(32 << 20)).await;
    // Writes without end: only the worker's watch on /build stops it before the time limit.
    let job = h
        .submit(
            &["echo filling; i=0; while true; do head -c 4000000 /dev/zero > /build/f$i; i=$((i+1)); done"],
            "time: 50s",
            &[],
        )
        .await;
    let started = std::time::Instant::now();
    let events = h.events(job, LIMIT).await;
    let (status, _, reason) = end(&events);
    assert_eq!(status, "failed", "{events:#?}");
    assert!(
        reason
            .as_deref()
            .unwrap_or("")
            .contains("/build grew past this worker's limit of 32.0 MiB"),
        "{reason:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "stopped by the time limit, not the /build watch"
    );
    assert!(text(&events, "system").contains("/build was not kept"));
    // The job directory, with what it wrote, is gone.
    let jobs = h.ctx.jobs_dir();
    assert!(
        !jobs.join(job.to_string()).exists(),
        "{} left behind",
        jobs.display()
    );
    h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_swapped_for_a_bigger_object_is_refused_without_reading_it_all() {
    let h = Harness::start(|_| {}).await;
    let (wire, job) = h
        .prepare(&["echo no"], "time: 10s", &[], &h.key, "jdoe")
        .await;
    // The owner overwrites the upload after signing: the same archive followed by 64 MiB of junk.
    let key = rai_common::objects::upload_key("jdoe", &job);
    let mut bytes = Vec::new();
    use tokio::io::AsyncReadExt;
    h.ctx
        .store
        .get(&key)
        .await
        .unwrap()
        .read_to_end(&mut bytes)
        .await
        .unwrap();
    bytes.extend(std::iter::repeat_n(7u8, 64 << 20));
    h.ctx.store.put_bytes(&key, bytes).await.unwrap();
    h.ctx.queues[0]
        .send(&rai_testkit::jobs::attest(&wire))
        .await
        .unwrap();
    let events = h.events(job, LIMIT).await;
    let (status, _, reason) = end(&events);
    assert_eq!(status, "rejected");
    assert!(
        reason
            .as_deref()
            .unwrap_or("")
            .contains("the upload is larger than the"),
        "{reason:?}"
    );
    h.drain_and_stop().await;
}
