//! The short version of the chaos and load run (the full one: `deploy/local/chaos.sh`): on each stack, three
//! `raid` workers, two gateways and six students run 24 jobs of every kind while each fault happens once (kill -9
//! of a worker, kill -9 of a gateway, a Redis restart, a paused moto on the AWS stack, a drained worker). Nothing may be lost: every job's output is
//! complete, ordered and without duplicates, every job has its one record, and nothing is left behind.

use std::time::Duration;

use rai_testkit::chaos::{Plan, run};
use rai_testkit::stack::Kind;

async fn short_run(kind: Kind) {
    let faults = if kind == Kind::Aws { 5 } else { 4 };
    let report = run(Plan {
        kind,
        workers: 3,
        clients: 6,
        jobs: 24,
        fault_every: Duration::from_secs(2),
        max_faults: faults,
        limit: Duration::from_secs(300),
    })
    .await;
    report.print(&format!("chaos, short, {kind:?} stack"));
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert_eq!(report.jobs, 24);
    assert_eq!(
        report.faults.values().sum::<usize>(),
        faults,
        "every fault happened once: {:?}",
        report.faults
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_chaos_run_on_the_local_stack_loses_nothing() {
    short_run(Kind::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_chaos_run_on_the_aws_stack_loses_nothing() {
    short_run(Kind::Aws).await;
}
