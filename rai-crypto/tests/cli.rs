//! `rai-crypto` as an admin runs it: the binary as a subprocess.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn crypto(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rai-crypto"))
        .args(args)
        .env_remove("RAI_SECRET")
        .env("HOME", "/nonexistent-home-for-tests")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rai-crypto runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn gen_secret_prints_a_strong_secret() {
    let o = crypto(&["gen-secret"], None);
    assert!(o.status.success());
    let s = stdout(&o);
    assert_eq!(s.trim().len(), 43, "{s}");
    assert_ne!(s, stdout(&crypto(&["gen-secret"], None)));
}

#[test]
fn encrypt_piped_into_decrypt_prints_the_plaintext() {
    let enc = crypto(&["encrypt", "-s", "S", "hello"], None);
    assert!(enc.status.success());
    assert!(stdout(&enc).starts_with("enc:v1:"));
    let dec = crypto(&["decrypt", "-s", "S", "-"], Some(&stdout(&enc)));
    assert!(
        dec.status.success(),
        "{}",
        String::from_utf8_lossy(&dec.stderr)
    );
    assert_eq!(stdout(&dec), "hello\n");
}

#[test]
fn wrong_secret_exits_1_with_one_line() {
    let enc = stdout(&crypto(&["encrypt", "-s", "right", "hello"], None));
    let dec = crypto(&["decrypt", "-s", "wrong", enc.trim()], None);
    assert_eq!(dec.status.code(), Some(1));
    let err = String::from_utf8_lossy(&dec.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("wrong app secret or corrupted value"), "{err}");
    assert!(dec.stdout.is_empty());
}

#[test]
fn malformed_values_each_get_their_reason() {
    for (value, reason) in [
        ("enc:v1:AAAA", "truncated"),
        ("enc:v2:AAAA", "unknown encrypted value version \"v2\""),
        ("enc:v1:@@@@", "not valid base64"),
        ("plain", "not an encrypted value"),
    ] {
        let o = crypto(&["decrypt", "-s", "k", value], None);
        assert_eq!(o.status.code(), Some(1), "{value}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(reason), "{value}: {err}");
    }
}

#[test]
fn no_secret_says_where_to_put_one() {
    let o = crypto(&["encrypt", "x"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("pass -s SECRET, set RAI_SECRET"));
}
