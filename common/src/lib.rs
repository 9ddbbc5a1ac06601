//! `rai-common`: everything the rai binaries share.
//!
//! A student's `rai` reads a build file and a profile, signs a [`job::JobRequest`] and hands it to a queue; a `raid`
//! worker verifies it against the account registry and runs it. The types both sides must agree on live here, so
//! the client and the worker can never drift apart on what a job, a build file or a configuration means.
//!
//! # Layout
//! - [`archive`]: packing a project as tar + zstd, and unpacking one that may be hostile.
//! - [`aws`]: S3, SQS and STS clients from the config (AWS itself, or a stand-in such as moto).
//! - [`build_spec`]: `rai_build.yml`, read strictly, with errors at line and column.
//! - [`config`]: the layered configuration (defaults, files, environment, flags) with encrypted values.
//! - [`connect`]: opening the configured queue and store.
//! - [`account`]: the student's profile (private key) and the account registry (public keys, revocation).
//! - [`job`]: job ids, the signed job message, and its verification.
//! - [`yaml`]: the strict, position-keeping YAML reader under all of the above.
//! - [`queue`]: the job queue ([`queue::JobQueue`]) over Redis Streams or SQS, with leases and dead letters.
//! - [`store`]: object storage ([`store::ObjectStore`]) on S3 or a directory, streaming both ways.
//! - [`units`]: durations and sizes as people write them (`10m`, `4g`).
//! - [`paths`]: home-relative file locations on every OS.
//! - [`events`]: job events over Redis (live pub/sub plus history), job state, cancel requests, heartbeats.
//! - [`errors`]: the error types, one per concern.
//! - [`testenv`]: the local services' addresses for tests (set by `deploy/local/test.sh`).

pub mod account;
#[cfg(feature = "backends")]
pub mod archive;
#[cfg(feature = "backends")]
pub mod aws;
pub mod build_spec;
pub mod config;
#[cfg(feature = "backends")]
pub mod connect;
pub mod errors;
#[cfg(feature = "backends")]
pub mod events;
pub mod job;
pub mod paths;
#[cfg(feature = "backends")]
pub mod queue;
#[cfg(feature = "backends")]
pub mod redis_link;
#[cfg(feature = "backends")]
pub mod store;
pub mod testenv;
pub mod units;
pub mod yaml;

pub use build_spec::BuildSpec;
pub use config::Config;
pub use job::{JobId, JobRequest, SignedJob};

/// The version of the rai crates, sent in every job so workers can tell old clients apart.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
