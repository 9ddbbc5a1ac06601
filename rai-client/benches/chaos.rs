//! The full chaos and load run (issue 6), bounded to about ten minutes:
//!
//!     deploy/local/chaos.sh       (or, with the stack up and release binaries built:
//!                                  cargo bench -p rai-client --bench chaos [-- JOBS])
//!
//! On each stack: 3 `raid` workers, 20 students, JOBS jobs (default 1,000) of six kinds (quick, slow, failing,
//! noisy, over the time limit, cancelled), while a fault injector, every few seconds, kill -9s a worker and
//! restarts it, restarts Redis, pauses moto for 3 s (AWS stack) and drains a worker with SIGTERM. Then every job's
//! events are checked (gap-free, complete final run, right end and exit code), every record, and that no
//! container, job directory, lease or dead letter is left. Any problem fails the run (exit status 1).

use std::time::Duration;

use rai_testkit::chaos::{Plan, run};
use rai_testkit::stack::Kind;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let jobs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let mut failed = false;
    for kind in [Kind::Local, Kind::Aws] {
        let report = run(Plan {
            kind,
            workers: 3,
            clients: 20,
            jobs,
            fault_every: Duration::from_secs(5),
            max_faults: usize::MAX,
            limit: Duration::from_secs(600),
        })
        .await;
        let stack = match kind {
            Kind::Local => "local stack (Redis, fs)",
            Kind::Aws => "AWS stack (SQS, S3 on moto)",
        };
        report.print(&format!("chaos, {stack}"));
        let faults: usize = report.faults.values().sum();
        rai_testkit::report(rai_testkit::Figure {
            name: &format!(
                "chaos, {stack}: {} jobs, 20 students, 3 workers, {faults} faults",
                report.jobs
            ),
            value: format!("{} problems", report.problems.len()),
            reference: format!("{} reruns", report.reruns),
            ratio: None,
            target: "0 lost, 0 problems",
            met: report.problems.is_empty() && report.jobs == jobs,
        });
        rai_testkit::report(rai_testkit::Figure {
            name: &format!("chaos, {stack}: run time"),
            value: format!("{:.0} s", report.elapsed.as_secs_f64()),
            reference: String::new(),
            ratio: None,
            target: "<= 600 s",
            met: report.elapsed <= Duration::from_secs(600),
        });
        rai_testkit::report(rai_testkit::Figure {
            name: &format!("chaos, {stack}: worker peak RSS"),
            value: format!("{:.1} MiB", report.max_worker_rss_kib as f64 / 1024.0),
            reference: String::new(),
            ratio: None,
            target: "<= 128 MiB",
            met: report.max_worker_rss_kib <= 128 * 1024,
        });
        failed |= !report.problems.is_empty();
    }
    if failed {
        std::process::exit(1);
    }
}
