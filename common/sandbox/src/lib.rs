//! The job sandbox of rai: one locked-down Docker container per job, the limits it runs under, and its image.
//!
//! The worker (`raid`) runs every job of the course in it, and the student's `rai run --local` runs a project in it
//! on the student's own Docker engine before it spends a place in the queue, so a build file meets the same
//! sandbox in both: the same policy turns its requests into limits, the same container body (read-only root, `/src`
//! read-only, `/build` writable, a sized `/tmp`, no network unless allowed, no capabilities, a non-root user,
//! `NVIDIA_VISIBLE_DEVICES` pinned), the same environment. It talks to Docker and nothing else: no queue, no store,
//! no events, so the student's `rai` links it without Redis or an AWS SDK. Whoever runs the job says its lines.
//!
//! # Layout
//! - [`policy`]: a build file's requests checked against a `raid` section's limits and image allow-list
//!   (re-exported from [`rai_common::policy`], where the gateway reads it without linking Docker).
//! - [`job`]: a job's container made from those limits and the `raid` section ([`JobSandbox`]).
//! - [`container`]: the container itself ([`SandboxSpec`], [`Sandbox`]): start, run a command, kill, remove.
//! - [`image`]: the job's image, pulled when missing.
//! - [`ending`]: how a job's end reads when a command ended it.
//! - [`build_quota`]: how much a job wrote to `/build`, watched while it runs.
//! - [`gpu`]: what a container is told of GPUs.
//! - [`error`]: the sandbox's error, [`SandboxError`].

pub mod build_quota;
pub mod container;
pub mod ending;
pub mod error;
pub mod gpu;
pub mod image;
pub mod job;
/// The policy is protocol, not sandbox: the gateway admits with it without linking Docker.
pub use rai_common::policy;

/// The Docker client the sandbox drives, for callers that hold one without depending on bollard themselves.
pub use bollard::{Docker, errors::Error as DockerError};
pub use container::{Sandbox, SandboxSpec, Stream};
pub use error::SandboxError;
pub use job::{JOB_LABEL, JobFolders, JobSandbox};
pub use policy::JobLimits;
