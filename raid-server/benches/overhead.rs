//! Per-job overhead of raid for a trivial job, beside a plain `docker run --rm` of the same image and command,
//! in one run:
//!
//!     deploy/local/bench.sh        (or, with the stack up: cargo bench -p raid-server --bench overhead)
//!
//! For 100 jobs (`true`), one at a time on one slot: the time from lease to ack, split into lease → container
//! started (verify, claim, fetch, unpack, create, start) and commands done → ack (remove, pack /build, store,
//! record, end event, ack). The reference is `docker run --rm --network none IMAGE true`, which pays for create,
//! start, wait and remove as well. Target (issue 4): overhead p50 <= 100 ms, where overhead = raid's lease → ack
//! minus docker run --rm.

#[path = "../tests/it/harness.rs"]
mod harness;

use rai_testkit::bench::{ms, percentile};
use std::time::{Duration, Instant};

const JOBS: usize = 100;

/// One job's milestones, as raid logs them with its end ("job finished").
#[derive(Default, Clone)]
struct JobTiming {
    job: String,
    lease_to_container_ms: Option<f64>,
    commands_to_ack_ms: Option<f64>,
    lease_to_ack_ms: Option<f64>,
}

impl tracing::field::Visit for JobTiming {
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        match field.name() {
            "lease_to_container_ms" => self.lease_to_container_ms = Some(value),
            "commands_to_ack_ms" => self.commands_to_ack_ms = Some(value),
            "lease_to_ack_ms" => self.lease_to_ack_ms = Some(value),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "job" {
            self.job = format!("{value:?}");
        }
    }
}

/// Collects raid's "job finished" log events: the milestones come from the worker's own log, not from a
/// benchmark-only field of the worker.
#[derive(Clone, Default)]
struct Timings(std::sync::Arc<std::sync::Mutex<Vec<JobTiming>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Timings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().fields().field("lease_to_ack_ms").is_none() {
            return;
        }
        let mut t = JobTiming::default();
        event.record(&mut t);
        self.0.lock().unwrap().push(t);
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    use tracing_subscriber::layer::SubscriberExt;
    let timings = Timings::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(timings.clone()))
        .expect("the only subscriber");
    let h = harness::Harness::start(|c| c.raid.concurrency = Some(1)).await;
    for _ in 0..3 {
        let job = h.submit(&["true"], "time: 30s", &[]).await;
        h.events(job, Duration::from_secs(60)).await;
    }
    let mut ids = Vec::new();
    for _ in 0..JOBS {
        let job = h.submit(&["true"], "time: 30s", &[]).await;
        h.events(job, Duration::from_secs(60)).await;
        ids.push(job);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids: Vec<String> = ids.iter().map(|j| j.to_string()).collect();
    let timings: Vec<JobTiming> = {
        let all = timings.0.lock().unwrap();
        all.iter()
            .filter(|t| ids.contains(&t.job))
            .cloned()
            .collect()
    };
    assert_eq!(timings.len(), JOBS, "every job's milestones were logged");
    let millis = |f: fn(&JobTiming) -> Option<f64>| -> Vec<Duration> {
        timings
            .iter()
            .map(|t| Duration::from_secs_f64(f(t).expect("every milestone passed") / 1e3))
            .collect()
    };
    let total = millis(|t| t.lease_to_ack_ms);
    let pre = millis(|t| t.lease_to_container_ms);
    let post = millis(|t| t.commands_to_ack_ms);

    let image = rai_testkit::image();
    let mut docker: Vec<Duration> = Vec::new();
    for _ in 0..JOBS {
        let t = Instant::now();
        let ok = std::process::Command::new("docker")
            .args(["run", "--rm", "--network", "none", &image, "true"])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        docker.push(t.elapsed());
    }
    let (t50, t99) = (percentile(&total, 0.5), percentile(&total, 0.99));
    let (d50, d99) = (percentile(&docker, 0.5), percentile(&docker, 0.99));
    println!("raid per-job overhead: {JOBS} trivial jobs (`true`), one slot, local stack");
    println!("{:<44} {:>9} {:>9}", "", "p50", "p99");
    println!(
        "{:<44} {:>7.1}ms {:>7.1}ms",
        "raid: lease -> ack",
        ms(t50),
        ms(t99)
    );
    println!(
        "{:<44} {:>7.1}ms {:>7.1}ms",
        "  of which lease -> container started",
        ms(percentile(&pre, 0.5)),
        ms(percentile(&pre, 0.99))
    );
    println!(
        "{:<44} {:>7.1}ms {:>7.1}ms",
        "  of which commands done -> ack",
        ms(percentile(&post, 0.5)),
        ms(percentile(&post, 0.99))
    );
    println!(
        "{:<44} {:>7.1}ms {:>7.1}ms",
        "reference: docker run --rm (CLI)",
        ms(d50),
        ms(d99)
    );
    let overhead = ms(t50) - ms(d50);
    println!(
        "{:<44} {:>7.1}ms {:>9}   target p50 <= 100 ms (negative: raid's whole job is faster than the CLI's run)",
        "overhead (raid lease -> ack - docker run)", overhead, ""
    );
    rai_testkit::report(rai_testkit::Figure {
        name: "raid per-job, lease -> ack p50 (ref: docker run --rm)",
        value: format!("{:.1} ms", ms(t50)),
        reference: format!("{:.1} ms", ms(d50)),
        ratio: Some(ms(t50) / ms(d50)),
        target: "overhead (raid - ref) <= 100 ms",
        met: overhead <= 100.0,
    });
    h.drain_and_stop().await;
}
