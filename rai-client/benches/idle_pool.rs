//! Fair share that wastes no GPU (issue 29):
//!
//!     cargo bench -p rai-client --bench idle_pool [-- JOBS SECONDS]   (stack up, release binaries built)
//!
//! One student submits 8 one-minute jobs to an idle worker with 8 slots, with fair share on (the default): all of
//! them should run at once, so the whole batch takes about as long as one job (target <= 1.1x), where turn-taking
//! that leaves slots idle took 8x. The reference is one such job alone on the same stack, measured in the same run.
//! The deadline rush (`--bench rush`) checks that turn-taking still holds when others wait.

use rai_testkit::idle_pool;
use rai_testkit::stack::Kind;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<u64>().ok());
    let jobs = args.next().unwrap_or(8) as usize;
    let seconds = args.next().unwrap_or(60);
    let (all, one) = idle_pool::run(Kind::Local, jobs, seconds).await;
    let ratio = all.as_secs_f64() / one.as_secs_f64();
    println!(
        "idle pool: {jobs} jobs of {seconds} s from one student on {jobs} slots took {:.1} s; one alone {:.1} s ({ratio:.2}x)",
        all.as_secs_f64(),
        one.as_secs_f64()
    );
    rai_testkit::report(rai_testkit::Figure {
        name: &format!(
            "idle pool, fair share: makespan of one student's {jobs} jobs of {seconds} s on {jobs} slots"
        ),
        value: format!("{:.1} s", all.as_secs_f64()),
        reference: format!("{:.1} s (one job alone)", one.as_secs_f64()),
        ratio: Some(ratio),
        target: "<= 1.1x",
        met: ratio <= 1.1,
    });
    if ratio > 1.1 {
        std::process::exit(1);
    }
}
