//! The commands that need no services: validate, init, whoami, version, as a student runs them.

use std::path::Path;
use std::process::{Command, Output};

fn rai(dir: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rai"))
        .current_dir(dir)
        .env("HOME", home)
        .env_remove("RAI_PROFILE")
        .env_remove("RAI_SECRET")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn init_then_validate_then_break_it() {
    let dir = tempfile::tempdir().unwrap();
    let o = rai(dir.path(), dir.path(), &["init"]);
    assert!(o.status.success());
    let o = rai(dir.path(), dir.path(), &["validate"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("image:    nvidia/cuda:12.4.1-devel-ubuntu22.04") && out.contains("1. nvcc"),
        "{out}"
    );

    let o = rai(dir.path(), dir.path(), &["init"]);
    assert_eq!(o.status.code(), Some(2), "init refuses to overwrite");

    std::fs::write(
        dir.path().join("rai_build.yml"),
        "rai:\n  image: x\ncomands:\n  build: [make]\n",
    )
    .unwrap();
    let o = rai(
        dir.path(),
        dir.path(),
        &["-p", dir.path().to_str().unwrap(), "validate"],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("rai_build.yml:1:1: missing key \"commands\"; \"comands\" at line 3 looks like a misspelling of it"),
        "{err}"
    );

    // What the original ignored is run, with a warning; --strict makes it an error.
    std::fs::write(
        dir.path().join("rai_build.yml"),
        "rai:\n  version: 0.2.20\n  image: x\nresources:\n  cache: false\n  cpu:\n    architecture: amd64\ncommands:\n  build: [make]\n",
    )
    .unwrap();
    let o = rai(
        dir.path(),
        dir.path(),
        &["-p", dir.path().to_str().unwrap(), "validate"],
    );
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains("is valid, with 1 warning")
            && out.contains("queue:    rai_amd64 (from resources.cpu.architecture)"),
        "{out}"
    );
    assert!(
        err.contains("warning: ")
            && err.contains("rai_build.yml:5:3: resources.cache: has no effect here"),
        "{err}"
    );
    let o = rai(dir.path(), dir.path(), &["validate", "--strict"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("error: ") && err.contains("is not valid with --strict: 1 warning"),
        "{err}"
    );
}

#[test]
fn the_2017_global_flags_are_accepted_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    // `rai -p . version` (rai PR #27), `-c=false`, `-v`, `-d`, before or after the command.
    for args in [
        &["-p", ".", "version"][..],
        &["version", "-p", "."],
        &["-c=false", "version"],
        &["-c", "-v", "version"],
        &["version", "-d"],
    ] {
        let o = rai(dir.path(), dir.path(), args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // `-c false` is not the 2017 form either: the value must be attached.
    let o = rai(dir.path(), dir.path(), &["-c", "false", "version"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn whoami_without_a_profile_says_whom_to_ask() {
    let dir = tempfile::tempdir().unwrap();
    let o = rai(dir.path(), dir.path(), &["whoami"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("it is expected at ~/.rai_profile") && err.contains("ask your instructor"),
        "{err}"
    );
}

#[test]
fn whoami_reads_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let key = rai_common::account::generate_signing_key();
    let mut p = rai_common::account::Profile::new(&key, "jdoe");
    p.team.name = "gpu-wizards".into();
    std::fs::write(dir.path().join(".rai_profile"), p.to_yaml()).unwrap();
    let o = rai(dir.path(), dir.path(), &["whoami"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("username: jdoe") && out.contains("team:     gpu-wizards"),
        "{out}"
    );
}

#[test]
fn version_prints_the_crate_version() {
    let dir = tempfile::tempdir().unwrap();
    // `buildinfo` is the 2017 client's other name for it; its BuildDate and GitCommit lines follow rai's own.
    for command in ["version", "buildinfo"] {
        let o = rai(dir.path(), dir.path(), &[command]);
        assert!(o.status.success(), "{command}");
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            format!(
                "rai {}\nBuildDate:  {}\nGitCommit:  {}\n",
                rai_common::LONG_VERSION,
                rai_common::BUILD_DATE,
                rai_common::COMMIT
            ),
            "{command}"
        );
    }
    let o = rai(dir.path(), dir.path(), &["--version"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(out, format!("rai {}\n", rai_common::LONG_VERSION));
    assert!(
        out.starts_with(&format!("rai {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
}

#[test]
fn the_rest_of_the_2017_commands_print_what_they_printed() {
    let dir = tempfile::tempdir().unwrap();
    let o = rai(dir.path(), dir.path(), &["buildtime"]);
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("BuildDate:  {}\n", rai_common::BUILD_DATE)
    );
    // Every variable, NAME=value, one per line: the one set here among them.
    let o = Command::new(env!("CARGO_BIN_EXE_rai"))
        .arg("env")
        .env("RAI_ENV_PROBE", "a value=with an equals sign")
        .output()
        .unwrap();
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l == "RAI_ENV_PROBE=a value=with an equals sign"),
        "{out}"
    );
    assert!(out.lines().all(|l| l.contains('=')), "{out}");
    let o = rai(dir.path(), dir.path(), &["license"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("Apache License") && out.contains("Version 2.0, January 2004"),
        "{out}"
    );
    // --ratelimit (hidden in 2017 too) is taken, with a note that it no longer does anything.
    for args in [
        &["--ratelimit=false", "version"][..],
        &["version", "--ratelimit"],
    ] {
        let o = rai(dir.path(), dir.path(), args);
        assert!(o.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--ratelimit has no effect"), "{args:?}: {err}");
    }
}

#[test]
fn a_build_file_named_with_f_is_the_one_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("other.yml"),
        "rai:\n  version: 0.2\n  image: elsewhere/image:1\ncommands:\n  build: [make]\n",
    )
    .unwrap();
    // `rai -f FILE validate`, and validate's own argument wins over it.
    let o = rai(dir.path(), dir.path(), &["-f", "other.yml", "validate"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("image:    elsewhere/image:1"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // Submitting with a -f that names nothing stops before anything else, saying so.
    for args in [
        &["-p", ".", "-f", "missing.yml"][..],
        &["submit", "--build", "missing.yml"],
    ] {
        let o = rai(dir.path(), dir.path(), args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("the build file missing.yml (-f/--build) does not exist"),
            "{args:?}: {err}"
        );
    }
    // A -f file is read for a submission: its error (here, an image the file does not name) is the one shown.
    std::fs::write(
        dir.path().join("broken.yml"),
        "rai:\n  version: 0.2\ncommands:\n  build: [make]\n",
    )
    .unwrap();
    let o = rai(dir.path(), dir.path(), &["-p", ".", "-f", "broken.yml"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("broken.yml:") && err.contains("no image"),
        "{err}"
    );
}

#[test]
fn completions_are_valid_scripts_that_know_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let o = rai(dir.path(), dir.path(), &["completions", "bash"]);
    assert!(o.status.success());
    let script = String::from_utf8_lossy(&o.stdout).into_owned();
    for command in [
        "submit",
        "logs",
        "status",
        "cancel",
        "history",
        "download",
        "completions",
    ] {
        assert!(script.contains(command), "{command} missing");
    }
    std::fs::write(dir.path().join("rai.bash"), &script).unwrap();
    let check = Command::new("bash")
        .args(["-n", dir.path().join("rai.bash").to_str().unwrap()])
        .status()
        .unwrap();
    assert!(check.success(), "bash -n rejects the script");
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let o = rai(dir.path(), dir.path(), &["completions", shell]);
        assert!(o.status.success() && !o.stdout.is_empty(), "{shell}");
    }
    let o = rai(dir.path(), dir.path(), &["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("possible values: bash"));
}

#[test]
fn old_build_file_names_and_profile_names_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rai-build.yml"),
        "rai:\n  version: 0.1\n  image: webgpu/rai:root\ncommands:\n  build: [make]\n",
    )
    .unwrap();
    // `-p` after the subcommand, as `rai version -p .` was written.
    let o = rai(
        dir.path(),
        home.path(),
        &["validate", "-p", dir.path().to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("rai-build.yml is valid"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // A profile under the 2017 client's second name, with its Docker Hub key: found, the key noted and ignored.
    let key = rai_common::account::generate_signing_key();
    let mut profile = rai_common::account::Profile::new(&key, "jdoe").to_yaml();
    profile.push_str("  dockerhub:\n    username: jdoe\n    password: x\n");
    std::fs::write(home.path().join(".rai_env"), profile).unwrap();
    let o = rai(dir.path(), home.path(), &["whoami"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("jdoe"));
    assert!(
        err.contains(".rai_env: `dockerhub` is a key of the 2017 client; rai ignores it"),
        "{err}"
    );
}
