//! What this process tells Prometheus: `GET /metrics` in the Prometheus text format, on the gateway's own address
//! and, for a worker, on `raid.metrics_address`.
//!
//! One set of metrics lives for the whole process (a gateway embedded in a worker reports both sides on either
//! address), so the code that counts an event (an upload, an output batch, a refusal) only names the metric. Figures
//! that are facts of the moment rather than counts (queue depth) are read when scraped; slots and GPUs in use move
//! as jobs take and free them. No label holds a user, team or job: a course's names stay out of the monitoring
//! system, and the number of series stays fixed however many students there are.
//!
//! Its own crate because both sides count into it: the worker (`raid`) and the gateway (`raid-gateway`) are
//! libraries apart, and neither reaches into the other for this.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rai_backends::errors::Backend;
use rai_backends::events::EventBus;
use rai_backends::queue::JobQueue;

/// How long a scrape waits for one queue's depth before it reports the others without it.
const DEPTH_WITHIN: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DepthLabels {
    pub queue: String,
    /// `waiting` (visible) or `leased` (a worker holds it).
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub queue: String,
    /// The job's final status: succeeded, failed, timed_out, canceled, error, refused.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    /// redis, store, queue, or other.
    pub backend: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// rate (submits per minute), quota (a course quota), uploads (an upload cap), per-user (open streams or
    /// uploads), auth (a request that did not authenticate).
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// uploads, outputs, logs, or declared (an upload declared and never submitted).
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GpuLabels {
    /// The GPU's index, as `nvidia-smi` numbers it.
    pub gpu: String,
}

type HistogramFamily = Family<QueueLabels, Histogram, fn() -> Histogram>;

/// Every metric this process reports.
pub struct Metrics {
    registry: Registry,
    pub queue_depth: Family<DepthLabels, Gauge>,
    pub jobs: Family<OutcomeLabels, Counter>,
    pub wait_seconds: HistogramFamily,
    pub run_seconds: HistogramFamily,
    pub slots: Gauge,
    pub slots_busy: Gauge,
    pub prepared_jobs: Gauge,
    pub gpus: Gauge,
    pub gpus_busy: Gauge,
    pub gpu_utilization: Family<GpuLabels, Gauge>,
    pub gpu_memory_used: Family<GpuLabels, Gauge>,
    pub upload_bytes: Counter,
    pub output_bytes: Counter,
    pub events: Counter,
    pub auth_failures: Counter,
    pub refusals: Family<RefusalLabels, Counter>,
    pub backend_errors: Family<BackendLabels, Counter>,
    pub redis_memory: Gauge,
    pub swept_objects: Family<KindLabels, Counter>,
    pub swept_bytes: Family<KindLabels, Counter>,
    pub upload_unpacks: Counter,
    pub redis_live_logs: Gauge,
    pub redis_largest_log: Gauge,
}

fn wait_histogram() -> Histogram {
    // 50 ms to about 14 hours: a quiet queue's first job to a deadline night's last.
    Histogram::new(exponential_buckets(0.05, 2.0, 21))
}

fn run_histogram() -> Histogram {
    // 250 ms to about 2.3 hours.
    Histogram::new(exponential_buckets(0.25, 2.0, 16))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("rai");
        let queue_depth = Family::<DepthLabels, Gauge>::default();
        registry.register(
            "queue_jobs",
            "Jobs in a queue: waiting for a worker, leased to one, or given up on (dead letters, for staff)",
            queue_depth.clone(),
        );
        let jobs = Family::<OutcomeLabels, Counter>::default();
        registry.register("jobs", "Jobs finished, by queue and outcome", jobs.clone());
        let wait_seconds: HistogramFamily = Family::new_with_constructor(wait_histogram);
        registry.register(
            "job_wait_seconds",
            "Time from the gateway's acceptance to the job's start on a worker",
            wait_seconds.clone(),
        );
        let run_seconds: HistogramFamily = Family::new_with_constructor(run_histogram);
        registry.register(
            "job_run_seconds",
            "Time from a job's start to its end on a worker",
            run_seconds.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let slots = gauge(&mut registry, "slots", "Job slots of this worker");
        let slots_busy = gauge(&mut registry, "slots_busy", "Job slots running a job now");
        let prepared_jobs = gauge(
            &mut registry,
            "prepared_jobs",
            "Jobs leased and ready, waiting for a slot of this worker",
        );
        let gpus = gauge(
            &mut registry,
            "gpus",
            "GPUs (or MIG instances) of this worker",
        );
        let gpus_busy = gauge(&mut registry, "gpus_busy", "GPUs held by a running job now");
        let gpu_utilization = Family::<GpuLabels, Gauge>::default();
        registry.register(
            "gpu_utilization_percent",
            "Each GPU's utilisation at its last sample (taken while GPU jobs run, raid.gpu.sample_every)",
            gpu_utilization.clone(),
        );
        let gpu_memory_used = Family::<GpuLabels, Gauge>::default();
        registry.register(
            "gpu_memory_used_bytes",
            "Each GPU's memory in use at its last sample",
            gpu_memory_used.clone(),
        );
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let upload_bytes = counter(&mut registry, "upload_bytes", "Bytes of projects uploaded");
        let output_bytes = counter(
            &mut registry,
            "output_bytes",
            "Bytes of job output (stdout and stderr) published",
        );
        let events = counter(&mut registry, "events", "Job events published");
        let auth_failures = counter(
            &mut registry,
            "auth_failures",
            "Requests refused because they did not authenticate (401)",
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "refusals",
            "Submissions refused by a rate limit or a course quota (429)",
            refusals.clone(),
        );
        let backend_errors = Family::<BackendLabels, Counter>::default();
        registry.register(
            "backend_errors",
            "Failed calls to Redis, the object store or the queue",
            backend_errors.clone(),
        );
        let swept_objects = Family::<KindLabels, Counter>::default();
        registry.register(
            "store_swept_objects",
            "Objects the store sweep deleted past their retention (store.retention), by kind",
            swept_objects.clone(),
        );
        let swept_bytes = Family::<KindLabels, Counter>::default();
        registry.register(
            "store_swept_bytes",
            "Bytes the store sweep freed, by kind",
            swept_bytes.clone(),
        );
        let upload_unpacks = counter(
            &mut registry,
            "gateway_upload_unpacks",
            "Uploads the gateway unpacked to check an assignment's required files (once per upload)",
        );
        let redis_memory = gauge(
            &mut registry,
            "redis_memory_bytes",
            "Memory Redis uses (INFO memory used_memory), read when scraped",
        );
        let redis_live_logs = gauge(
            &mut registry,
            "redis_live_logs",
            "Job event logs still in Redis (running jobs, and finished ones within events.live_retention)",
        );
        let redis_largest_log = gauge(
            &mut registry,
            "redis_largest_log_bytes",
            "The largest job event log in Redis (MEMORY USAGE)",
        );
        Metrics {
            registry,
            swept_objects,
            swept_bytes,
            upload_unpacks,
            redis_memory,
            redis_live_logs,
            redis_largest_log,
            queue_depth,
            jobs,
            wait_seconds,
            run_seconds,
            slots,
            slots_busy,
            prepared_jobs,
            gpus,
            gpus_busy,
            gpu_utilization,
            gpu_memory_used,
            upload_bytes,
            output_bytes,
            events,
            auth_failures,
            refusals,
            backend_errors,
        }
    }

    /// Counts one request refused for `reason` (rate, quota, uploads, per-user).
    pub fn refused(&self, reason: &'static str) {
        self.refusals.get_or_create(&RefusalLabels { reason }).inc();
    }

    /// Counts one failed call to a backend, named by its error's type.
    pub fn backend_error<E: Backend + ?Sized>(&self, error: &E) {
        self.backend_errors
            .get_or_create(&BackendLabels {
                backend: error.backend(),
            })
            .inc();
    }

    /// Counts a finished job with its wait and run times.
    pub fn job_finished(&self, queue: &str, outcome: &str, wait: Duration, run: Duration) {
        let q = QueueLabels {
            queue: queue.to_string(),
        };
        self.jobs
            .get_or_create(&OutcomeLabels {
                queue: queue.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.wait_seconds
            .get_or_create(&q)
            .observe(wait.as_secs_f64());
        self.run_seconds
            .get_or_create(&q)
            .observe(run.as_secs_f64());
    }

    /// Reads Redis's memory use and its largest job log into the gauges.
    async fn read_redis(&self, bus: &EventBus) {
        match tokio::time::timeout(DEPTH_WITHIN, bus.memory_report(1)).await {
            Ok(Ok(r)) => {
                self.redis_memory.set(r.used_bytes as i64);
                self.redis_live_logs.set(r.live_logs as i64);
                self.redis_largest_log
                    .set(r.largest_logs.first().map_or(0, |l| l.1) as i64);
            }
            Ok(Err(e)) => {
                self.backend_error(&e);
                tracing::warn!(error = %e, "cannot read Redis's memory use for /metrics");
            }
            Err(_) => tracing::warn!("Redis's memory use did not come within 2 s"),
        }
    }

    /// The text Prometheus scrapes, after reading the depth of `queues` and, given a bus, Redis's memory use.
    pub async fn render(&self, queues: &[Arc<dyn JobQueue>], bus: Option<&EventBus>) -> String {
        if let Some(bus) = bus {
            self.read_redis(bus).await;
        }
        let depths = futures::future::join_all(
            queues
                .iter()
                .map(|q| tokio::time::timeout(DEPTH_WITHIN, q.depth())),
        )
        .await;
        for (queue, depth) in queues.iter().zip(depths) {
            match depth {
                Ok(Ok(d)) => {
                    for (state, n) in [
                        ("waiting", d.waiting),
                        ("leased", d.leased),
                        ("dead", d.dead),
                    ] {
                        self.queue_depth
                            .get_or_create(&DepthLabels {
                                queue: queue.name().to_string(),
                                state,
                            })
                            .set(n as i64);
                    }
                }
                Ok(Err(e)) => {
                    self.backend_error(&e);
                    tracing::warn!(queue = %queue.name(), error = %e, "cannot read the queue's depth for /metrics");
                }
                Err(_) => {
                    self.backend_errors
                        .get_or_create(&BackendLabels { backend: "queue" })
                        .inc();
                    tracing::warn!(queue = %queue.name(), "the queue's depth did not come within 2 s");
                }
            }
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// This process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics` over `queues`.
pub async fn answer(
    queues: Vec<Arc<dyn JobQueue>>,
    bus: Option<EventBus>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let text = metrics().render(&queues, bus.as_ref()).await;
    ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

/// The worker's metrics endpoint could not take its address.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on raid.metrics_address {address}; pick a free address or leave it unset")]
pub struct ListenError {
    pub address: String,
    #[source]
    pub source: std::io::Error,
}

/// Serves `/metrics` (and `/healthz`) for a worker on `address` until `stop` completes.
pub async fn serve_worker(
    address: &str,
    queues: Vec<Arc<dyn JobQueue>>,
    bus: EventBus,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<std::net::SocketAddr, ListenError> {
    let listening = |source| ListenError {
        address: address.to_string(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(listening)?;
    let addr = listener.local_addr().map_err(listening)?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || answer(queues.clone(), Some(bus.clone()))),
        )
        .route("/healthz", axum::routing::get(|| async { "ok\n" }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    tracing::info!("metrics on http://{addr}/metrics");
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_counted_by_the_backend_they_say_they_come_from() {
        use rai_backends::errors::{EventError, QueueError, StoreError};
        let m = Metrics::new();
        m.backend_error(&StoreError::NotFound {
            key: "k".into(),
            store: "s".into(),
        });
        m.backend_error(&QueueError::NoSuchQueue {
            name: "q".into(),
            endpoint: "e".into(),
        });
        m.backend_error(&EventError::Conflict {
            job: "j".into(),
            expected: 1,
            found: 2,
        });
        m.backend_error(&std::io::Error::other("disk"));
        m.backend_error(&std::io::Error::other("disk"));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &m.registry).unwrap();
        for (backend, n) in [("store", 1), ("queue", 1), ("redis", 1), ("other", 2)] {
            let line = format!("rai_backend_errors_total{{backend=\"{backend}\"}} {n}");
            assert!(text.contains(&line), "{line} not in\n{text}");
        }
    }

    #[tokio::test]
    async fn the_text_holds_every_family_with_its_help_and_counts() {
        let m = Metrics::new();
        m.job_finished(
            "rai_amd64",
            "succeeded",
            Duration::from_millis(300),
            Duration::from_secs(2),
        );
        m.refusals
            .get_or_create(&RefusalLabels { reason: "quota" })
            .inc();
        m.upload_bytes.inc_by(1234);
        let text = m.render(&[], None).await;
        assert!(text.contains("# HELP rai_jobs Jobs finished"), "{text}");
        assert!(
            text.contains(r#"rai_jobs_total{queue="rai_amd64",outcome="succeeded"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"rai_job_wait_seconds_bucket{le="0.4",queue="rai_amd64"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"rai_job_wait_seconds_bucket{le="0.2",queue="rai_amd64"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"rai_refusals_total{reason="quota"} 1"#),
            "{text}"
        );
        assert!(text.contains("rai_upload_bytes_total 1234"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    /// Every `rai_*` series the shipped Grafana dashboard and alert rules query is one this process exports.
    #[tokio::test]
    async fn the_dashboard_and_alerts_query_only_exported_series() {
        let m = Metrics::new();
        m.job_finished("q", "succeeded", Duration::ZERO, Duration::ZERO);
        m.refusals
            .get_or_create(&RefusalLabels { reason: "rate" })
            .inc();
        m.backend_errors
            .get_or_create(&BackendLabels { backend: "redis" })
            .inc();
        m.queue_depth
            .get_or_create(&DepthLabels {
                queue: "q".into(),
                state: "waiting",
            })
            .set(0);
        let text = m.render(&[], None).await;
        let exported: std::collections::HashSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let shipped = [
            include_str!("../../../deploy/prometheus/grafana-dashboard.json"),
            include_str!("../../../deploy/prometheus/rai-alerts.yml"),
        ];
        let mut named = 0;
        for file in shipped {
            for (i, _) in file.match_indices("rai_") {
                let name: String = file[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name == "rai_" || name.starts_with("rai_overview") {
                    continue;
                }
                named += 1;
                assert!(
                    exported.contains(name.as_str()),
                    "{name} is not exported:\n{text}"
                );
            }
        }
        assert!(named >= 15, "only {named} series named");
    }
}
