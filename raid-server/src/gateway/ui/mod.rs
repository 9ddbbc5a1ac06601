//! The staff dashboard at `/ui`: queues and workers, jobs with filters, a job's live log and cancel, and each
//! assignment's submissions and leaderboard. Server-rendered HTML ([`page`]), one small script for the live parts,
//! every asset served from here. Staff log in with a one-time link that `rai dashboard` signs with their own key
//! ([`session`]); students are refused.
//!
//! # Layout
//! - [`session`]: the login link traded for a cookie, the session extractor, CSRF checks, logout.
//! - [`pages`]: one handler per page, reading through the API's own handlers and checks.
//! - [`page`]: templates, rendering and the static assets.

mod page;
mod pages;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use super::Gateway;

/// The dashboard's routes, under `/ui`.
pub fn routes() -> Router<Arc<Gateway>> {
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
        .route("/ui/static/app.css", get(page::stylesheet))
        .route("/ui/static/app.js", get(page::script))
}
