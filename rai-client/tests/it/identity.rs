//! Who a job belongs to comes from the registry, never from the student (issue 26): a student without a team is a
//! team of one, and the team a job is recorded under is the registry's, whatever the student's profile says. Tried
//! through `rai` as a student would.

use rai_testkit::stack::{Kind, Options, Stack, project, text};

/// The records `rai history ARGS --json` prints.
async fn history(s: &Stack, user: usize, args: &[&str]) -> Result<Vec<serde_json::Value>, String> {
    let mut argv = vec!["history", "--json", "-n", "500"];
    argv.extend_from_slice(args);
    let out = s.rai(user, &argv).await;
    if out.status.code() != Some(0) {
        return Err(text(&out.stderr));
    }
    Ok(text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect())
}

async fn run_job(s: &Stack, user: usize) {
    let p = project(&["echo mine"], &[]);
    let out = s
        .rai(user, &["submit", "-p", p.path().to_str().unwrap()])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_student_is_who_the_registry_says_whatever_their_profile_claims() {
    // student0 and student1 have no team; student2 is in t1; student3 is staff.
    let s = Stack::start(
        Kind::Local,
        Options {
            users: 4,
            staff: &[3],
            teams: &["", "", "t1", "staff"],
            ..Options::default()
        },
    )
    .await;
    run_job(&s, 1).await;
    run_job(&s, 2).await;

    // Without a team, `--team ''` lists nothing but one's own (it once listed student1's jobs too).
    run_job(&s, 0).await;
    let mine = history(&s, 0, &["--team", ""]).await.unwrap();
    assert_eq!(mine.len(), 1, "{mine:#?}");
    assert!(mine.iter().all(|r| r["user"] == "student0"), "{mine:#?}");
    let refused = history(&s, 0, &["--team", "t1"]).await.unwrap_err();
    assert!(refused.contains("you are in no team"), "{refused}");
    assert!(history(&s, 0, &["--user", "student1"]).await.is_err());

    // student0 writes `team: staff` into their own profile (the key still valid) and submits: the job is recorded
    // under no team, as the registry says; the staff team's listing does not show it.
    let path = s.home(0).join(".rai_profile");
    let mut profile = rai_common::account::Profile::load(&path).unwrap();
    profile.team.name = "staff".into();
    profile.role = rai_common::account::Role::Admin;
    std::fs::write(&path, profile.to_yaml()).unwrap();
    run_job(&s, 0).await;
    let recorded = history(&s, 3, &["--user", "student0"]).await.unwrap();
    assert_eq!(recorded.len(), 2, "{recorded:#?}");
    assert!(
        recorded.iter().all(|r| r["team"] == ""),
        "the profile's team was recorded: {recorded:#?}"
    );
    let staff_team = history(&s, 3, &["--team", "staff"]).await.unwrap();
    assert!(
        staff_team.iter().all(|r| r["user"] == "student3"),
        "{staff_team:#?}"
    );
    // Nor does the claimed role open anything.
    let out = s.rai(0, &["history", "--all"]).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("only course staff"),
        "{}",
        text(&out.stderr)
    );

    // A team member's job is recorded under the team, and the staff's `--team ''` is told to name one.
    let t1 = history(&s, 3, &["--team", "t1"]).await.unwrap();
    assert_eq!(t1.len(), 1, "{t1:#?}");
    assert_eq!(t1[0]["team"], "t1");
    let told = history(&s, 3, &["--team", ""]).await.unwrap_err();
    assert!(told.contains("name a team"), "{told}");
}
