//! A graded term through the `rai` binary, as students and staff use it, over TLS to the gateway and TLS with
//! deploy/redis's ACL users to Redis: scores from `/build/results.json` (a student sees what the course lets them,
//! staff everything), an extension, the Canvas export, a job that reached the dead letters (its owner told, staff
//! send it back or drop it), usage, and the dashboard's pages for all of it in Chromium.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use rai_testkit::stack::{Kind, Options, Stack, job_id, project, text};

use crate::dashboard::{body, browser, link};

const ALICE: usize = 0;
const BOB: usize = 1;
const CAROL: usize = 2;
const TOM: usize = 3;

/// `rai` as `user`: its exit code, stdout and stderr.
async fn rai(s: &Stack, user: usize, args: &[&str]) -> (Option<i32>, String, String) {
    let out = s.rai(user, args).await;
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Receives and releases the stack's messages, as workers that crash mid-job would, until `job` is in the dead
/// letters.
async fn crash_until_dead(s: &Stack, job: &str) {
    let queue = s.queue().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let dead = queue.dead_letters(100).await.unwrap();
        if dead.iter().any(|d| d.body.contains(job)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{job} never reached the dead letters"
        );
        for lease in queue.receive(1, Duration::from_secs(1)).await.unwrap() {
            queue.release(&lease).await.unwrap();
        }
    }
}

/// Waits until `rai status JOB` as `user` prints `what`.
async fn wait_status(s: &Stack, user: usize, job: &str, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, out, err) = rai(s, user, &["status", job]).await;
        if out.contains(what) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "`rai status {job}` never said {what:?}:\n{out}{err}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_graded_term_through_the_cli_and_the_dashboard() {
    let past = (chrono::Utc::now() - chrono::Duration::minutes(1)).format("%Y-%m-%d %H:%M:%S");
    let (course, extra) = rai_testkit::stack::course_file(&format!(
        "  m1:\n    title: Milestone 1\n    due: {{due}}\n    build_file: m1_build.yml\n    results: {{ required: true }}\n  m2:\n    due: {past}\nextensions:\n  m2:\n    student2: 1h\n"
    ));
    // The course's grader for m1; its first version trusts the scores the student's project carries (a bug).
    let grader = course.path().join("m1_build.yml");
    let write_grader = |command: &str| {
        std::fs::write(
            &grader,
            format!(
                "rai:\n  version: 0.2\n  image: {}\ncommands:\n  build:\n    - {}\n",
                rai_testkit::image(),
                serde_json::to_string(command).unwrap()
            ),
        )
        .unwrap()
    };
    write_grader("cp /src/results.json /build/results.json");
    // The sweep (and with it the dead-letter check) runs every 10 s.
    let extra: &'static str =
        Box::leak(format!("{extra}  uploads: {{ expire: 10s }}\n").into_boxed_str());
    let mut s = Stack::start(
        Kind::Local,
        Options {
            workers: 0,
            users: 4,
            staff: &[TOM],
            teams: &["a", "a", "c", ""],
            gateway_extra: extra,
            ..Options::default()
        },
    )
    .await;
    assert!(s.gateways[0].url.starts_with("https://"));

    // Dead letters: with no worker to run it, carol's job is taken and dropped by "crashing workers" until the queue
    // gives up on it; she is told, staff see it, and it runs once sent back.
    let p = project(&["echo ran again"], &[]);
    let (code, _, err) = rai(
        &s,
        CAROL,
        &["submit", "--detach", "-p", p.path().to_str().unwrap()],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    let stuck = job_id(&err);
    crash_until_dead(&s, &stuck).await;
    let status = wait_status(&s, CAROL, &stuck, "could not be run").await;
    assert!(status.contains("Course staff are told"), "{status}");
    let (code, out, err) = rai(&s, TOM, &["deadletters"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&stuck) && out.contains("student2 (team c)"),
        "{out}"
    );
    let (code, _, err) = rai(&s, CAROL, &["deadletters"]).await;
    assert_ne!(code, Some(0));
    assert!(err.contains("for course staff"), "{err}");
    // Nor may she send her own job back or drop it.
    for action in ["--requeue", "--drop"] {
        let (code, _, err) = rai(&s, CAROL, &["deadletters", action, &stuck]).await;
        assert_ne!(code, Some(0));
        assert!(err.contains("for course staff"), "{action}: {err}");
    }
    // A second one is dropped: it ends as an error that says who dropped it.
    let (_, _, err) = rai(
        &s,
        CAROL,
        &["submit", "--detach", "-p", p.path().to_str().unwrap()],
    )
    .await;
    let dropped = job_id(&err);
    crash_until_dead(&s, &dropped).await;
    let (code, _, err) = rai(&s, TOM, &["deadletters", "--drop", &dropped]).await;
    assert_eq!(code, Some(0), "{err}");
    let status = wait_status(&s, CAROL, &dropped, "error").await;
    assert!(
        status.contains("dropped by student3 from the dead letters"),
        "{status}"
    );
    s.add_worker();
    let (code, _, err) = rai(&s, TOM, &["deadletters", "--requeue", &stuck]).await;
    assert_eq!(code, Some(0), "{err}");
    wait_status(&s, CAROL, &stuck, "succeeded").await;
    let (_, out, _) = rai(&s, TOM, &["deadletters"]).await;
    assert!(out.contains("No dead letters"), "{out}");
    let (code, out, err) = rai(&s, CAROL, &["logs", &stuck]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("ran again"), "{out}");

    // An extension: m2 was due a minute ago; carol has an hour more, alice none.
    let m2 = project(&["echo m2"], &[]);
    let (code, _, err) = rai(
        &s,
        ALICE,
        &["-p", m2.path().to_str().unwrap(), "--submit=m2"],
    )
    .await;
    assert_ne!(code, Some(0));
    assert!(
        err.contains("m2 was due") && err.contains("does not accept late"),
        "{err}"
    );
    let (code, _, err) = rai(
        &s,
        CAROL,
        &["-p", m2.path().to_str().unwrap(), "--submit=m2"],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    let (_, out, _) = rai(&s, CAROL, &["submitted", "m2"]).await;
    assert!(
        out.contains("m2: due") && out.contains("(extended for student2)"),
        "{out}"
    );
    let (code, out, err) = rai(&s, TOM, &["extensions", "m2"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("student2  user  due"), "{out}");
    let (code, _, err) = rai(&s, CAROL, &["extensions", "m2"]).await;
    assert_ne!(code, Some(0), "{err}");

    // Scores: alice's run writes results with a visible and a hidden test; her teammate sees the total and the
    // visible test, staff see both.
    let results = r#"{"score": 7, "max_score": 10, "tests": [{"name": "vector add", "score": 7, "max_score": 7, "visibility": "visible"}, {"name": "secret sizes", "score": 0, "max_score": 3, "visibility": "hidden"}]}"#;
    let m1 = project(
        &["cp /src/results.json /build/results.json"],
        &[("results.json", results)],
    );
    let (code, _, err) = rai(
        &s,
        ALICE,
        &["-p", m1.path().to_str().unwrap(), "--submit=m1"],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    let graded = job_id(&err);
    // Results are required: carol's run without them fails, saying why.
    let none = project(&["echo no results"], &[]);
    let (code, _, err) = rai(
        &s,
        CAROL,
        &["-p", none.path().to_str().unwrap(), "--submit=m1"],
    )
    .await;
    assert_ne!(code, Some(0));
    assert!(err.contains("results.json"), "{err}");
    let (code, out, err) = rai(&s, BOB, &["results", &graded]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("score: 7 / 10") && out.contains("vector add"),
        "{out}"
    );
    assert!(!out.contains("secret sizes"), "{out}");
    let (_, out, _) = rai(&s, TOM, &["results", &graded]).await;
    assert!(out.contains("secret sizes"), "{out}");
    let (_, out, _) = rai(&s, BOB, &["submitted", "m1"]).await;
    assert!(out.contains("7/10") && out.contains("counts"), "{out}");

    // Grades out to Canvas, from Canvas's own export.
    let export = s.home(TOM).join("canvas.csv");
    std::fs::write(
        &export,
        "Student,ID,SIS User ID,SIS Login ID,Section,Milestone 1 (4401)\n    Points Possible,,,,,10\n\"Doe, Alice\",11,901,student0,AL1,\n\"Roe, Bob\",12,902,student1,AL1,\n\"Wu, Carol\",13,903,student2,AL2,\n",
    )
    .unwrap();
    let (code, out, err) = rai(
        &s,
        TOM,
        &["submissions", "m1", "--canvas", export.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "Student,ID,SIS User ID,SIS Login ID,Section,Milestone 1 (4401)\n\"Doe, Alice\",11,901,student0,AL1,7\n\"Roe, Bob\",12,902,student1,AL1,7\n\"Wu, Carol\",13,903,student2,AL2,\n"
    );
    assert!(err.contains("2 student(s) graded"), "{err}");

    // Usage: staff see everyone's, a student their own.
    let (code, out, err) = rai(&s, TOM, &["usage", "--by", "user", "--csv"]).await;
    assert_eq!(code, Some(0), "{err}");
    let users: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(users, ["student0", "student2"], "{out}");
    let carol_jobs: u64 = out
        .lines()
        .find(|l| l.starts_with("student2,"))
        .and_then(|l| l.split(',').nth(1))
        .unwrap()
        .parse()
        .unwrap();
    // The requeued job, the dropped one (an error), m2 and the failed m1.
    assert_eq!(carol_jobs, 4, "{out}");
    let (_, out, _) = rai(&s, CAROL, &["usage", "--by", "day"]).await;
    assert!(
        out.contains("DAY") && out.lines().last().unwrap().starts_with("total"),
        "{out}"
    );
    let (_, out, _) = rai(&s, CAROL, &["usage"]).await;
    assert!(!out.contains("student0"), "{out}");

    // The dashboard, in Chromium over HTTPS (HTTP/2): the assignment's scores and histogram, usage, dead letters.
    let b = browser(false).await;
    b.goto(&link(&s, TOM).await).await.unwrap();
    let url = |path: &str| format!("{}{path}", s.gateways[0].url);
    b.goto(&url("/ui/assignments/m1")).await.unwrap();
    let page = body(&b).await;
    assert!(
        page.contains("1 of 2 team(s) have a score") && page.contains("7 / 10"),
        "{page}"
    );
    let bars = b
        .find_all(Locator::Css("svg#histogram rect.bar"))
        .await
        .unwrap();
    assert_eq!(bars.len(), 10);
    let mut heights = Vec::new();
    for bar in &bars {
        heights.push(bar.attr("data-value").await.unwrap().unwrap());
    }
    assert_eq!(
        heights.iter().filter(|h| *h == "1").count(),
        1,
        "{heights:?}"
    );
    assert_eq!(
        bars[7].attr("data-value").await.unwrap().as_deref(),
        Some("1")
    );
    b.goto(&url("/ui/usage")).await.unwrap();
    let page = body(&b).await;
    assert!(
        page.contains("student2") && page.contains("GPU-hours per day"),
        "{page}"
    );
    assert_eq!(
        b.find_all(Locator::Css("svg.chart")).await.unwrap().len(),
        2
    );
    b.goto(&url("/ui/deadletters")).await.unwrap();
    assert!(
        body(&b).await.contains("No dead letters"),
        "{}",
        body(&b).await
    );
    // The page itself forbids anything but the gateway's own files.
    let csp = s
        .http()
        .get(url("/ui/usage"))
        .send()
        .await
        .unwrap()
        .headers()
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap().to_string());
    assert!(csp.unwrap_or_default().contains("default-src 'none'"));
    b.close().await.unwrap();

    // A regrade after the grader is fixed (the gateway rereads the build file): every counting submission runs
    // again from its stored upload; the summary names whose score changed; the CSV shows both scores.
    write_grader(r#"echo '{"score": 9, "max_score": 10}' > /build/results.json"#);
    let (code, _, err) = rai(&s, ALICE, &["regrade", "m1"]).await;
    assert_ne!(code, Some(0));
    assert!(err.contains("for course staff"), "{err}");
    let (code, out, err) = rai(&s, TOM, &["regrade", "m1"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        err.contains("2 submission(s) of m1 queued for a regrade"),
        "{err}"
    );
    assert!(
        out.contains("regraded: 2 done, 0 failed, 2 score(s) changed")
            && out.contains("a: 7 -> 9")
            && out.contains("c: - -> 9"),
        "{out}"
    );
    let (_, out, _) = rai(&s, TOM, &["submissions", "m1", "--csv"]).await;
    let team_a = out.lines().find(|l| l.starts_with("a,")).unwrap();
    let fields: Vec<&str> = team_a.split(',').collect();
    assert_eq!(fields[2], graded, "{out}");
    assert_eq!(
        (fields[6], fields[8]),
        ("9", "7"),
        "score, original_score: {out}"
    );
    let (_, out, _) = rai(&s, TOM, &["submissions", "m1", "--csv", "--every"]).await;
    let regrades: Vec<&str> = out
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(11).is_some_and(|r| !r.is_empty()))
        .collect();
    assert_eq!(regrades.len(), 2, "{out}");
    assert!(regrades.iter().any(|l| l.ends_with(&graded)), "{out}");
    // The student sees the regrade's score as theirs.
    let (_, out, _) = rai(&s, BOB, &["submitted", "m1"]).await;
    assert!(out.contains("9/10"), "{out}");
    // A team without a submission, and one whose upload is gone, are each named with the reason.
    // Sent as chunks (the client's default): the upload the regrade needs is the manifest.
    std::fs::remove_file(
        s.dir
            .path()
            .join("store")
            .join(rai_common::objects::manifest_key(
                "student0",
                &graded.parse().unwrap(),
            )),
    )
    .unwrap();
    let (code, _, err) = rai(
        &s,
        TOM,
        &["regrade", "m1", "--team", "a", "--team", "zz", "--detach"],
    )
    .await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("zz: not regraded: team zz has no submission for m1"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "a: not regraded: the upload of job {graded} is gone"
        )),
        "{err}"
    );
}
