//! The staff dashboard at `/ui`: queues and workers, jobs with filters, a job's live log and cancel, and each
//! assignment's submissions and leaderboard. Server-rendered HTML ([`page`]), one small script for the live parts,
//! every asset served from here. Staff log in with a one-time link that `rai dashboard` signs with their own key
//! ([`session`]); students are refused.
//!
//! # Layout
//! - [`session`]: the login link traded for a cookie, the session extractor, CSRF checks, logout.
//! - [`pages`]: one handler per page, reading through the API's own handlers and checks.
//! - [`page`]: templates, rendering and the static assets.
//! - [`chart`]: bar charts drawn on the server as SVG.

mod chart;
mod page;
mod pages;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::Gateway;

/// What a dashboard page may load: only the gateway's own stylesheet and script (charts are inline SVG with no
/// script), no frames around it. Student-written text is escaped by the templates already; this is the second wall
/// if an escape is ever missed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; \
     img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's routes, under `/ui`.
pub fn routes() -> Router<Arc<Gateway>> {
    use axum::http::{HeaderValue, header};
    use tower_http::set_header::SetResponseHeaderLayer;
    Router::new()
        .route("/ui", get(pages::overview))
        .route(rai_common::login_link::LOGIN_PATH, get(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/queues", get(pages::queues))
        .route("/ui/jobs", get(pages::jobs))
        .route("/ui/jobs/{job}", get(pages::job))
        .route("/ui/jobs/{job}/events", get(pages::job_events))
        .route("/ui/jobs/{job}/cancel", post(pages::cancel))
        .route("/ui/assignments/{name}", get(pages::assignment))
        .route("/ui/usage", get(pages::usage))
        .route("/ui/deadletters", get(pages::dead_letters))
        .route("/ui/deadletters/{job}", post(pages::dead_letter_action))
        .route("/ui/static/app.css", get(page::stylesheet))
        .route("/ui/static/app.js", get(page::script))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
}
