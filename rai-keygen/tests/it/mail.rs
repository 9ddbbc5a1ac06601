//! `rai-keygen mail` against a real SMTP server on loopback (aiosmtpd, deploy/local/smtp_sink.py): STARTTLS with a
//! course CA, AUTH with a password kept encrypted in the config, and each student's profile received as sent.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use base64::Engine;

/// An aiosmtpd of this test's own, saving each message it accepts.
struct SmtpSink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    fn start(cert: &Path, key: &Path) -> SmtpSink {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/local/smtp_sink.py");
        let mut child = Command::new(rai_testkit::env::smtp_python())
            .arg(script)
            .arg("--dir")
            .arg(dir.path())
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .args(["--user", "staff", "--password", "s3cret pw"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("aiosmtpd starts (deploy/local/test.sh installs it)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("smtp_sink.py said {line:?}"));
        SmtpSink { child, port, dir }
    }

    /// What it received, in order.
    fn received(&self) -> Vec<serde_json::Value> {
        let mut n = 1;
        let mut out = Vec::new();
        while let Ok(text) = std::fs::read_to_string(self.dir.path().join(format!("{n}.json"))) {
            out.push(serde_json::from_str(&text).unwrap());
            n += 1;
        }
        out
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rai-keygen"))
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("RAI_SECRET")
        .args(["--registry", "registry.yml"])
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The attachment named `rai_profile` in a raw message, decoded.
fn attachment(raw: &str) -> String {
    let at = raw
        .find("filename=\"rai_profile\"")
        .expect("an attachment named rai_profile");
    let part = &raw[raw[..at].rfind("\r\n\r\n").map_or(0, |i| i)..];
    let head_end = part[4..].find("\r\n\r\n").unwrap() + 8;
    let (head, rest) = part.split_at(head_end);
    let body = &rest[..rest.find("\r\n--").unwrap()];
    if head.contains("Content-Transfer-Encoding: base64") {
        let joined: String = body.split_whitespace().collect();
        text(
            &base64::engine::general_purpose::STANDARD
                .decode(joined)
                .unwrap(),
        )
    } else {
        body.replace("\r\n", "\n")
    }
}

fn write_config(dir: &Path, port: u16, password: &str, ca: &Path) -> PathBuf {
    let path = dir.join("mail.yml");
    std::fs::write(
        &path,
        format!(
            "mail:\n  server: localhost\n  port: {port}\n  security: starttls\n  username: staff\n  password: {password}\n  ca_file: {}\n  from: \"CS 483 Staff <staff@example.edu>\"\n  reply_to: help@example.edu\n  course: CS 483\nclient:\n  gateway: https://rai.example.edu\n",
            ca.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn students_receive_their_own_profiles_over_starttls() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(d.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(d.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let sink = SmtpSink::start(&d.join("cert.pem"), &d.join("key.pem"));

    std::fs::write(
        d.join("roster.csv"),
        "lastname,firstname,username,email,role,affiliation,team\nLovelace,Ada,ada,ada@example.edu,student,Uni,t1\nBabbage,Charles,cb,cb@example.edu,student,Uni,t1\n",
    )
    .unwrap();
    let out = keygen(d, &["import", "roster.csv", "--out-dir", "profiles"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The password lives encrypted in the config; rai-keygen gets the app secret.
    let secret = rai_crypto::AppSecret::new("course-app-secret");
    let sealed = rai_crypto::encrypt(&secret, "s3cret pw").unwrap();
    let config = write_config(d, sink.port, &sealed, &d.join("cert.pem"));
    let config = config.to_str().unwrap();

    // A dry run composes both letters and sends nothing.
    let out = keygen(
        d,
        &["-c", config, "-s", "course-app-secret", "mail", "--dry-run"],
    );
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}{}", text(&out.stderr));
    assert!(
        report.contains("would send \"Your rai profile for CS 483\""),
        "{report}"
    );
    assert!(
        report.contains("2 composed (dry run: nothing sent), 0 not sent"),
        "{report}"
    );
    assert!(sink.received().is_empty());

    // For real, to one student.
    let out = keygen(d, &["-c", config, "-s", "course-app-secret", "mail", "ada"]);
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}{}", text(&out.stderr));
    assert!(
        report.lines().next().unwrap().starts_with("ada") && report.contains(" sent"),
        "{report}"
    );
    let got = sink.received();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m["rcpt_tos"], serde_json::json!(["ada@example.edu"]));
    assert_eq!(m["mail_from"], "staff@example.edu");
    assert_eq!(m["tls"], true, "STARTTLS was used");
    let raw = m["data"]
        .as_str()
        .unwrap()
        .replace("\r\n", "\n")
        .replace('\n', "\r\n");
    assert!(
        raw.contains("Subject: Your rai profile for CS 483"),
        "{raw}"
    );
    assert!(raw.contains("Reply-To: help@example.edu"), "{raw}");
    assert!(raw.contains("Hello Ada,"), "{raw}");
    let profile = std::fs::read_to_string(d.join("profiles/ada.rai_profile")).unwrap();
    assert_eq!(attachment(&raw), profile);

    // A wrong password: the server refuses, the report says so, the exit code fails.
    let wrong = rai_crypto::encrypt(&secret, "guess").unwrap();
    let config = write_config(d, sink.port, &wrong, &d.join("cert.pem"));
    let out = keygen(
        d,
        &[
            "-c",
            config.to_str().unwrap(),
            "-s",
            "course-app-secret",
            "mail",
            "cb",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stdout).contains("NOT SENT"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(sink.received().len(), 1);

    // Without the course CA the server's certificate is not trusted: nothing is sent in the clear instead.
    let untrusted = d.join("other-ca.pem");
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(&untrusted, other.cert.pem()).unwrap();
    let config = write_config(d, sink.port, &sealed, &untrusted);
    let out = keygen(
        d,
        &[
            "-c",
            config.to_str().unwrap(),
            "-s",
            "course-app-secret",
            "mail",
            "cb",
        ],
    );
    assert!(!out.status.success());
    assert_eq!(sink.received().len(), 1);

    // A roster import mails the accounts it makes, as it goes.
    let config = write_config(d, sink.port, &sealed, &d.join("cert.pem"));
    std::fs::write(
        d.join("late.csv"),
        "lastname,firstname,username,email,role,affiliation,team\nHopper,Grace,grace,grace@example.edu,student,Uni,t2\n",
    )
    .unwrap();
    let out = keygen(
        d,
        &[
            "-c",
            config.to_str().unwrap(),
            "-s",
            "course-app-secret",
            "import",
            "late.csv",
            "--out-dir",
            "profiles",
            "--mail",
        ],
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let got = sink.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1]["rcpt_tos"], serde_json::json!(["grace@example.edu"]));
}
