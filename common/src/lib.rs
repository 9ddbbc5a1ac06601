//! `rai-common`: the protocol that the rai client and the servers share.
//!
//! A student's `rai` reads a build file and a profile, signs a [`job::JobRequest`] and hands it on; a `raid`
//! worker verifies it against the account registry, runs it, and reports back in events, state and a record. Every
//! value that crosses between them is defined here, as a type, so the two sides can never drift apart on what a job,
//! a build file, an event or a configuration means. This crate does no network IO: the queue, the store and the
//! event bus that carry these values are in `rai-backends`.
//!
//! # Layout
//! - [`build_spec`]: `rai_build.yml`, read as the original read it, with errors and warnings at line and column.
//! - [`course`]: `course.yml`, a term's assignments and deadlines on the server's clock.
//! - [`config`]: the layered configuration (defaults, files, environment, flags) with encrypted values.
//! - [`account`]: the student's profile (private key) and the account registry (public keys, roles, revocation).
//! - [`job`]: job ids, the signed job message, the gateway's attestation of it, and their verification.
//! - [`login_link`]: the staff dashboard's one-time login link, signed with the staff member's key.
//! - [`api`]: the gateway API's paths and bodies; [`httpsig`]: the request signatures it checks (RFC 9421).
//! - [`objects`]: the store keys of a job's upload, output and record.
//! - [`event`]: a job's events as they travel (`seq`, `ts`, `kind`).
//! - [`state`]: a job's state while it runs, and a worker's heartbeat.
//! - [`record`]: what is kept of a job once it is over.
//! - [`policy`]: what a worker allows: a build file's requests checked against `raid.limits` and the image
//!   allow-list, shared by the gateway (admission), the worker (limits) and `rai run --local`.
//! - [`usage`]: jobs, GPU-hours, failures and waits summed from records.
//! - [`results`]: a job's scores (`/build/results.json`, Gradescope's format) and who may see which, when.
//! - [`archive`]: packing a project as tar + zstd, and unpacking one that may be hostile.
//! - [`project`]: a project as a manifest of content-addressed chunks (incremental uploads).
//! - [`yaml`]: the strict, position-keeping YAML reader under every YAML file rai reads.
//! - [`units`]: durations and sizes as people write them (`10m`, `4g`).
//! - [`paths`]: home-relative file locations on every OS.
//! - [`errors`]: the error types, one per concern.
//! - [`digest`]: the SHA-256 and size of bytes as they pass, the one hashing adapter.
//! - [`exit`]: `rai`'s documented exit codes, here so that the test kit checks them without linking the client.

pub mod account;
pub mod api;
pub mod archive;
pub mod build_spec;
pub mod config;
pub mod course;
pub mod digest;
pub mod errors;
pub mod event;
pub mod exit;
pub mod httpsig;
pub mod job;
pub mod login_link;
pub mod objects;
pub mod paths;
pub mod policy;
pub mod project;
pub mod record;
pub mod results;
pub mod state;
pub mod units;
pub mod usage;
pub mod yaml;

pub use build_spec::BuildSpec;
pub use config::Config;
pub use job::{JobId, JobRequest, SignedJob};

/// The version of the rai crates, sent in every job so workers can tell old clients apart.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The source commit the binary was built from (`unknown` for a debug build or a tree without git; see build.rs).
pub const COMMIT: &str = env!("RAI_COMMIT");

/// The date of the source commit the binary was built from (ISO 8601; `unknown` as for [`COMMIT`]).
pub const BUILD_DATE: &str = env!("RAI_BUILD_DATE");

/// What every binary's `--version` prints after its name: `0.1.0 (commit 0123456789ab)`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("RAI_COMMIT"),
    ")"
);
