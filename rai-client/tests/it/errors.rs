//! What a student sees when something is wrong before a job ever reaches a worker: each message names the problem
//! and what to do, and nothing is left half-done.

use std::path::Path;
use std::process::{Command, Output};

use rai_common::account::{Profile, generate_signing_key};

/// A student's home with a profile and `config` as `~/.rai_config.yml`, and a small project.
struct Student {
    home: tempfile::TempDir,
    project: tempfile::TempDir,
}

fn student(config: &str) -> Student {
    let home = tempfile::tempdir().unwrap();
    let profile = Profile::new(&generate_signing_key(), "jdoe");
    std::fs::write(home.path().join(".rai_profile"), profile.to_yaml()).unwrap();
    std::fs::write(home.path().join(".rai_config.yml"), config).unwrap();
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("rai_build.yml"),
        "rai:\n  version: 0.2\n  image: rai-test/busybox:latest\ncommands:\n  build: [echo hi]\n",
    )
    .unwrap();
    std::fs::write(project.path().join("main.c"), "int main() { return 0; }\n").unwrap();
    Student { home, project }
}

fn submit(home: &Path, project: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rai"))
        .args(["-p", project.to_str().unwrap()])
        .env("HOME", home)
        .env_remove("RAI_PROFILE")
        .env_remove("RAI_SECRET")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap()
}

/// Runs a submit that must fail before queueing anything; returns its error line.
fn refused(s: &Student) -> String {
    let out = submit(s.home.path(), s.project.path());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        !stderr.contains("posted to the queue"),
        "nothing may be queued:\n{stderr}"
    );
    stderr
        .lines()
        .find(|l| l.starts_with("rai: "))
        .unwrap_or_else(|| panic!("no error line in:\n{stderr}"))
        .to_string()
}

fn fs_store(dir: &Path) -> String {
    format!("store:\n  path: {}\n", dir.display())
}

#[test]
fn no_profile_says_where_it_is_expected_and_whom_to_ask() {
    let s = student("");
    std::fs::remove_file(s.home.path().join(".rai_profile")).unwrap();
    let e = refused(&s);
    assert!(
        e.contains("it is expected at ~/.rai_profile") && e.contains("ask your instructor for one"),
        "{e}"
    );
}

#[test]
fn no_build_file_says_how_to_make_one() {
    let s = student("");
    std::fs::remove_file(s.project.path().join("rai_build.yml")).unwrap();
    let e = refused(&s);
    assert!(
        e.contains("no rai_build.yml in") && e.contains("rai init"),
        "{e}"
    );
}

#[test]
fn a_directory_over_the_cap_names_its_largest_files_and_uploads_nothing() {
    let store = tempfile::tempdir().unwrap();
    let s = student(&format!(
        "events:\n  redis_url: {}\n{}client:\n  max_upload: 10k\n",
        rai_testkit::redis_url(),
        fs_store(store.path())
    ));
    std::fs::write(s.project.path().join("big.bin"), vec![7u8; 20_000]).unwrap();
    std::fs::write(s.project.path().join("medium.bin"), vec![7u8; 5_000]).unwrap();
    let e = refused(&s);
    assert!(
        e.contains("over the 10.0 KiB cap")
            && e.contains("the largest: big.bin (19.5 KiB), medium.bin (4.9 KiB)")
            && e.contains(".raiignore"),
        "{e}"
    );
    assert!(
        !store.path().join("uploads").exists(),
        "an over-cap project must not be uploaded"
    );
}

#[test]
fn an_unreachable_gateway_is_named_after_retrying() {
    let s = student("client:\n  gateway: http://127.0.0.1:1\n  retry_for: 1s\n");
    let e = refused(&s);
    assert!(
        e.contains("cannot reach the gateway http://127.0.0.1:1/") && e.contains("try again"),
        "{e}"
    );
}

#[test]
fn plain_http_beyond_loopback_is_refused_before_anything_is_sent() {
    let s = student("client:\n  gateway: http://rai.example.edu\n");
    let e = refused(&s);
    assert!(
        e.contains("refusing plain http to http://rai.example.edu") && e.contains("https://"),
        "{e}"
    );
}

#[test]
fn no_gateway_says_where_to_set_it() {
    let s = student("");
    let e = refused(&s);
    assert!(
        e.contains("no gateway is configured") && e.contains("client.gateway"),
        "{e}"
    );
}
