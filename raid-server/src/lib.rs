//! `raid`: the rai worker daemon.
//!
//! A worker leases signed jobs from the queue, verifies them against the account registry, and runs each in a
//! sandboxed container on this machine's GPUs, streaming the output as job events and storing `/build`.
//!
//! # Layout
//! - [`policy`]: a build file's requests against this worker's limits and image allow-list.
//! - [`gpu`]: this worker's GPUs and which job holds which.
//! - [`sandbox`]: the job container and the commands run in it.
//! - [`job`]: one job's life, from a leased message to its ack.
//! - [`disk`]: how much a job wrote to `/build`, watched while it runs.
//! - [`output`]: a job's output turned into batched, capped line events.
//! - [`setup`]: a worker built from its configuration.
//! - [`worker`]: the loop: slots, leasing, heartbeats, registry reloads, draining.
//! - [`shutdown`]: signals (drain, stop now, reload); [`notify`]: systemd readiness and watchdog.
//! - [`doctor`]: `raid doctor`, every dependency checked.
//! - [`errors`]: the worker's error types.

pub mod disk;
pub mod doctor;
pub mod errors;
pub mod gpu;
pub mod job;
pub mod notify;
pub mod output;
pub mod policy;
pub mod sandbox;
pub mod setup;
pub mod shutdown;
pub mod worker;
