//! The gateway's one route table: every path comes from [`rai_common::api`] (the client fills in the same
//! templates), and each group of routes gets the body limit and timeouts its bodies need.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post, put};
use rai_common::api;
use rai_common::project::batch;

use crate::{
    Gateway, artifact, datasets, deadletters, events, extensions, jobs, projects, regrades, results,
};
use crate::{submissions, sweeps, ui, uploads, usage, workers};

/// How long any other request may take to be read and answered (an event stream: to start).
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// `GET /metrics`: this process's metrics, with the depth of the queues students submit to.
async fn metrics(
    axum::extract::State(gateway): axum::extract::State<Arc<Gateway>>,
) -> axum::response::Response {
    raid_metrics::answer(
        gateway.queues.values().cloned().collect(),
        Some(gateway.bus.clone()),
    )
    .await
}

impl Gateway {
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
