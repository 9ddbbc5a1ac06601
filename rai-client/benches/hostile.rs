//! The full hostile-input catalogue (issue 6): a million empty files, a 4 GiB zstd bomb, a 100 MB line, and every
//! other case of the short version in `tests/hostile.rs`, through a real `raid` process on the local stack.
//!
//!     cargo bench -p rai-client --bench hostile      (with the stack up and `raid` built; deploy/local/report.sh)
//!
//! Prints one row per case; exits 1 if any case or whole-run check failed.

use rai_testkit::hostile::{Scale, run};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let report = run(Scale::FULL).await;
    report.print("hostile inputs, full");
    let ok = report.cases.iter().filter(|c| c.ok).count();
    rai_testkit::report(rai_testkit::Figure {
        name: "hostile inputs: cases with the expected outcome",
        value: format!("{ok} of {}", report.cases.len()),
        reference: format!("{} whole-run problems", report.problems.len()),
        ratio: None,
        target: "all, worker alive, host untouched",
        met: report.failures().is_empty(),
    });
    rai_testkit::report(rai_testkit::Figure {
        name: "hostile inputs: worker peak RSS",
        value: format!("{:.1} MiB", report.worker_peak_rss_kib as f64 / 1024.0),
        reference: String::new(),
        ratio: None,
        target: "<= 128 MiB",
        met: report.worker_peak_rss_kib <= 128 * 1024,
    });
    if !report.failures().is_empty() {
        std::process::exit(1);
    }
}
