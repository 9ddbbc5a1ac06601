//! `raid-gateway`: the one door students knock on (docs/architecture.md, "The trust boundary").
//!
//! Students hold only their own Ed25519 key. Every request they make is signed (RFC 9421, [`auth`]); the gateway
//! checks it against the account registry, then does on their behalf what the 2025 client did with the course's
//! shared credentials: it binds a new job id to its owner and takes its upload ([`uploads`]; a chunked one:
//! [`projects`]), verifies, attests and queues the signed job with the server's clock ([`admission`]), streams a
//! job's events as Server-Sent Events ([`events`]), and hands out a job's `/build` ([`artifact`]) and its scores as
//! the caller may see them ([`results`]); graded submissions are judged against the course file's deadlines and
//! extensions ([`submissions`], [`extensions`]); a student's sweeps are listed and cancelled whole ([`sweeps`]).
//! Every read, write and cancel goes through [`access`], which says who may touch which job. Workers run only jobs
//! a trusted gateway attested. Staff also get a dashboard at `/ui` ([`ui`]) and everyone's metrics at `/metrics`.
//!
//! The gateway runs as `raid gateway`, or inside a worker process when the worker's config sets `gateway.listen`
//! (the embedded default for one machine). It serves TLS when given a certificate and key, and plain HTTP only on a
//! loopback address.
//!
//! A library of its own beside the worker's: it speaks to the queue, the store and Redis through `rai-backends`
//! and never to Docker, so it does not link bollard; the `raid` binary serves it (`raid gateway`) and the worker
//! embeds it. Admission is the one place a job is let in ([`admission`]); the HTTP handlers and the dashboard
//! both call it.
//!
//! # Layout
//! - [`state`]: [`Gateway`], what every handler shares, and how it is connected from the configuration.
//! - [`routes`]: the one route table (paths from [`rai_common::api::ROUTES`]), with its body limits and timeouts.
//! - [`serve`]: listening, TLS and certificate renewal.
//! - [`auth`]: who is asking (RFC 9421 signatures against the registry); [`access`]: who may touch which job.
//! - [`admission`]: a submitted job's steps, from verify to queue; [`jobs`]: the job routes over it.
//! - [`uploads`], [`projects`]: whole-archive and chunked uploads; [`submissions`], [`extensions`], [`regrades`],
//!   [`results`], [`usage`]: grading; [`events`], [`artifact`]: what a job says and leaves.
//! - [`quotas`], [`per_user`]: limits on one student's use; [`sweep`]: what expires; [`watched`]: files reread
//!   when they change.
//! - [`deadletters`], [`workers`], [`datasets`], [`sweeps`]: the rest of the API; [`ui`]: the staff dashboard.
//! - [`error`]: a refusal as the student sees it ([`ApiError`]) and why the gateway could not start
//!   ([`StartError`]).
//! - [`metrics`]: the process's metrics, shared with the worker (`raid-metrics`).

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
mod routes;
mod serve;
mod state;
mod submissions;
mod sweep;
mod sweeps;
mod ui;
mod uploads;
mod usage;
mod watched;
mod workers;

/// Admission judges a build file by the same policy the worker resolves its limits with.
pub use rai_common::policy;
/// One set of metrics for the whole process: the worker and the gateway count into the same.
pub use raid_metrics as metrics;

pub use error::{ApiError, StartError};
pub use per_user::UserSlots;
pub use serve::{Listening, serve};
pub use state::{Clock, Gateway};
pub use submissions::UnpackedUploads;
