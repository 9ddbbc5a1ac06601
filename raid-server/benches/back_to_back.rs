//! Back-to-back jobs on one slot (issue 18): how long the slot idles between one job and the next, with the next
//! job made ready while the current one runs (`raid.prepare_next`, the default) beside the same run with it off.
//!
//!     cargo bench -p raid-server --bench back_to_back [-- JOBS]      (stack up; in deploy/local/report.sh)
//!
//! JOBS (200) jobs of one 1 s command (`echo first; sleep 1; echo last`) are queued at once for a worker of one
//! slot (the in-process worker of the tests: local stack, fs store, the real Docker engine). Two measures of the
//! gap between a job and the next:
//! - the slot's idle time, from the worker's own log ("job finished": when the commands began and ended): the end
//!   of one job's last command to the start of the next's first;
//! - as a student's follower sees it: the `last` line's event to the next job's `first` line's event (output is
//!   batched, so this adds up to 25 ms of batching to the gap).
//!
//! Targets: gap p50 <= 50 ms and p99 <= 150 ms; the whole run within 5% of JOBS seconds.

#[path = "../tests/it/harness.rs"]
mod harness;

use std::time::Duration;

use rai_common::event::EventBody;
use rai_testkit::bench::percentile;

/// When one job's commands began and ended, from raid's "job finished" log event.
#[derive(Default, Clone)]
struct Span {
    job: String,
    began: Option<f64>,
    done: Option<f64>,
}

impl tracing::field::Visit for Span {
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        match field.name() {
            "commands_began_s" => self.began = Some(value),
            "commands_done_s" => self.done = Some(value),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "job" {
            self.job = format!("{value:?}");
        }
    }
}

#[derive(Clone, Default)]
struct Spans(std::sync::Arc<std::sync::Mutex<Vec<Span>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event
            .metadata()
            .fields()
            .field("commands_began_s")
            .is_none()
        {
            return;
        }
        let mut s = Span::default();
        event.record(&mut s);
        self.0.lock().unwrap().push(s);
    }
}

/// What one run measured.
struct Run {
    /// Slot idle between jobs (worker's log), seconds.
    idle: Vec<f64>,
    /// Last line to next first line, as followers see it, seconds.
    seen: Vec<f64>,
    /// First job's first command to the last job's last command's end.
    total: f64,
}

async fn run(spans: &Spans, jobs: usize, prepare_next: bool) -> Run {
    spans.0.lock().unwrap().clear();
    let h = harness::Harness::start(|c| {
        c.raid.concurrency = Some(1);
        c.raid.prepare_next = prepare_next;
    })
    .await;
    // Warm up (image, first container), then queue every job at once.
    let warm = h.submit(&["true"], "time: 30s", &[]).await;
    h.events(warm, Duration::from_secs(60)).await;
    let mut ids = Vec::new();
    for _ in 0..jobs {
        ids.push(
            h.submit(&["echo first; sleep 1; echo last"], "time: 30s", &[])
                .await,
        );
    }
    // (first line's event, last line's event) of each job.
    let mut lines = Vec::new();
    for id in &ids {
        let events = h
            .events(*id, Duration::from_secs(60 + 3 * jobs as u64))
            .await;
        let out: Vec<_> = events
            .iter()
            .filter(|e| matches!(e.body, EventBody::Stdout { .. }))
            .map(|e| e.ts)
            .collect();
        assert_eq!(
            rai_testkit::jobs::text(&events, "stdout"),
            "first\nlast\n",
            "{events:#?}"
        );
        lines.push((out[0], *out.last().unwrap()));
    }
    h.drain_and_stop().await;
    let wanted: Vec<String> = ids.iter().map(|j| j.to_string()).collect();
    let mut mine: Vec<(f64, f64)> = spans
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|s| wanted.contains(&s.job))
        .map(|s| (s.began.expect("began"), s.done.expect("done")))
        .collect();
    assert_eq!(mine.len(), jobs, "every job's commands were logged");
    mine.sort_by(|a, b| a.0.total_cmp(&b.0));
    lines.sort();
    let idle = mine.windows(2).map(|w| w[1].0 - w[0].1).collect();
    let seen = lines
        .windows(2)
        .map(|w| (w[1].0 - w[0].1).num_microseconds().unwrap() as f64 / 1e6)
        .collect();
    Run {
        idle,
        seen,
        total: mine.last().unwrap().1 - mine[0].0,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    use tracing_subscriber::layer::SubscriberExt;
    let jobs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let spans = Spans::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(spans.clone()))
        .expect("the only subscriber");
    let on = run(&spans, jobs, true).await;
    let off = run(&spans, jobs, false).await;
    let ms = |v: f64| v * 1e3;
    println!("back to back: {jobs} queued jobs of 1 s on one slot");
    println!("{:<52} {:>12} {:>12} {:>10}", "", "p50", "p99", "total");
    for (name, r) in [
        ("next job made ready (prepare_next)", &on),
        ("reference: preparation off", &off),
    ] {
        println!(
            "{:<52} {:>10.1}ms {:>10.1}ms {:>9.1}s",
            format!("{name}: slot idle between jobs"),
            ms(percentile(&r.idle, 0.5)),
            ms(percentile(&r.idle, 0.99)),
            r.total
        );
        println!(
            "{:<52} {:>10.1}ms {:>10.1}ms",
            format!("{name}: last line to next first line"),
            ms(percentile(&r.seen, 0.5)),
            ms(percentile(&r.seen, 0.99))
        );
    }
    let name = format!("back to back, {jobs} jobs of 1 s, one slot");
    let figure = |what: &str, v: &[f64], r: &[f64], p: f64, target: &'static str, bound: f64| {
        rai_testkit::report(rai_testkit::Figure {
            name: &format!("{name}: {what}"),
            value: format!("{:.1} ms", ms(percentile(v, p))),
            reference: format!("{:.1} ms (preparation off)", ms(percentile(r, p))),
            ratio: Some(percentile(v, p) / percentile(r, p)),
            target,
            met: ms(percentile(v, p)) <= bound,
        });
    };
    figure(
        "slot idle between jobs p50",
        &on.idle,
        &off.idle,
        0.5,
        "p50 <= 50 ms",
        50.0,
    );
    figure(
        "slot idle between jobs p99",
        &on.idle,
        &off.idle,
        0.99,
        "p99 <= 150 ms",
        150.0,
    );
    figure(
        "last line to next first line p50",
        &on.seen,
        &off.seen,
        0.5,
        "p50 <= 50 ms",
        50.0,
    );
    figure(
        "last line to next first line p99",
        &on.seen,
        &off.seen,
        0.99,
        "p99 <= 150 ms",
        150.0,
    );
    rai_testkit::report(rai_testkit::Figure {
        name: &format!("{name}: total"),
        value: format!("{:.1} s", on.total),
        reference: format!("{:.1} s (preparation off); {jobs} s of commands", off.total),
        ratio: Some(on.total / jobs as f64),
        target: "within 5% of the jobs' seconds",
        met: on.total <= jobs as f64 * 1.05,
    });
}
