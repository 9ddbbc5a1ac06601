//! End to end: the `rai` binary as a student runs it, against `raid` processes, on both stacks: local (Redis
//! Streams queue, fs store) and AWS (SQS, S3 and STS on moto). Every job runs in the real Docker engine.
//!
//! Over 450 lines: the student's whole path, command by command, on both stacks, sharing helpers.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use rai_testkit::stack::{Kind, Options, Stack, job_id, project, text};

/// The lines of rai's stderr that came from the job (rai's own lines start with `✱`).
fn job_stderr(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| !l.starts_with('✱') && !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect()
}

async fn hello_job(kind: Kind) {
    let s = Stack::start(kind, Options::default()).await;
    let p = project(
        &[
            "echo hello; echo oops >&2; cp /src/data.txt /build/result.txt",
            "echo second; echo again >&2",
        ],
        &[("data.txt", "42\n")],
    );
    let out = s.rai(0, &["-p", p.path().to_str().unwrap()]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(text(&out.stdout), "hello\nsecond\n");
    assert_eq!(job_stderr(&stderr), "oops\nagain\n", "{stderr}");
    let mut at = 0;
    for line in [
        "✱ Checking your authentication credentials.",
        "✱ Preparing your project directory for upload.",
        "✱ Uploading your project directory...",
        "✱ Your job request has been posted to the queue.",
        "✱ Your job is running on",
        "✱ Your /build folder is stored: `rai download",
        "succeeded.",
    ] {
        let found = stderr[at..]
            .find(line)
            .unwrap_or_else(|| panic!("{line:?} missing or out of order in:\n{stderr}"));
        at += found + line.len();
    }
    let id = job_id(&stderr);
    let dest = s.home(0).join("out");
    let out = s
        .rai(0, &["download", &id, "-o", dest.to_str().unwrap()])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(dest.join("result.txt")).unwrap(),
        "42\n"
    );
    // Into a folder that is not empty: refused without --force; with it, nothing there is replaced.
    std::fs::write(dest.join("result.txt"), "edited").unwrap();
    let out = s
        .rai(0, &["download", &id, "-o", dest.to_str().unwrap()])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("is not empty; rai download writes only into a new or empty folder"),
        "{}",
        text(&out.stderr)
    );
    let out = s
        .rai(
            0,
            &["download", &id, "-o", dest.to_str().unwrap(), "--force"],
        )
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Left out 1 entries whose paths were already taken"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("result.txt")).unwrap(),
        "edited"
    );
    let out = s.rai(0, &["history"]).await;
    assert!(text(&out.stdout).contains(&id), "{}", text(&out.stdout));
    // `rai history | head -1`: a reader that goes away ends rai quietly, without a panic.
    let (status, stderr) = s.rai_into_closed_pipe(0, &["history"]);
    assert!(
        status.success() && !stderr.contains("panicked"),
        "{status}: {stderr}"
    );
    assert!(s.containers_left().is_empty());
}

async fn failing_job(kind: Kind) {
    let s = Stack::start(kind, Options::default()).await;
    let p = project(&["echo before", "exit 3", "echo never"], &[]);
    let out = s
        .rai(0, &["submit", "-p", p.path().to_str().unwrap()])
        .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "before\n");
    assert!(text(&out.stderr).contains("failed with exit code 3"));
}

async fn detach_then_follow_from_another_process(kind: Kind) {
    let s = Stack::start(kind, Options::default()).await;
    let p = project(
        &["for i in 1 2 3 4 5 6; do echo line $i; sleep 0.5; done"],
        &[],
    );
    let out = s
        .rai(0, &["submit", "--detach", "-p", p.path().to_str().unwrap()])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let id = job_id(&text(&out.stderr));
    // Attach mid-job: once the job has printed something.
    let first = s.spawn_rai(0, &["logs", "-f", &id]);
    first
        .wait_stderr("Your job is running", Duration::from_secs(60))
        .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let late = s.spawn_rai(0, &["logs", "-f", &id]);
    let expected = "line 1\nline 2\nline 3\nline 4\nline 5\nline 6\n";
    for follower in [first, late] {
        let (code, stdout, stderr) = follower.finish().await;
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(stdout, expected);
    }
    let out = s.rai(0, &["status", &id]).await;
    let status = text(&out.stdout);
    assert!(
        status.contains("status:   succeeded") && status.contains("exit:     0"),
        "{status}"
    );
}

/// A stack with a long job running, followed by `rai -p` as student 0; returns the job id too.
async fn long_job_running(
    kind: Kind,
) -> (
    Stack,
    rai_testkit::stack::Running,
    String,
    tempfile::TempDir,
) {
    let s = Stack::start(kind, Options::default()).await;
    let p = project(&["echo started; sleep 60"], &[]);
    let submit = s.spawn_rai(0, &["-p", p.path().to_str().unwrap()]);
    submit
        .wait_stderr("Your job is running", Duration::from_secs(60))
        .await;
    let id = job_id(&submit.stderr.lock().unwrap());
    (s, submit, id, p)
}

async fn cancel_from_another_process(kind: Kind) {
    let (s, submit, id, _project) = long_job_running(kind).await;
    let out = s.rai(0, &["cancel", &id]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (code, stdout, stderr) = submit.finish().await;
    assert_eq!(code, Some(143), "{stderr}");
    assert_eq!(stdout, "started\n");
    assert!(stderr.contains("cancelled by student0"), "{stderr}");
}

async fn ctrl_c_detaches_and_says_how_to_come_back(kind: Kind) {
    let (s, submit, id, _project) = long_job_running(kind).await;
    submit.signal("INT");
    let (code, _, stderr) = submit.finish().await;
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "job {id} is still running; reattach with `rai logs -f {id}`; stop it with `rai cancel {id}`"
        )),
        "{stderr}"
    );
    // Detaching left the job running.
    let out = s.rai(0, &["status", &id]).await;
    assert!(
        text(&out.stdout).contains("status:   running"),
        "{}",
        text(&out.stdout)
    );
    assert!(s.rai(0, &["cancel", &id]).await.status.success());
}

async fn two_workers_thirty_jobs_six_clients(kind: Kind) {
    let s = std::sync::Arc::new(
        Stack::start(
            kind,
            Options {
                workers: 2,
                users: 6,
                ..Options::default()
            },
        )
        .await,
    );
    let clients: Vec<_> = (0..6)
        .map(|user| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for j in 0..5 {
                    let token = format!("u{user}-j{j}");
                    let p = project(
                        &[&format!(
                            "for i in 1 2 3 4 5 6 7 8 9 10; do echo {token} $i; done; echo {token} err >&2"
                        )],
                        &[],
                    );
                    let out = s.rai(user, &["-p", p.path().to_str().unwrap()]).await;
                    let stderr = text(&out.stderr);
                    assert_eq!(out.status.code(), Some(0), "{token}: {stderr}");
                    let expected: String = (1..=10).map(|i| format!("{token} {i}\n")).collect();
                    assert_eq!(text(&out.stdout), expected, "{token}");
                    assert_eq!(job_stderr(&stderr), format!("{token} err\n"), "{token}");
                    let worker = stderr
                        .lines()
                        .find_map(|l| l.strip_prefix("✱ Your job is running on "))
                        .unwrap_or_else(|| panic!("{token}: no running line in {stderr}"))
                        .trim_end_matches('.')
                        .to_string();
                    ids.push((job_id(&stderr), worker));
                }
                ids
            })
        })
        .collect();
    let mut all = HashSet::new();
    let mut ran_on = HashSet::new();
    for (user, c) in clients.into_iter().enumerate() {
        let jobs = c.await.unwrap();
        // Each student's history holds exactly their own five jobs, from the stored records.
        let out = s.rai(user, &["history", "-n", "50"]).await;
        let history = text(&out.stdout);
        for (id, worker) in &jobs {
            assert!(history.contains(id.as_str()), "{id} not in:\n{history}");
            ran_on.insert(worker.clone());
        }
        assert_eq!(
            history.lines().filter(|l| l.contains("succeeded")).count(),
            5,
            "{history}"
        );
        all.extend(jobs.into_iter().map(|(id, _)| id));
    }
    assert_eq!(all.len(), 30);
    let workers: HashSet<_> = s.workers.iter().map(|w| w.name.clone()).collect();
    assert_eq!(ran_on, workers, "both workers took jobs");
    assert!(s.containers_left().is_empty());
}

async fn killed_worker_job_is_rerun_elsewhere(kind: Kind) {
    let mut s = Stack::start(
        kind,
        Options {
            workers: 2,
            concurrency: 1,
            lease: "5s",
            ..Options::default()
        },
    )
    .await;
    let p = project(&["echo begin; sleep 4; echo end"], &[]);
    let submit = s.spawn_rai(0, &["-p", p.path().to_str().unwrap()]);
    let running = submit
        .wait_stderr("Your job is running on", Duration::from_secs(60))
        .await;
    let worker = running
        .trim_end_matches('.')
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !submit.stdout.lock().unwrap().contains("begin") {
        assert!(std::time::Instant::now() < deadline, "no output");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.kill9(&worker);
    let (code, stdout, stderr) = submit.finish().await;
    assert_eq!(code, Some(0), "{stderr}");
    let requeued = stderr
        .find("Your job was requeued")
        .unwrap_or_else(|| panic!("no requeued line in:\n{stderr}"));
    let rerun = stderr[requeued..]
        .find("Your job is running on")
        .unwrap_or_else(|| panic!("no rerun after requeued in:\n{stderr}"));
    assert!(
        !stderr[requeued + rerun..].contains(&worker),
        "the rerun ran on the killed worker:\n{stderr}"
    );
    // The first run's line, then the rerun's complete output.
    assert_eq!(stdout, "begin\nbegin\nend\n");
}

async fn killed_between_end_and_ack_never_runs_twice(kind: Kind) {
    let mut s = Stack::start(
        kind,
        Options {
            concurrency: 1,
            lease: "4s",
            ..Options::default()
        },
    )
    .await;
    let mut redis = s.redis.connection().await;
    // Once the job runs, the workers' transactions are refused: the state update and `mark_done` (MULTI/EXEC)
    // fail as on a Redis hiccup; the end event (a script) and everything else go through.
    let acl = |rule: &str| {
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg("raid")
            .arg(rule)
            .clone()
    };
    let p = project(&["echo once; sleep 2"], &[]);
    let submit = s.spawn_rai(
        0,
        &[
            "submit",
            "--timeout",
            "60s",
            "-p",
            p.path().to_str().unwrap(),
        ],
    );
    let line = submit
        .wait_stderr("Your job is running on", Duration::from_secs(60))
        .await;
    let _: () = acl("-exec").query_async(&mut redis).await.unwrap();
    let (code, stdout, stderr) = submit.finish().await;
    assert_eq!(
        (code, stdout.as_str()),
        (Some(0), "once\n"),
        "{line}{stderr}"
    );
    let job = job_id(&stderr);
    // The end event is out; the worker is retrying its done mark, before the ack: kill -9 it there.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !s
        .worker_logs()
        .contains("cannot mark the job done; retrying")
    {
        assert!(std::time::Instant::now() < deadline, "{}", s.worker_logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let worker = s.workers[0].name.clone();
    s.kill9(&worker);
    let _: () = acl("+exec").query_async(&mut redis).await.unwrap();
    s.restart(&worker);
    // The message comes back after its lease; the worker finds the end already published and drops it.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !s
        .worker_logs()
        .contains("dropping a message for a job that already finished")
    {
        assert!(std::time::Instant::now() < deadline, "{}", s.worker_logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bus = rai_backends::events::EventBus::connect(s.redis.target(), Duration::from_secs(60))
        .await
        .unwrap();
    let events = bus.history(&job.parse().unwrap(), 0, 10_000).await.unwrap();
    let count = |kind: &str| {
        events
            .iter()
            .filter(|e| serde_json::to_value(&e.body).unwrap()["kind"] == kind)
            .count()
    };
    assert_eq!((count("end"), count("stdout")), (1, 1), "{events:?}");
    let out = s.rai(0, &["history"]).await;
    assert_eq!(text(&out.stdout).matches(&job).count(), 1, "one record");
    let queue = s.queue().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while queue.depth().await.unwrap() != rai_backends::queue::Depth::default() {
        assert!(
            std::time::Instant::now() < deadline,
            "the message was not acked"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn redis_restart_while_streaming(kind: Kind) {
    let mut s = Stack::start(kind, Options::default()).await;
    let p = project(
        &["i=1; while [ $i -le 300 ]; do echo line $i; i=$((i+1)); sleep 0.02; done"],
        &[],
    );
    let submit = s.spawn_rai(0, &["-p", p.path().to_str().unwrap()]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !submit.stdout.lock().unwrap().contains("line 20\n") {
        assert!(std::time::Instant::now() < deadline, "no output");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.redis.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    s.redis.restart();
    let (code, stdout, stderr) = submit.finish().await;
    assert_eq!(code, Some(0), "{stderr}");
    let expected: String = (1..=300).map(|i| format!("line {i}\n")).collect();
    assert!(stdout == expected, "a gap or a duplicate:\n{stdout}");
}

on_both_stacks!(
    hello_job,
    killed_between_end_and_ack_never_runs_twice,
    failing_job,
    detach_then_follow_from_another_process,
    cancel_from_another_process,
    ctrl_c_detaches_and_says_how_to_come_back,
    two_workers_thirty_jobs_six_clients,
    killed_worker_job_is_rerun_elsewhere,
    redis_restart_while_streaming,
);

/// Refusals come back from the worker: rai exits with the rejected code and says why.
async fn refused_before_running(s: &Stack, user: usize, p: &Path) -> String {
    let out = s.rai(user, &["-p", p.to_str().unwrap()]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert_eq!(text(&out.stdout), "", "a refused job runs nothing");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_revoked_students_are_told_by_the_gateway() {
    let mut s = Stack::start(
        Kind::Local,
        Options {
            users: 2,
            revoked: &[1],
            ..Options::default()
        },
    )
    .await;
    let p = project(&["echo should not run"], &[]);
    let stranger = s.stranger("mallory");
    let stderr = refused_before_running(&s, stranger, p.path()).await;
    assert!(
        stderr.contains("rejected") && stderr.contains("unknown user \"mallory\""),
        "{stderr}"
    );
    let stderr = refused_before_running(&s, 1, p.path()).await;
    assert!(
        stderr.contains("rejected") && stderr.contains("student1") && stderr.contains("revoked"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_over_a_limit_is_refused_naming_the_limit() {
    let s = Stack::start(Kind::Local, Options::default()).await;
    let p = project(&["echo should not run"], &[]);
    let build = std::fs::read_to_string(p.path().join("rai_build.yml"))
        .unwrap()
        .replace(
            "limits: { time: 60s }",
            "limits: { time: 60s, memory: 100g }",
        );
    std::fs::write(p.path().join("rai_build.yml"), build).unwrap();
    let stderr = refused_before_running(&s, 0, p.path()).await;
    assert!(
        stderr.contains("rejected: memory limit 100g exceeds this worker's maximum of 8g"),
        "{stderr}"
    );
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
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rai"))
        .args(["-p", p.path().to_str().unwrap()])
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "rai_build.yml:4:3: commands: missing key \"build\": list the commands to run"
        ) && err.contains("; \"biuld\" at line 4 looks like a misspelling of it"),
        "{err}"
    );
}

/// The gateway a follower uses is killed mid-stream, then Redis restarts: the follower reconnects to the other
/// gateway with `Last-Event-ID` and sees every event exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_resumes_on_another_gateway_through_a_kill_and_a_redis_restart() {
    let mut s = Stack::start(
        Kind::Local,
        Options {
            gateways: 2,
            ..Options::default()
        },
    )
    .await;
    let p = project(
        &["for i in $(seq 1 60); do echo line $i; sleep 0.1; done"],
        &[],
    );
    let out = s
        .rai(0, &["submit", "--detach", "-p", p.path().to_str().unwrap()])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let job: rai_common::JobId = job_id(&text(&out.stderr)).parse().unwrap();
    let client = crate::client_of(&s, 0);
    let mut r = Followed {
        events: client.follow(job, 0),
        seqs: Vec::new(),
        lines: String::new(),
    };
    while !r.lines.contains("line 10\n") {
        r.next().await.unwrap();
    }
    s.kill_gateway(0);
    while !r.lines.contains("line 20\n") {
        r.next().await.unwrap();
    }
    s.redis.restart();
    while let Some(e) = r.next().await {
        if e.is_end() {
            break;
        }
    }
    let expected: String = (1..=60).map(|i| format!("line {i}\n")).collect();
    assert_eq!(r.lines, expected);
    assert_eq!(r.seqs, (1..=r.seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(client.gateway().as_str(), format!("{}/", s.gateways[1].url));
}

/// What a follower received so far.
struct Followed {
    events: rai_client::client::JobEvents,
    seqs: Vec<u64>,
    lines: String,
}

impl Followed {
    async fn next(&mut self) -> Option<rai_common::event::Event> {
        let e = tokio::time::timeout(Duration::from_secs(120), self.events.next())
            .await
            .expect("an event within two minutes")
            .map(|e| e.expect("the follower rides through"));
        if let Some(e) = &e {
            self.seqs.push(e.seq);
            if let rai_common::event::EventBody::Stdout { data } = &e.body {
                self.lines.push_str(data);
            }
        }
        e
    }
}

/// The 2017-2018 client picked `rai_<cpu.architecture>` when no queue was named; rai does too, says so, and
/// says what to do when the course has no such queue. `-q` on any side of the command names the course's queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_is_inferred_from_the_architecture_as_in_2017() {
    let s = Stack::start(Kind::Local, Options::default()).await;
    let p = project(&["echo ran on the named queue"], &[]);
    let build = std::fs::read_to_string(p.path().join("rai_build.yml"))
        .unwrap()
        .replace(
            "resources:\n",
            "resources:\n  cpu:\n    architecture: amd64\n",
        );
    std::fs::write(p.path().join("rai_build.yml"), build).unwrap();
    let stderr = refused_before_running(&s, 0, p.path()).await;
    assert!(
        stderr.contains("✱ Using the queue rai_amd64, from resources.cpu.architecture")
            && stderr.contains("there is no queue \"rai_amd64\" here")
            && stderr.contains("the queue rai_amd64 was inferred from resources.cpu.architecture"),
        "{stderr}"
    );
    let out = s
        .rai(0, &["-p", p.path().to_str().unwrap(), "-q", &s.queue])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "ran on the named queue\n");
}

/// `commands.build_image` where the course's policy does not allow it: refused by the gateway before anything is
/// queued, naming the policy and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_image_is_refused_before_it_is_queued_where_not_allowed() {
    let s = Stack::start(Kind::Local, Options::default()).await;
    let p = project(
        &["echo never"],
        &[("Dockerfile", "FROM rai-test/busybox:latest\n")],
    );
    std::fs::write(
        p.path().join("rai_build.yml"),
        "rai:\n  version: 0.2\ncommands:\n  build_image:\n    image_name: course/lab\n  build:\n    - echo never\n",
    )
    .unwrap();
    let stderr = refused_before_running(&s, 0, p.path()).await;
    assert!(
        stderr.contains("✱ Job rejected")
            && stderr.contains("raid.build_images.allowed")
            && stderr.contains("name a ready image in rai.image"),
        "{stderr}"
    );
    assert!(!stderr.contains("posted to the queue"), "{stderr}");
}

/// The 2017 class client's `--submit`, through the real binary: judged by the gateway (a missing required file is
/// named), listed by `rai submitted`, ranked by `rai ranking`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graded_submission_from_the_command_line() {
    let (_course, extra) = rai_testkit::stack::course_file(
        "  m1:\n    due: {due}\n    required_files: [report.pdf]\n    ranking: { command: 1 }\n",
    );
    let s = Stack::start(
        Kind::Local,
        Options {
            gateway_extra: extra,
            ..Options::default()
        },
    )
    .await;
    let p = project(&["echo graded"], &[]);
    let dir = p.path().to_str().unwrap();
    let out = s.rai(0, &["-p", dir, "--submit=m1"]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("m1 needs report.pdf in your project folder; missing: report.pdf"),
        "{stderr}"
    );
    std::fs::write(p.path().join("report.pdf"), "%PDF-1.4\n").unwrap();
    let out = s.rai(0, &["-p", dir, "--submit=m1"]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("✱ Submitted for m1, on time."), "{stderr}");
    assert_eq!(text(&out.stdout), "graded\n");
    let out = s.rai(0, &["submitted", "m1"]).await;
    let listed = text(&out.stdout);
    assert!(
        listed.contains("on time") && listed.contains("succeeded") && listed.contains("← counts"),
        "{listed}"
    );
    let out = s.rai(0, &["ranking", "m1"]).await;
    let board = text(&out.stdout);
    assert!(board.contains("-->") && board.contains("team"), "{board}");
}

/// A finished job's log moves to the store; once Redis lets it go, `rai logs` and a follower resuming from a
/// `seq` (Last-Event-ID) get the same events from the stored copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_jobs_log_is_served_from_the_store_once_redis_lets_it_go() {
    let s = Stack::start(
        Kind::Local,
        Options {
            events_extra: "  live_retention: 1s\n",
            ..Options::default()
        },
    )
    .await;
    let p = project(&["echo one", "echo two", "echo three"], &[]);
    let out = s.rai(0, &["-p", p.path().to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "one\ntwo\nthree\n");
    let id = job_id(&text(&out.stderr));
    let stored = s
        .dir
        .path()
        .join(format!("store/logs/student0/{id}.jsonl.zst"));
    // The worker stores the log after the end event the client stopped at, before it acks the job.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !stored.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no stored log at {}:\n{}",
            stored.display(),
            s.worker_logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Redis lets the log go a second after it was stored.
    let mut redis = s.redis.connection().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let live: u64 = redis::cmd("EXISTS")
            .arg(format!("rai:job:{id}:seq"))
            .arg(format!("rai:job:{id}:log"))
            .query_async(&mut redis)
            .await
            .unwrap();
        if live == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "Redis kept the log");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let out = s.rai(0, &["logs", &id]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "one\ntwo\nthree\n");

    // A follower that had seen up to the event carrying "one" resumes after it, from the store.
    let client = crate::client_of(&s, 0);
    let job: rai_common::JobId = id.parse().unwrap();
    let all = client.events_so_far(&job).await.unwrap();
    assert!(all.last().unwrap().is_end());
    let one = all
        .iter()
        .find(|e| matches!(&e.body, rai_common::event::EventBody::Stdout { data } if data.contains("one")))
        .unwrap()
        .seq;
    let mut follow = client.follow(job, one);
    let mut resumed = Vec::new();
    while let Some(e) = follow.next().await {
        resumed.push(e.unwrap());
    }
    assert_eq!(resumed.first().unwrap().seq, one + 1);
    assert_eq!(
        resumed,
        all[all.iter().position(|e| e.seq == one).unwrap() + 1..]
    );
}

/// A graded job's scores through the TLS gateway: `rai results` shows a student the visible tests only (hidden and
/// after-published ones are not theirs yet), staff every test; `rai history --json` carries the same cut, so no
/// hidden test leaks through the record; a job without scores says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_from_results_json_are_shown_as_the_course_lets_each_viewer_see_them() {
    let (_course, extra) = rai_testkit::stack::course_file(
        "  m1:\n    due: {due}\n    results:\n      required: true\n      publish: 2099-01-01 00:00\n",
    );
    let s = Stack::start(
        Kind::Local,
        Options {
            gateway_extra: extra,
            users: 3,
            staff: &[1],
            teams: &["a", "a", "b"],
            ..Options::default()
        },
    )
    .await;
    let results = r#"{"tests": [{"name": "correct", "score": 6, "max_score": 6, "status": "passed"}, {"name": "secret-input", "score": 1, "max_score": 2, "visibility": "hidden"}, {"name": "speedup", "score": 0, "max_score": 2, "visibility": "after_published"}]}"#;
    let p = project(
        &[&format!("printf '%s' '{results}' > /build/results.json")],
        &[],
    );
    let out = s
        .rai(0, &["-p", p.path().to_str().unwrap(), "--submit=m1"])
        .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("Scores read from /build/results.json (3 tests)"),
        "{stderr}"
    );
    let id = job_id(&stderr);

    let out = s.rai(0, &["results", &id]).await;
    let student = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(student.contains("score: 7 / 10"), "{student}");
    assert!(
        student.contains("correct") && student.contains("6 / 6"),
        "{student}"
    );
    assert!(
        !student.contains("secret-input") && !student.contains("speedup"),
        "{student}"
    );
    // Without an id: the newest job with scores.
    assert_eq!(text(&s.rai(0, &["results"]).await.stdout), student);
    let history = text(&s.rai(0, &["history", "--json"]).await.stdout);
    assert!(history.contains("correct"), "{history}");
    assert!(
        !history.contains("secret-input") && !history.contains("speedup"),
        "{history}"
    );

    let staff = text(&s.rai(1, &["results", &id]).await.stdout);
    assert!(
        staff.contains("correct") && staff.contains("secret-input") && staff.contains("speedup"),
        "{staff}"
    );
    // A student of another team is refused, as if the job did not exist, and sees nothing of it.
    let out = s.rai(2, &["results", &id]).await;
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("no job {id} of yours")),
        "{stderr}"
    );
    assert!(!text(&out.stdout).contains("correct"));
    // The total in the team's list and in the grade export.
    let submitted = text(&s.rai(0, &["submitted", "m1"]).await.stdout);
    assert!(
        submitted.contains("SCORE") && submitted.contains("7/10"),
        "{submitted}"
    );
    let csv = text(&s.rai(1, &["submissions", "m1", "--csv"]).await.stdout);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "team,user,job,accepted_at,late,status,score,max_score,original_score,ranked_seconds,counts,regrade_of"
        ),
        "{csv}"
    );
    assert!(
        lines
            .next()
            .is_some_and(|row| row.contains(&format!("{id},")) && row.contains(",succeeded,7,10,,")),
        "{csv}"
    );

    // A required-results assignment fails a run without them, saying why.
    let p = project(&["echo no scores"], &[]);
    let out = s
        .rai(0, &["-p", p.path().to_str().unwrap(), "--submit=m1"])
        .await;
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("requires the job's scores in /build/results.json"),
        "{stderr}"
    );
    let out = s.rai(0, &["results", &job_id(&stderr)]).await;
    assert!(
        text(&out.stdout).contains("the job kept no scores"),
        "{}",
        text(&out.stdout)
    );
}
