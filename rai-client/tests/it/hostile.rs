//! The short version of the hostile-input catalogue (the full one: `cargo bench -p rai-client --bench hostile`, in
//! `deploy/local/report.sh`): every bad message, upload, build file and job goes through a real `raid` process and
//! must end as expected, with the worker alive, nothing left behind and the host untouched.

use rai_testkit::hostile::{Scale, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_input_gets_its_clear_outcome_and_the_worker_survives() {
    let report = run(Scale::SHORT).await;
    report.print("hostile inputs, short");
    let failures = report.failures();
    assert!(failures.is_empty(), "{failures:#?}");
}
