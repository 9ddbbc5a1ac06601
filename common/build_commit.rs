// The source commit a binary reports in `--version`, and its date (`rai buildtime`, as the 2017 client printed it),
// shared by the build scripts of rai-common and rai-crypto (the one crate with a binary that does not link
// rai-common); see common/build.rs. The date is the commit's, not the clock's, so that a build can be reproduced.

fn bake_commit() {
    println!("cargo:rerun-if-env-changed=RAI_BUILD_COMMIT");
    println!("cargo:rerun-if-env-changed=RAI_BUILD_DATE");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let commit = match std::env::var("RAI_BUILD_COMMIT") {
        Ok(c) if !c.trim().is_empty() => Some(c.trim().to_owned()),
        _ if release => git_head(),
        _ => None,
    };
    let date = match std::env::var("RAI_BUILD_DATE") {
        Ok(d) if !d.trim().is_empty() => Some(d.trim().to_owned()),
        _ if release => git(&["log", "-1", "--format=%cd", "--date=iso-strict"]),
        _ => None,
    };
    println!(
        "cargo:rustc-env=RAI_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
    println!(
        "cargo:rustc-env=RAI_BUILD_DATE={}",
        date.as_deref().unwrap_or("unknown")
    );
}

/// What `git args` prints, trimmed, when it succeeds and prints something.
fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// HEAD's short hash, watching the files that change when HEAD moves.
fn git_head() -> Option<String> {
    let dir = std::path::PathBuf::from(git(&["rev-parse", "--absolute-git-dir"])?);
    // A missing file would make cargo rerun the script on every build, so only files that exist are watched.
    let mut watched = vec![dir.join("HEAD"), dir.join("packed-refs")];
    if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(dir.join(head_ref));
    }
    for file in watched.iter().filter(|f| f.exists()) {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}

