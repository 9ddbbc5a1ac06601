//! `rai-keygen` as an instructor runs it: the binary as a subprocess, real files.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use chrono::Utc;
use rai_common::account::{Profile, Registry};
use rai_common::build_spec::{BUILD_FILE_NAME, BuildSpec, TEMPLATE};
use rai_common::errors::VerifyError;
use rai_common::job::{Freshness, InputObject, JobId, JobRequest, SignedJob};

fn keygen(registry: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rai-keygen"))
        .arg("--registry")
        .arg(registry)
        .args(args)
        .output()
        .expect("rai-keygen runs")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "rai-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn roster(rows: usize) -> String {
    let mut s = String::from("lastname,firstname,username,email,role,affiliation,team\n");
    for i in 0..rows {
        s.push_str(&format!(
            "Last{i},First{i},student{i:03},s{i}@uni.edu,student,Uni,team{}\n",
            i % 50
        ));
    }
    s
}

fn signed_job(profile: &Profile) -> Vec<u8> {
    let id = JobId::new();
    JobRequest {
        id,
        user: profile.username.clone(),
        team: profile.team.name.clone(),
        queue: "rai".into(),
        created_at: Utc::now(),
        client_version: rai_common::VERSION.into(),
        build: BuildSpec::parse(TEMPLATE, BUILD_FILE_NAME).unwrap(),
        input: InputObject {
            key: format!("uploads/{}/{id}.tar.zst", profile.username),
            size: 1,
            sha256: "00".repeat(32),
        },
        assignment: None,
        sweep: None,
    }
    .sign(&profile.signing_key("profile").unwrap())
    .to_bytes()
}

#[test]
fn import_of_300_rows_then_sign_verify_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("roster.csv");
    std::fs::write(&csv, roster(300)).unwrap();
    let registry = dir.path().join("registry.yml");
    let out_dir = dir.path().join("profiles");

    let start = Instant::now();
    let stdout = ok(keygen(
        &registry,
        &[
            "import",
            csv.to_str().unwrap(),
            "--out-dir",
            out_dir.to_str().unwrap(),
        ],
    ));
    let elapsed = start.elapsed();
    eprintln!("import of 300 rows took {elapsed:?} (target: well under 2 s)");
    assert!(stdout.contains("300 created"), "{stdout}");
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 300);
    let reg = Registry::load(&registry).unwrap();
    assert_eq!(reg.users.len(), 300);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out_dir.join("student042.rai_profile"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "profiles hold private keys");
    }

    let profile = Profile::load(&out_dir.join("student042.rai_profile")).unwrap();
    assert_eq!(profile.team.name, "team42");
    let wire = signed_job(&profile);
    SignedJob::verify(&wire, &reg, Utc::now(), Freshness::default())
        .expect("a fresh profile's job verifies");

    // Importing again changes no key and duplicates no user.
    let before = std::fs::read_to_string(out_dir.join("student042.rai_profile")).unwrap();
    let stdout = ok(keygen(
        &registry,
        &[
            "import",
            csv.to_str().unwrap(),
            "--out-dir",
            out_dir.to_str().unwrap(),
        ],
    ));
    assert!(
        stdout.contains("0 created") && stdout.contains("300 already present"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("student042.rai_profile")).unwrap(),
        before
    );
    let again = Registry::load(&registry).unwrap();
    assert_eq!(again.users.len(), 300);
    assert_eq!(again, reg);
    assert!(
        dir.path().join("registry.yml.bak").exists(),
        "the previous registry is kept"
    );

    ok(keygen(&registry, &["revoke", "student042"]));
    let reg = Registry::load(&registry).unwrap();
    assert!(matches!(
        SignedJob::verify(&wire, &reg, Utc::now(), Freshness::default()),
        Err(VerifyError::RevokedUser { .. })
    ));
    let list = ok(keygen(&registry, &["list"]));
    assert!(list.contains("300 user(s)"));
    assert!(
        list.lines()
            .any(|l| l.starts_with("student042") && l.contains("revoked"))
    );
    let show = ok(keygen(&registry, &["show", "student001"]));
    assert!(
        show.contains("team:       team1") && show.contains("status:     active"),
        "{show}"
    );
}

#[test]
fn bad_rows_write_nothing_unless_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("roster.csv");
    std::fs::write(
        &csv,
        "lastname,firstname,username,email,role,affiliation\n\
         Doe,Jane,jdoe,jdoe@uni.edu,student,Uni\n\
         Doe,John,jdoe,john@uni.edu,student,Uni\n\
         Roe,Rita,rroe,rita-at-uni,student,Uni\n\
         Poe,Pat,ppoe,ppoe@uni.edu,dean,Uni\n\
         Moe,Max,mmoe,mmoe@uni.edu,ta,Uni\n",
    )
    .unwrap();
    let registry = dir.path().join("registry.yml");
    let out_dir = dir.path().join("profiles");
    let out = keygen(
        &registry,
        &[
            "import",
            csv.to_str().unwrap(),
            "--out-dir",
            out_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 bad row(s); nothing was written"), "{err}");
    assert!(
        err.contains("line 3: duplicate username \"jdoe\" (first on line 2)"),
        "{err}"
    );
    assert!(
        err.contains("line 4: invalid email \"rita-at-uni\""),
        "{err}"
    );
    assert!(err.contains("line 5: unknown role \"dean\""), "{err}");
    assert!(!registry.exists() && !out_dir.exists());

    let stdout = ok(keygen(
        &registry,
        &[
            "import",
            csv.to_str().unwrap(),
            "--out-dir",
            out_dir.to_str().unwrap(),
            "--skip-invalid",
        ],
    ));
    assert!(
        stdout.contains("2 created") && stdout.contains("3 skipped"),
        "{stdout}"
    );
    assert_eq!(Registry::load(&registry).unwrap().users.len(), 2);
}

#[test]
fn new_account_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.yml");
    let profile_path = dir.path().join("alice.rai_profile");
    let args = [
        "new",
        "-u",
        "alice",
        "-e",
        "alice@uni.edu",
        "-f",
        "Alice",
        "-l",
        "Liddell",
        "-t",
        "wonder",
        "-r",
        "ta",
        "-o",
    ];
    let mut with_out: Vec<&str> = args.to_vec();
    with_out.push(profile_path.to_str().unwrap());
    ok(keygen(&registry, &with_out));
    let first = Profile::load(&profile_path).unwrap();
    assert_eq!(
        (first.firstname.as_str(), first.role.as_str()),
        ("Alice", "ta")
    );

    let out = keygen(&registry, &with_out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("already exists in the registry; pass --rotate")
    );

    with_out.push("--rotate");
    ok(keygen(&registry, &with_out));
    let second = Profile::load(&profile_path).unwrap();
    assert_ne!(first.secret_key, second.secret_key);
    let reg = Registry::load(&registry).unwrap();
    assert_eq!(reg.users.len(), 1);
    assert!(
        SignedJob::verify(&signed_job(&first), &reg, Utc::now(), Freshness::default()).is_err()
    );
    SignedJob::verify(&signed_job(&second), &reg, Utc::now(), Freshness::default()).unwrap();
}
