//! The full hostile-input catalogue (issue 6): a million empty files, a 4 GiB zstd bomb, a 100 MB line, and every
//! other case of the short version in `tests/hostile.rs`, through a real `raid` process on the local stack.
//!
//!     cargo bench -p rai-client --bench hostile      (with the stack up and `raid` built; deploy/local/report.sh)
//!
//! Prints one row per case; exits 1 if any case or whole-run check failed.

#[path = "../tests/support/mod.rs"]
mod support;

use support::hostile::{Scale, run};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let report = run(Scale::FULL).await;
    report.print("hostile inputs, full");
    if !report.failures().is_empty() {
        std::process::exit(1);
    }
}
