//! The gateway: the one door students knock on (docs/architecture.md, "The trust boundary").
//!
//! Students hold only their own Ed25519 key. Every request they make is signed (RFC 9421, [`auth`]); the gateway
//! checks it against the account registry, then does on their behalf what the 2025 client did with the course's
//! shared credentials: it binds a new job id to its owner and takes its upload ([`uploads`]; a chunked one: [`projects`]), verifies, attests and
//! queues the signed job with the server's clock ([`jobs`]), streams a job's events as Server-Sent Events
//! ([`events`]), and hands out a job's `/build` ([`artifact`]) and its scores as the caller may see them
//! ([`results`]); graded submissions are judged against the course file's deadlines and extensions
//! ([`submissions`], [`extensions`]); a student's sweeps are listed and cancelled whole ([`sweeps`]). Every read, write and cancel goes through [`access`], which says who may touch
//! which job. Workers run only jobs a trusted gateway attested. Staff also get
//! a dashboard at `/ui` ([`ui`]) and everyone's metrics at `/metrics`.
//!
//! The gateway runs as `raid gateway`, or inside a worker process when the worker's config sets `gateway.listen`
//! (the embedded default for one machine). It serves TLS when given a certificate and key, and plain HTTP only on a
//! loopback address.

mod access;
mod admission;
mod artifact;
mod auth;
mod datasets;
mod deadletters;
mod error;
mod events;
mod extensions;
mod jobs;
mod per_user;
mod projects;
mod quotas;
mod regrades;
mod results;
mod serve;
mod submissions;
mod sweep;
mod sweeps;
mod ui;
mod uploads;
mod usage;
mod watched;
mod workers;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::routing::{get, post, put};
use rai_backends::connect::{open_queue, open_store};
use rai_backends::events::{EventBus, EventHub};
use rai_backends::queue::JobQueue;
use rai_backends::store::ObjectStore;
use rai_common::Config;
use rai_common::account::{SigningKey, load_gateway_key};
use rai_common::api;
use rai_common::project::batch;

pub use error::ApiError;
pub use per_user::UserSlots;
pub use serve::{Listening, serve};
pub use submissions::UnpackedUploads;

/// How long any other request may take to be read and answered (an event stream: to start).
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// What every request handler shares.
pub struct Gateway {
    pub config: Config,
    pub bus: EventBus,
    /// One Redis subscription for every event stream this gateway serves.
    pub hub: EventHub,
    pub store: Arc<dyn ObjectStore>,
    /// The queues students may submit to (`gateway.queues`).
    pub queues: HashMap<String, Arc<dyn JobQueue>>,
    /// The account registry, reread when its file changes: a revocation holds from the next request.
    pub registry: watched::RegistryFile,
    /// Signs every job this gateway queues.
    pub attestation_key: SigningKey,
    /// The course file, reread when it changes; `None` when the config names none.
    pub course: Option<watched::CourseFile>,
    /// The time deadlines are judged by: the system's, moved in tests only.
    pub clock: Clock,
    /// Each user's live event streams (`gateway.max_followers`).
    pub followers: per_user::UserSlots,
    /// Each user's upload bodies streaming now (`gateway.uploads.max_streaming`).
    pub streaming: per_user::UserSlots,
    /// Each user's batches of chunks being sent now (`gateway.uploads.max_chunks_at_once`).
    pub chunks: per_user::UserSlots,
    /// The store's name in Redis keys that belong to one store (pending uploads, the sweep's turn).
    pub store_scope: String,
    /// What checking an assignment's required files found in each upload, so an upload is unpacked once.
    pub unpacked: submissions::UnpackedUploads,
    /// What usage has read of each job record.
    pub usage: usage::UsageCache,
}

/// `GET /metrics`: this process's metrics, with the depth of the queues students submit to.
async fn metrics(
    axum::extract::State(gateway): axum::extract::State<Arc<Gateway>>,
) -> axum::response::Response {
    crate::metrics::answer(
        gateway.queues.values().cloned().collect(),
        Some(gateway.bus.clone()),
    )
    .await
}

/// The gateway's clock: the system's, plus an offset that only tests set (to move a deadline past without moving
/// the machine's time).
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl Clock {
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
            + chrono::Duration::milliseconds(
                self.offset_ms.load(std::sync::atomic::Ordering::Relaxed),
            )
    }

    /// Moves this gateway's clock by `by` from the system's.
    pub fn set_offset(&self, by: chrono::Duration) {
        self.offset_ms
            .store(by.num_milliseconds(), std::sync::atomic::Ordering::Relaxed);
    }
}

/// A short name for the store `config` names: courses (or tests) sharing one Redis keep their pending uploads and
/// their sweep's turn apart.
fn store_scope(config: &rai_common::config::StoreConfig) -> String {
    use sha2::Digest;
    let location = match config.backend {
        rai_common::config::StoreBackend::Fs => format!("fs:{}", config.path.display()),
        rai_common::config::StoreBackend::S3 => {
            format!("s3:{}", config.bucket.as_deref().unwrap_or_default())
        }
    };
    hex::encode(&sha2::Sha256::digest(location.as_bytes())[..8])
}

impl Gateway {
    /// `job`'s state (`None`: never accepted, or expired), or a 503 when Redis cannot say.
    pub(crate) async fn job_state(
        &self,
        job: &rai_common::job::JobId,
    ) -> Result<Option<rai_common::state::JobState>, ApiError> {
        self.bus
            .state(job)
            .await
            .map_err(|e| ApiError::unavailable("look up the job", e))
    }

    /// Connects the gateway's backends as its config says.
    pub async fn connect(config: Config) -> anyhow::Result<Gateway> {
        let key_path = config.gateway.attestation_key.clone().context(
            "gateway.attestation_key is not set; make a key with `rai-keygen gateway-key --out FILE` and name it there",
        )?;
        let attestation_key = load_gateway_key(&key_path)?;
        if config.gateway.queues.is_empty() {
            anyhow::bail!("gateway.queues is empty; name the queues students may submit to");
        }
        let mut queues = HashMap::new();
        for name in &config.gateway.queues {
            let queue = open_queue(&config, name, None)
                .await
                .with_context(|| format!("cannot open the queue {name}"))?;
            queues.insert(name.clone(), queue);
        }
        let store = open_store(&config, None, true).await?;
        let bus = EventBus::connect(
            rai_backends::redis_link::RedisTarget::events(&config),
            config.events.retention.as_duration(),
        )
        .await?;
        let registry = watched::RegistryFile::load(&config.raid.registry)?;
        let course = match &config.gateway.course {
            Some(path) => Some(watched::CourseFile::load(path)?),
            None => None,
        };
        let hub = EventHub::start(bus.clone());
        Ok(Gateway {
            hub,
            bus,
            store,
            queues,
            registry,
            attestation_key,
            followers: per_user::UserSlots::new("live event streams", config.gateway.max_followers),
            streaming: per_user::UserSlots::new(
                "uploads streaming",
                config.gateway.uploads.max_streaming,
            ),
            chunks: per_user::UserSlots::new(
                "chunk uploads",
                config.gateway.uploads.max_chunks_at_once,
            ),
            unpacked: submissions::UnpackedUploads::default(),
            usage: usage::UsageCache::default(),
            store_scope: store_scope(&config.store),
            config,
            course,
            clock: Clock::default(),
        })
    }

    /// The HTTP API of DESIGN.md, with body limits, timeouts and request tracing.
    pub fn router(self: Arc<Self>) -> Router {
        use tower_http::limit::RequestBodyLimitLayer;
        use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
        use tower_http::trace::TraceLayer;
        let small = self.config.gateway.max_body.0 as usize;
        // A project upload streams up to the largest upload a job may have; everything else is small JSON.
        let upload_limit = self.config.raid.limits.upload_bytes.0 as usize;
        let uploads = Router::new()
            .route(
                api::UPLOAD.template(),
                put(uploads::stream).layer(axum::extract::DefaultBodyLimit::max(upload_limit)),
            )
            .layer(axum::extract::DefaultBodyLimit::max(upload_limit))
            .layer(RequestBodyLimitLayer::new(upload_limit))
            // An upload may take long, but may not stall.
            .layer(RequestBodyTimeoutLayer::new(
                self.config.gateway.uploads.idle_timeout.as_duration(),
            ));
        // A batch of chunks: capped by the protocol, whatever the upload limit (the manifest's sizes were checked
        // against that when the project was declared).
        let batches = Router::new()
            .route(
                api::PROJECT_CHUNKS.template(),
                put(projects::chunks)
                    .layer(axum::extract::DefaultBodyLimit::max(batch::max_batch())),
            )
            .layer(RequestBodyLimitLayer::new(batch::max_batch()))
            .layer(RequestBodyTimeoutLayer::new(
                self.config.gateway.uploads.idle_timeout.as_duration(),
            ));
        // A manifest of many files: larger than the rest's small JSON, and capped whatever the upload limit, since
        // it is read whole (reading it stops past the protocol's most entries).
        let declarations = Router::new()
            .route(api::PROJECTS, post(projects::create))
            .layer(axum::extract::DefaultBodyLimit::max(
                projects::MAX_DECLARATION,
            ))
            .layer(RequestBodyLimitLayer::new(projects::MAX_DECLARATION))
            .layer(RequestBodyTimeoutLayer::new(
                self.config.gateway.uploads.idle_timeout.as_duration(),
            ));
        let rest = Router::new()
            .route(api::UPLOADS, post(uploads::create))
            .route(api::UPLOAD_COMPLETE.template(), post(uploads::complete))
            .route(api::PROJECT_COMPLETE.template(), post(projects::complete))
            .route(api::JOBS, post(jobs::submit).get(jobs::history))
            .route(api::JOB.template(), get(jobs::status))
            .route(api::JOB_CANCEL.template(), post(jobs::cancel))
            .route(api::JOB_EVENTS.template(), get(events::follow))
            .route(api::JOB_ARTIFACT.template(), get(artifact::download))
            .route(api::JOB_RESULTS.template(), get(results::get))
            .route(api::WHOAMI, get(jobs::whoami))
            .route(api::SUBMISSIONS, get(submissions::list))
            .route(api::RANKING.template(), get(submissions::leaderboard))
            .route(api::EXTENSIONS.template(), get(extensions::list))
            .route(api::USAGE, get(usage::get))
            .route(api::REGRADES, post(regrades::start))
            .route(api::DEAD_LETTERS, get(deadletters::list))
            .route(
                api::DEAD_LETTER_REQUEUE.template(),
                post(deadletters::requeue),
            )
            .route(api::DEAD_LETTER_DROP.template(), post(deadletters::drop))
            .route(api::WORKERS, get(workers::list))
            .route(api::DATASETS, get(datasets::list))
            .route(api::SWEEP.template(), get(sweeps::status))
            .route(api::SWEEP_CANCEL.template(), post(sweeps::cancel))
            .merge(ui::routes())
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(jobs::ready))
            .layer(axum::extract::DefaultBodyLimit::max(small))
            .layer(RequestBodyLimitLayer::new(small))
            .layer(RequestBodyTimeoutLayer::new(ANSWER_WITHIN))
            // Until the answer's head: an event stream's body goes on as long as its job.
            .layer(TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                ANSWER_WITHIN,
            ));
        uploads
            .merge(batches)
            .merge(declarations)
            .merge(rest)
            .layer(TraceLayer::new_for_http())
            .with_state(self)
    }
}
