//! A course's term through the gateway: graded submissions judged by the gateway's clock (moved here, not the
//! system's), required files, the instructor's build file, the team's submissions and the leaderboard.
//!
//! Over 450 lines: a course's term as one story (deadlines, extensions, teams, leaderboard) on one set-up.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rai_testkit::jobs::{end, text};
use reqwest::StatusCode;

use crate::gateway::{Course, PEOPLE, refused};

const LIMIT: Duration = Duration::from_secs(60);

fn at(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_around_a_due_time_are_on_time_late_or_refused() {
    let now = Utc::now();
    let course = format!(
        "course: test\ntime_zone: UTC\nassignments:\n  m1:\n    due: {}\n    late_until: {}\n  m2:\n    due: {}\n",
        at(now + chrono::Duration::minutes(2)),
        at(now + chrono::Duration::minutes(4)),
        at(now + chrono::Duration::minutes(2)),
    );
    let c = Course::start_term(false, Some((&course, &[])), PEOPLE, |_| {}).await;

    let on_time = c
        .submit_for("alice", "m1", &["echo first"], &[])
        .await
        .unwrap();
    assert!(
        on_time
            .note
            .as_deref()
            .unwrap_or_default()
            .starts_with("Submitted for m1, on time")
    );
    refused(
        c.submit_for("alice", "m9", &["echo x"], &[]).await,
        StatusCode::BAD_REQUEST,
        "there is no assignment \"m9\" in this course; its assignments are: m1, m2",
    );

    // Three minutes later by the gateway's clock: m1 takes it late, m2 refuses it, naming the due time. (The
    // workers' clocks are not moved: an acceptance more than five minutes ahead of them would be refused.)
    c.gateway.clock.set_offset(chrono::Duration::minutes(3));
    let late = c
        .submit_for("bob", "m1", &["echo second"], &[])
        .await
        .unwrap();
    assert!(
        late.note
            .as_deref()
            .unwrap_or_default()
            .starts_with("Submitted for m1, marked late")
    );
    assert!(late.accepted_at > on_time.accepted_at + chrono::Duration::seconds(179));
    let due = (now + chrono::Duration::minutes(2))
        .format("%Y-%m-%d %H:%M")
        .to_string();
    refused(
        c.submit_for("alice", "m2", &["echo x"], &[]).await,
        StatusCode::FORBIDDEN,
        &format!("m2 was due {due} UTC and this course does not accept late submissions"),
    );
    // Four and a half minutes later: m1's late window has closed too.
    c.gateway.clock.set_offset(chrono::Duration::seconds(270));
    refused(
        c.submit_for("alice", "m1", &["echo x"], &[]).await,
        StatusCode::FORBIDDEN,
        "late submissions closed",
    );

    for job in [on_time.job, late.job] {
        assert_eq!(end(&c.h.events(job, LIMIT).await).0, "succeeded");
    }
    // alice and bob are team a: either sees both, the on-time one counting; carol (team c) sees none of them.
    let subs = c
        .client("bob")
        .submissions(Some("m1"), None)
        .await
        .unwrap()
        .submissions;
    assert_eq!(subs.len(), 2, "{subs:?}");
    assert_eq!(
        (subs[0].record.job, subs[0].record.late, subs[0].counts),
        (late.job, true, false)
    );
    assert_eq!(
        (subs[1].record.job, subs[1].record.late, subs[1].counts),
        (on_time.job, false, true)
    );
    assert_eq!(subs[1].record.user, "alice");
    assert_eq!(
        subs[1].status,
        Some(rai_common::event::JobStatus::Succeeded)
    );
    assert!(
        c.client("carol")
            .submissions(None, None)
            .await
            .unwrap()
            .submissions
            .is_empty()
    );
    refused(
        c.client("carol").submissions(None, Some("a")).await,
        StatusCode::FORBIDDEN,
        "your own team's submissions",
    );
    // Staff see every team's.
    assert_eq!(
        c.client("tom")
            .submissions(Some("m1"), None)
            .await
            .unwrap()
            .submissions
            .len(),
        2
    );
    // Staff histories: a team's, everyone's; a student may not list everyone's.
    use rai_client::client::Whose;
    let team_a = c
        .client("tom")
        .history_of(Whose::Team("a"), 10)
        .await
        .unwrap();
    assert_eq!(team_a.len(), 2);
    assert!(team_a.iter().all(|r| r.user == "alice" || r.user == "bob"));
    assert_eq!(
        team_a[0].id,
        late.job.to_string(),
        "newest first across users"
    );
    assert_eq!(
        c.client("tom")
            .history_of(Whose::All, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    refused(
        c.client("carol").history_of(Whose::All, 10).await,
        StatusCode::FORBIDDEN,
        "only course staff",
    );
    refused(
        c.client("carol").history_of(Whose::Team("a"), 10).await,
        StatusCode::FORBIDDEN,
        "your own team's jobs",
    );
    // The course file is reread when it changes: a new assignment is open at once.
    let path = c.gateway.config.gateway.course.clone().unwrap();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "  m3:\n    due: {}\n",
        at(Utc::now() + chrono::Duration::days(1))
    ));
    std::fs::write(&path, text).unwrap();
    let m3 = c
        .submit_for("carol", "m3", &["echo m3"], &[])
        .await
        .unwrap();
    assert!(
        m3.note
            .unwrap_or_default()
            .starts_with("Submitted for m3, on time")
    );
    // The job record says what it was for.
    let records = c.client("alice").history(None, 5).await.unwrap();
    let record = records
        .iter()
        .find(|r| r.id == on_time.job.to_string())
        .unwrap();
    assert_eq!(
        (record.assignment.as_deref(), record.late),
        (Some("m1"), false)
    );
    c.h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_moves_one_students_or_one_teams_deadline() {
    let now = Utc::now();
    let due = now + chrono::Duration::minutes(2);
    let course = format!(
        "time_zone: UTC\nassignments:\n  m1:\n    due: {}\nextensions:\n  m1:\n    carol: 1h\n    a: {{ due: {} }}\n    nobody: 2h\n",
        at(due),
        at(now + chrono::Duration::minutes(3)),
    );
    let c = Course::start_term(false, Some((&course, &[])), PEOPLE, |_| {}).await;
    // Half a minute after the course's due time: carol (her own extension) and alice (team a's) are on time. (The
    // gateway's clock moves at most five minutes: workers refuse acceptances further ahead of their own.)
    c.gateway.clock.set_offset(chrono::Duration::seconds(150));
    for user in ["carol", "alice"] {
        let accepted = c.submit_for(user, "m1", &["echo x"], &[]).await.unwrap();
        assert!(
            accepted
                .note
                .as_deref()
                .unwrap_or_default()
                .starts_with("Submitted for m1, on time"),
            "{user}: {accepted:?}"
        );
        assert_eq!(end(&c.h.events(accepted.job, LIMIT).await).0, "succeeded");
    }
    // Each sees their own deadline with their submissions.
    let carol = c
        .client("carol")
        .submissions(Some("m1"), None)
        .await
        .unwrap();
    assert_eq!(carol.deadlines.len(), 1);
    assert_eq!(
        carol.deadlines[0].deadline.extended_for.as_deref(),
        Some("carol")
    );
    assert_eq!(
        carol.deadlines[0].text,
        format!(
            "due {} UTC, no late submissions",
            (due + chrono::Duration::hours(1)).format("%Y-%m-%d %H:%M")
        )
    );
    let bob = c.client("bob").submissions(Some("m1"), None).await.unwrap();
    assert_eq!(bob.deadlines[0].deadline.extended_for.as_deref(), Some("a"));
    // Staff list them, each name looked up in the registry; students may not.
    let listed = c.client("tom").extensions("m1").await.unwrap();
    let grantees: Vec<_> = listed
        .extensions
        .iter()
        .map(|e| (e.name.as_str(), e.grantee))
        .collect();
    use rai_common::api::Grantee;
    assert_eq!(
        grantees,
        [
            ("a", Grantee::Team),
            ("carol", Grantee::User),
            ("nobody", Grantee::Unknown)
        ]
    );
    assert_eq!(listed.course.deadline.due.timestamp(), due.timestamp());
    refused(
        c.client("carol").extensions("m1").await,
        StatusCode::FORBIDDEN,
        "`rai submitted` shows your own deadline",
    );
    // Past team a's extension, alice is refused with her deadline and the course's.
    c.gateway.clock.set_offset(chrono::Duration::minutes(4));
    refused(
        c.submit_for("alice", "m1", &["echo x"], &[]).await,
        StatusCode::FORBIDDEN,
        &format!(
            "m1 was due {} UTC (an extension for a; the course's due time was {} UTC) and this course does not accept late submissions",
            (now + chrono::Duration::minutes(3)).format("%Y-%m-%d %H:%M"),
            due.format("%Y-%m-%d %H:%M")
        ),
    );
    // The course file is reread: team a's extension becomes alice's own hour; bob, without one now, is refused
    // with the course's due time alone.
    let path = c.gateway.config.gateway.course.clone().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let a_line = text
        .lines()
        .find(|l| l.starts_with("    a: "))
        .unwrap()
        .to_string();
    std::fs::write(&path, text.replace(&a_line, "    alice: 1h")).unwrap();
    let alice = c.submit_for("alice", "m1", &["echo y"], &[]).await.unwrap();
    assert!(alice.note.unwrap_or_default().contains("on time"));
    refused(
        c.submit_for("bob", "m1", &["echo x"], &[]).await,
        StatusCode::FORBIDDEN,
        &format!(
            "m1 was due {} UTC and this course does not accept late submissions",
            due.format("%Y-%m-%d %H:%M")
        ),
    );
    assert_eq!(end(&c.h.events(alice.job, LIMIT).await).0, "succeeded");
    c.h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_files_and_the_instructors_build_file() {
    let graded = format!(
        "rai:\n  image: {}\ncommands:\n  build:\n    - echo the course build runs\n    - cat /src/report.pdf\n",
        rai_testkit::image()
    );
    let course = format!(
        "time_zone: America/Chicago\nassignments:\n  final:\n    due: {}\n    required_files: [report.pdf]\n    build_file: final_build.yml\n",
        (Utc::now() + chrono::Duration::days(2)).format("%Y-%m-%d %H:%M")
    );
    let c = Course::start_term(
        false,
        Some((&course, &[("final_build.yml", &graded)])),
        PEOPLE,
        |_| {},
    )
    .await;
    refused(
        c.submit_for("alice", "final", &["echo the student build"], &[])
            .await,
        StatusCode::BAD_REQUEST,
        "final needs report.pdf in your project folder; missing: report.pdf. Add it and submit again",
    );
    let accepted = c
        .submit_for(
            "alice",
            "final",
            &["echo the student build"],
            &[("report.pdf", "%PDF-1.4 report\n")],
        )
        .await
        .unwrap();
    assert!(
        accepted
            .note
            .unwrap_or_default()
            .contains("the course's own build file runs it")
    );
    let events = c.h.events(accepted.job, LIMIT).await;
    assert_eq!(end(&events).0, "succeeded");
    assert_eq!(
        text(&events, "stdout"),
        "the course build runs\n%PDF-1.4 report\n"
    );
    // Every command was timed by the worker into the record.
    let records = c.client("alice").history(None, 5).await.unwrap();
    let record = records
        .iter()
        .find(|r| r.id == accepted.job.to_string())
        .unwrap();
    assert_eq!(record.commands.len(), 2);
    assert!(
        record
            .commands
            .iter()
            .all(|t| t.exit_code == Some(0) && t.seconds > 0.0)
    );
    c.h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graded_upload_is_unpacked_once_however_often_its_job_is_posted() {
    let course = format!(
        "time_zone: UTC\nassignments:\n  final:\n    due: {}\n    required_files: [report.pdf]\n",
        at(Utc::now() + chrono::Duration::days(1))
    );
    let scratch = tempfile::tempdir().unwrap();
    let scratch_dir = scratch.path().to_path_buf();
    let c = Course::start_term(false, Some((&course, &[])), PEOPLE, move |config| {
        config.gateway.scratch = Some(scratch_dir);
    })
    .await;
    let mut request = c
        .upload_files("alice", &["echo x"], &[("notes.txt", "no report\n")])
        .await
        .unwrap();
    request.assignment = Some("final".into());
    let signed = request.sign(&c.keys["alice"]);
    // The same signed job, posted again and again with fresh request signatures (issue 26).
    for _ in 0..5 {
        refused(
            c.client("alice").submit(&signed).await,
            StatusCode::BAD_REQUEST,
            "final needs report.pdf in your project folder; missing: report.pdf. Add it and submit again",
        );
    }
    assert_eq!(c.gateway.unpacked.unpacks(), 1);
    // In the gateway's own scratch folder, and nothing left there.
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
    c.h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leaderboard_ranks_by_worker_time_and_hides_other_teams_from_students() {
    let graded = format!(
        "rai:\n  image: {}\ncommands:\n  build:\n    - echo setup\n    - sh /src/work.sh\n",
        rai_testkit::image()
    );
    let course = format!(
        "time_zone: UTC\nassignments:\n  m4:\n    due: {}\n    build_file: m4_build.yml\n    ranking: {{ command: 2, better: lower }}\n",
        at(Utc::now() + chrono::Duration::hours(1))
    );
    let c = Course::start_term(
        false,
        Some((&course, &[("m4_build.yml", &graded)])),
        PEOPLE,
        |_| {},
    )
    .await;
    // Team a takes a second, team c is quick, tom's run fails (unranked).
    let slow = c
        .submit_for("alice", "m4", &["x"], &[("work.sh", "sleep 1\n")])
        .await
        .unwrap();
    let quick = c
        .submit_for("carol", "m4", &["x"], &[("work.sh", "true\n")])
        .await
        .unwrap();
    let failed = c
        .submit_for("tom", "m4", &["x"], &[("work.sh", "exit 3\n")])
        .await
        .unwrap();
    for job in [slow.job, quick.job, failed.job] {
        c.h.events(job, LIMIT).await;
    }
    let board = c.client("alice").ranking("m4", 10).await.unwrap();
    assert_eq!(
        (board.command, board.lower_is_better, board.unranked),
        (Some(2), true, 1)
    );
    assert_eq!(board.rows.len(), 2);
    assert_eq!((board.rows[0].rank, board.rows[0].yours), (1, false));
    assert!(
        board.rows[0].team.starts_with("team-"),
        "carol's team is anonymous to alice: {:?}",
        board.rows[0]
    );
    assert_eq!(
        (
            board.rows[1].rank,
            board.rows[1].team.as_str(),
            board.rows[1].yours
        ),
        (2, "a", true)
    );
    assert!(board.rows[1].seconds >= 1.0 && board.rows[0].seconds < board.rows[1].seconds);
    // Another team's job id would name them: only the team's own row carries one.
    assert_eq!(
        (board.rows[0].job, board.rows[1].job),
        (None, Some(slow.job))
    );
    // Staff see names and jobs; the anonymous name is stable.
    let staff = c.client("tom").ranking("m4", 10).await.unwrap();
    assert_eq!(staff.rows[0].team, "c");
    assert_eq!(staff.rows[0].job, Some(quick.job));
    let again = c.client("alice").ranking("m4", 1).await.unwrap();
    assert_eq!(again.rows[0].team, board.rows[0].team);
    assert_eq!(
        again.rows.len(),
        2,
        "a student's own row is shown even past -n"
    );
    c.h.drain_and_stop().await;
}

/// `ranking: { by: score }`: higher scores first, equal scores by the timed command; a run whose scores the viewer
/// may not see yet is not on that viewer's board (staff see it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leaderboard_may_rank_by_score_with_ties_by_time() {
    let graded = format!(
        "rai:\n  image: {}\ncommands:\n  build:\n    - echo setup\n    - sh /src/work.sh\n",
        rai_testkit::image()
    );
    let course = format!(
        "time_zone: UTC\nassignments:\n  m5:\n    due: {}\n    build_file: m5_build.yml\n    ranking: {{ by: score, command: 2 }}\n",
        at(Utc::now() + chrono::Duration::hours(1))
    );
    let c = Course::start_term(
        false,
        Some((&course, &[("m5_build.yml", &graded)])),
        PEOPLE,
        |_| {},
    )
    .await;
    let scored = |score: u32, extra: &str, sleep: &str| {
        format!(
            "{sleep}printf '{{\"score\": {score}, \"max_score\": 10{extra}}}' > /build/results.json\n"
        )
    };
    // Team a scores 8 slowly; tom (a team of one) 10; carol 8 quickly, with scores not shown to students yet.
    let runs = [
        ("alice", scored(8, "", "sleep 1\n")),
        ("tom", scored(10, "", "")),
        (
            "carol",
            scored(8, ", \"visibility\": \"after_published\"", ""),
        ),
    ];
    let mut jobs = Vec::new();
    for (who, work) in &runs {
        let accepted = c
            .submit_for(who, "m5", &["x"], &[("work.sh", work.as_str())])
            .await
            .unwrap();
        jobs.push(accepted.job);
    }
    for job in &jobs {
        c.h.events(*job, LIMIT).await;
    }
    let staff = c.client("tom").ranking("m5", 10).await.unwrap();
    assert!(staff.by_score, "{staff:?}");
    let rows: Vec<(usize, &str, Option<f64>)> = staff
        .rows
        .iter()
        .map(|r| (r.rank, r.team.as_str(), r.score))
        .collect();
    assert_eq!(
        rows,
        [
            (1, "tom", Some(10.0)),
            (2, "c", Some(8.0)),
            (3, "a", Some(8.0))
        ],
        "{staff:?}"
    );
    let board = c.client("alice").ranking("m5", 10).await.unwrap();
    let rows: Vec<(usize, bool, Option<f64>)> = board
        .rows
        .iter()
        .map(|r| (r.rank, r.yours, r.score))
        .collect();
    assert_eq!(
        rows,
        [(1, false, Some(10.0)), (2, true, Some(8.0))],
        "{board:?}"
    );
    assert_eq!(
        board.unranked, 1,
        "carol's scores are not alice's to see yet"
    );
    c.h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_intervals_and_gpu_budgets_refuse_then_admit() {
    // People of this test's own: the quotas' facts are per user, in the Redis every test shares.
    let run = rai_common::job::JobId::new().to_string().to_lowercase();
    let name = |n: &str| format!("{n}{}", &run[run.len() - 8..]);
    let (alice, bob, carol, tom) = (name("alice"), name("bob"), name("carol"), name("tom"));
    let people = [
        (alice.as_str(), "a", rai_common::account::Role::Student),
        (bob.as_str(), "a", rai_common::account::Role::Student),
        (carol.as_str(), "c", rai_common::account::Role::Student),
        (tom.as_str(), "", rai_common::account::Role::Ta),
    ];
    let c = Course::start_term(false, None, &people, |g| {
        // The test's worker has two slots: two running jobs fill it.
        g.gateway.quotas.max_queued = 1;
        g.gateway.quotas.min_interval = "2s".parse().unwrap();
        g.gateway.quotas.gpu_time = "1h".parse().unwrap();
    })
    .await;
    // Two slots: bob's job and alice's first run for a while; alice's second waits.
    let bobs = c.submit(&bob, &["sleep 8"], |_| {}).await.unwrap();
    let request = c.upload_files(&alice, &["sleep 8"], &[]).await.unwrap();
    let signed = request.sign(&c.keys[&alice]);
    let first = c.client(&alice).submit(&signed).await.unwrap();
    // The same submission again (a retry after a lost answer) is the same job, not a second one over the interval.
    let again = c.client(&alice).submit(&signed).await.unwrap();
    assert_eq!(
        (again.job, again.accepted_at),
        (first.job, first.accepted_at)
    );
    // Once her first job runs (so that the waiting-jobs cap is not what refuses her), within the interval.
    rai_testkit::jobs::wait_running(&c.h.ctx.bus, first.job).await;
    let too_soon = c.submit(&alice, &["echo too soon"], |_| {}).await;
    refused(
        too_soon,
        StatusCode::TOO_MANY_REQUESTS,
        "this course allows one submission every 2s; submit again in",
    );
    rai_testkit::jobs::wait_running(&c.h.ctx.bus, bobs.job).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let second = c.submit(&alice, &["echo second"], |_| {}).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    refused(
        c.submit(&alice, &["echo third"], |_| {}).await,
        StatusCode::TOO_MANY_REQUESTS,
        "you have 1 jobs waiting to start, the most this course allows; submit again when one starts",
    );
    // Staff are exempt; another student has caps of their own.
    c.submit(&tom, &["echo staff"], |_| {}).await.unwrap();
    c.submit(&carol, &["echo carol"], |_| {}).await.unwrap();
    // Once the first ends and the second starts, alice may submit again.
    assert_eq!(end(&c.h.events(first.job, LIMIT).await).0, "succeeded");
    assert_eq!(end(&c.h.events(second.job, LIMIT).await).0, "succeeded");
    c.submit(&alice, &["echo third"], |_| {}).await.unwrap();

    // A GPU-time budget spent (as the worker counts a GPU job's time when it ends) refuses until the day is over.
    let now = Utc::now();
    c.h.ctx
        .bus
        .add_gpu_seconds(&carol, now, 3_700.0)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let tomorrow = (now + chrono::Duration::days(1))
        .format("%Y-%m-%d 00:00 UTC")
        .to_string();
    refused(
        c.submit(&carol, &["echo gpu"], |_| {}).await,
        StatusCode::TOO_MANY_REQUESTS,
        &format!(
            "your jobs have used 1h01m of GPU time this day, the 1h this course allows; it starts again at {tomorrow}"
        ),
    );
    c.h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_submissions_cannot_all_pass_the_caps() {
    // Found by trying it as a student (issue 26): with both caps at 2, 19 of 20 parallel submissions were accepted,
    // each having read the count before any was added.
    let run = rai_common::job::JobId::new().to_string().to_lowercase();
    let dana = format!("dana{}", &run[run.len() - 8..]);
    let people = [(dana.as_str(), "", rai_common::account::Role::Student)];
    let c = Course::start_term(false, None, &people, |g| {
        g.gateway.quotas.max_queued = 2;
        g.gateway.quotas.max_active = 2;
    })
    .await;
    let mut signed = Vec::new();
    for _ in 0..20 {
        let request = c.upload_files(&dana, &["sleep 5"], &[]).await.unwrap();
        signed.push(request.sign(&c.keys[&dana]));
    }
    let client = c.client(&dana);
    let answers = futures::future::join_all(signed.iter().map(|s| client.submit(s))).await;
    let accepted = answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(accepted, 2, "{answers:#?}");
    for refusal in answers.into_iter().filter(Result::is_err) {
        refused(
            refusal,
            StatusCode::TOO_MANY_REQUESTS,
            "the most this course allows",
        );
    }
    c.h.drain_and_stop().await;
}
