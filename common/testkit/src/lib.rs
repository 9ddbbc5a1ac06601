//! `rai-testkit`: what rai's tests and benchmarks share. Dev-only: no binary depends on it.
//!
//! The tests run against real services that `deploy/local/test.sh` starts (Redis, moto, Docker) and real `raid`
//! and `rai` processes. This crate reads the services' addresses, starts services of a test's own, builds whole
//! systems of workers and students, and carries the two long harnesses (the chaos run and the hostile-input
//! catalogue) that both the ordinary tests (short) and `deploy/local/report.sh` (full) run.
//!
//! # Layout
//! - [`env`]: the stack's addresses from the environment, and unique names.
//! - [`services`]: a Redis and a moto of a test's own (to restart or pause).
//! - [`stack`]: a whole rai system: a private Redis, `raid` processes, students with homes, the `rai` binary.
//! - [`jobs`]: signed jobs made and followed straight through the backends, and what their events say.
//! - [`chaos`]: the chaos and load run; [`hostile`]: the hostile-input catalogue; [`rush`]: the deadline rush;
//!   [`idle_pool`]: one student alone on a pool.
//! - [`bench`]: what every benchmark shares (percentiles, memory, timed loops, the row it prints);
//!   [`report`]: the one-table report every benchmark adds its figures to.
//! - [`archives`]: hostile tar headers.
//! - [`gpu_engine`]: a private Docker engine that carries GPU requests through a stand-in NVIDIA hook.
//! - [`signed`]: requests signed by hand with a student's key, past every check `rai` makes.
//! - [`hosts`]: hosts apart on one network; [`uplink`]: a student's host behind a slow, shaped link; [`disk`]: a
//!   folder on a disk of its own, as another host's.

pub mod archives;
pub mod bench;
pub mod chaos;
pub mod disk;
pub mod env;
pub mod gpu_engine;
pub mod hostile;
pub mod hosts;
pub mod idle_pool;
pub mod jobs;
pub mod report;
pub mod rush;
pub mod services;
pub mod signed;
pub mod stack;
pub mod tls;
pub mod uplink;

pub use archives::{header_bomb, raw_tar_header};
pub use env::{aws_config, aws_endpoint, image, redis_server, redis_url, required, unique};
pub use report::{Figure, report};
pub use services::{PrivateMoto, PrivateRedis};

/// Runs a system command (iproute2, tc, mkfs, losetup, mount) to its end and answers its standard output; a
/// failure is the test's, with the command's error output.
pub(crate) fn run(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program}: {e} (is it installed, and is this root?)")
        });
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A binary of this workspace (`rai`, `raid`), built beside the test or benchmark that asks: test executables live
/// in `target/<profile>/deps`, the binaries one folder up. `cargo test --workspace` builds them all.
pub fn binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a test runs from target/<profile>/deps");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: build it first (`cargo build --workspace`, or `cargo test --workspace` builds it)",
        path.display()
    );
    path
}
