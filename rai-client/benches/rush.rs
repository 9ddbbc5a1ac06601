//! The deadline rush (issue 16):
//!
//!     cargo bench -p rai-client --bench rush [-- STUDENTS JOBS WINDOW_SECS]   (stack up, release binaries built)
//!
//! With `RAI_RUSH_CSV=PREFIX` it also writes every job's times to PREFIX-fair.csv and PREFIX-fifo.csv.
//!
//! 300 students arriving within 10 minutes submit 1,500 quick jobs (1 to 20 each, one after another) through the
//! gateway with the real `rai` client, on 3
//! workers of 2 slots (the local stack: Redis Streams queue, fs store). Run twice: with fair share (one queue group
//! per user, the default) and, as the reference measured in the same run, first come first served. Figures: every
//! job accepted or refused with its reason and none lost; per-student queue wait p50/p99; Jain's fairness index of
//! the students' mean waits (target >= 0.9); the most jobs of one other student leased while a one-job student's
//! job waited (target <= 1); and issue 16's strict forms of both, reported. See rai_testkit::rush for how a wait is
//! measured.

use std::time::Duration;

use rai_testkit::bench::percentile;
use rai_testkit::rush::{Plan, Report, run};
use rai_testkit::stack::Kind;

fn print(title: &str, r: &Report) {
    println!("{title}");
    println!(
        "  {} submitted, {} accepted, refused {:?}, {} lost; submitting took {:.0} s, all ended after {:.0} s",
        r.submitted,
        r.accepted,
        r.refused,
        r.lost.len(),
        r.submit_time.as_secs_f64(),
        r.elapsed.as_secs_f64()
    );
    println!(
        "  per-student mean wait p50 {:.2} s, p99 {:.2} s; per-job wait p50 {:.2} s, p99 {:.2} s",
        percentile(&r.student_waits, 0.5),
        percentile(&r.student_waits, 0.99),
        percentile(&r.per_job_waits, 0.5),
        percentile(&r.per_job_waits, 0.99)
    );
    println!(
        "  each job's wait split: until leased p50 {:.3} s, p99 {:.3} s; leased to started (set-up) p50 {:.3} s, \
         p99 {:.3} s",
        percentile(&r.lease_waits(), 0.5),
        percentile(&r.lease_waits(), 0.99),
        percentile(&r.setups(), 0.5),
        percentile(&r.setups(), 0.99)
    );
    println!(
        "  Jain's index of mean waits {:.3}, of mean waits per competing student {:.3}; worst head-of-line for a \
         one-job student: {} jobs of one other student leased while it waited",
        r.jain, r.jain_per_competitor, r.worst_head_of_line
    );
    println!(
        "  strict forms (issue 16): Jain's index of waits from the previous job's end {:.3}; head-of-line by \
         starts {} jobs",
        r.jain_strict, r.worst_head_of_line_by_start
    );
    for lost in r.lost.iter().take(10) {
        println!("  lost: {lost}");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<usize>().ok());
    let students = args.next().unwrap_or(300);
    let jobs = args.next().unwrap_or(1500);
    let window = Duration::from_secs(args.next().unwrap_or(600) as u64);
    let plan = |fair_share| Plan {
        kind: Kind::Local,
        workers: 3,
        students,
        jobs,
        most_per_student: 20,
        parallel: 12,
        window,
        fair_share,
        limit: Duration::from_secs(900),
    };
    let fair = run(plan(true)).await;
    print("deadline rush, fair share", &fair);
    let fifo = run(plan(false)).await;
    print("deadline rush, first come first served (reference)", &fifo);
    // RAI_RUSH_CSV=PREFIX keeps every job's times (PREFIX-fair.csv, PREFIX-fifo.csv), to look into the figures.
    if let Ok(prefix) = std::env::var("RAI_RUSH_CSV") {
        for (which, report) in [("fair", &fair), ("fifo", &fifo)] {
            let path = format!("{prefix}-{which}.csv");
            report.write_csv(path.as_ref()).expect("the CSV is written");
            println!("  every job's times: {path}");
        }
    }

    let name = format!(
        "deadline rush: {students} students, {jobs} jobs in {} s, 3 workers",
        window.as_secs()
    );
    let complete =
        fair.lost.is_empty() && fair.accepted + fair.refused.values().sum::<usize>() == jobs;
    rai_testkit::report(rai_testkit::Figure {
        name: &format!("{name}: accepted / lost"),
        value: format!("{} / {}", fair.accepted, fair.lost.len()),
        reference: format!("{} / {}", fifo.accepted, fifo.lost.len()),
        ratio: None,
        target: "every job accepted or refused with a reason, 0 lost",
        met: complete,
    });
    rai_testkit::report(rai_testkit::Figure {
        name: &format!("{name}: per-student wait p50 / p99"),
        value: format!(
            "{:.2} / {:.2} s",
            percentile(&fair.student_waits, 0.5),
            percentile(&fair.student_waits, 0.99)
        ),
        reference: format!(
            "{:.2} / {:.2} s",
            percentile(&fifo.student_waits, 0.5),
            percentile(&fifo.student_waits, 0.99)
        ),
        ratio: None,
        target: "reported",
        met: true,
    });
    let split = |r: &Report| {
        format!(
            "{:.3} / {:.3} s",
            percentile(&r.lease_waits(), 0.99),
            percentile(&r.setups(), 0.99)
        )
    };
    rai_testkit::report(rai_testkit::Figure {
        name: &format!("{name}: per-job wait p99, until leased / set-up after the lease"),
        value: split(&fair),
        reference: split(&fifo),
        ratio: None,
        target: "reported",
        met: true,
    });
    rai_testkit::report(rai_testkit::Figure {
        name: &format!("{name}: Jain's fairness index of students' mean waits"),
        value: format!("{:.3}", fair.jain),
        reference: format!("{:.3}", fifo.jain),
        ratio: None,
        target: ">= 0.9",
        met: fair.jain >= 0.9,
    });
    rai_testkit::report(rai_testkit::Figure {
        name: &format!("{name}: same, each wait per competing student"),
        value: format!("{:.3}", fair.jain_per_competitor),
        reference: format!("{:.3}", fifo.jain_per_competitor),
        ratio: None,
        target: ">= 0.9",
        met: fair.jain_per_competitor >= 0.9,
    });
    rai_testkit::report(rai_testkit::Figure {
        name: &format!(
            "{name}: one-job student waits behind, of one other student (leased while it waited)"
        ),
        value: format!("{} jobs", fair.worst_head_of_line),
        reference: format!("{} jobs", fifo.worst_head_of_line),
        ratio: None,
        target: "<= 1",
        met: fair.worst_head_of_line <= 1,
    });
    // Issue 16's forms, which count a job let in beside its owner's running one as having waited 0 and jobs already
    // leased when a single job arrived as ahead of it: what work conservation costs a newcomer, reported.
    rai_testkit::report(rai_testkit::Figure {
        name: &format!(
            "{name}: strict forms: Jain's index from the previous job's end / head-of-line by starts"
        ),
        value: format!(
            "{:.3} / {} jobs",
            fair.jain_strict, fair.worst_head_of_line_by_start
        ),
        reference: format!(
            "{:.3} / {} jobs",
            fifo.jain_strict, fifo.worst_head_of_line_by_start
        ),
        ratio: None,
        target: "reported",
        met: true,
    });
    if !complete {
        std::process::exit(1);
    }
}
