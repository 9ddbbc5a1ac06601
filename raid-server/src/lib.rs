//! `raid`: the rai worker daemon, and the binary that also serves the gateway ([`raid_gateway`]).
//!
//! A worker leases signed jobs from the queue, verifies them against the account registry, and runs each in a
//! sandboxed container on this machine's GPUs, streaming the output as job events and storing `/build`.
//!
//! # Layout
//! - [`worker`]: the loop: leasing, heartbeats, registry reloads, draining.
//! - [`slots`]: the slots jobs run in, and the one job each may have ready while its current job runs.
//! - [`job`]: one job's life as a pipeline, a file per step: verify and claim (`job/mod.rs`), keep the lease
//!   (`job/lease.rs`), fetch and unpack (`job/fetch.rs`; a chunked upload from the cache: `job/materialise.rs`), get ready and wait for a slot (`job/ready.rs`), run the
//!   commands (`job/run.rs`), store, record and ack (`job/finish.rs`).
//! - [`cache`]: chunks and whole files of chunked uploads, kept between jobs within `raid.cache_bytes`.
//! - [`context`]: what every job on this worker shares; [`setup`]: it, built from the configuration.
//! - [`policy`]: a build file's requests against this worker's limits and image allow-list (from [`rai_sandbox`]).
//! - [`gpu`]: this worker's GPUs and which job holds which.
//! - [`sandbox`]: the worker's side of the job container (images built from a Dockerfile, the jobs' network); the
//!   container, its limits and its `/build` quota are the shared sandbox library, [`rai_sandbox`].
//! - [`output`]: a job's output turned into batched, capped line events.
//! - [`fleet`]: life in an EC2 Auto Scaling group: scale-in protection while jobs run, a drain before termination.
//! - [`shutdown`]: drain, hand back, reload, as one value over cancellation tokens; [`notify`]: systemd readiness
//!   and watchdog.
//! - [`doctor`]: `raid doctor`, every dependency checked.
//! - [`errors`]: the worker's error types.
//! - [`metrics`]: `/metrics` for Prometheus, one set per process ([`raid_metrics`], shared with the gateway).
//!
//! The gateway, the authenticated HTTP API students talk to, is its own library, `raid-gateway` (it never talks to
//! Docker); this binary serves it as `raid gateway`, or beside the worker when `gateway.listen` is set.

pub mod cache;
pub mod context;
pub mod doctor;
pub mod errors;
pub mod fleet;
pub mod gpu;
pub mod job;
pub mod notify;
pub mod output;
pub mod sandbox;
pub mod setup;
pub mod shutdown;
pub mod slots;
pub mod worker;

/// The policy lives in the shared sandbox library: the gateway admits with it, the worker resolves limits with it,
/// and `rai run --local` runs under the same limits.
pub use rai_sandbox::policy;
/// One set of metrics for the whole process, shared with an embedded gateway.
pub use raid_metrics as metrics;
