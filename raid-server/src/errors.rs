//! The errors of the worker, one type per part, each keeping its source.

use rai_backends::errors::{EventError, StoreError};
use rai_common::errors::ArchiveError;
use rai_common::event::JobStatus;
use rai_common::units::Bytes;
use thiserror::Error;

pub use rai_sandbox::SandboxError;

/// Why a job could not run to the end of its commands. Each error says how the job ends ([`JobError::status`]):
/// refused (the student's job or upload is at fault), ended in error (this worker is at fault), or handed back to
/// the queue (the job's events could not be published, so another worker should run it).
#[derive(Debug, Error)]
pub enum JobError {
    /// The build file asks for more (or other) than this worker allows.
    #[error(transparent)]
    Policy(#[from] rai_sandbox::policy::PolicyError),
    /// The job says it is one of a sweep its build file does not make.
    #[error(transparent)]
    Sweep(#[from] rai_common::errors::SweepError),
    #[error("the job names the upload \"{key}\", which is not its own; submit again with rai")]
    ForeignUpload { key: String },
    #[error("the upload is {}, over this worker's limit of {}", Bytes(*.size).human(), Bytes(*.cap).human())]
    UploadTooLarge { size: u64, cap: u64 },
    #[error("cannot fetch the upload: {0}")]
    Fetch(#[source] StoreError),
    #[error("the upload is larger than the {} the signed job says; submit again", Bytes(*.signed).human())]
    UploadLongerThanSigned { signed: u64 },
    #[error("fetching and unpacking the upload took longer than this worker's {} (raid.fetch_timeout); submit again, and tell your course staff if it keeps happening", rai_common::units::Span(*.0))]
    FetchTimedOut(std::time::Duration),
    #[error("the upload is not a safe archive: {0}")]
    Unpack(#[source] ArchiveError),
    #[error("the upload does not match the signed job (size or SHA-256 differ); submit again")]
    UploadMismatch,
    /// A chunked upload's manifest that no server may trust (the gateway checks it too; a worker checks again).
    #[error("the project manifest is refused: {0}")]
    Manifest(#[source] rai_common::errors::ManifestError),
    /// A chunk that is not what the manifest says (a bomb, or other bytes under its id): it is deleted from the
    /// store, so the next submit sends it again.
    #[error("{0}; submit again")]
    Chunk(#[source] rai_common::errors::ChunkError),
    #[error("cannot make the job directory: {0}")]
    JobDir(#[source] std::io::Error),
    #[error("{0}")]
    Sandbox(#[from] SandboxError),
    /// A task of the job's (the unpacker, the packer) panicked or was cancelled.
    #[error("the {what} stopped unexpectedly: {source}")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    /// `commands.build_image` could not give the job its image.
    #[error("{0}")]
    ImageBuild(#[from] crate::sandbox::built_image::ImageBuildError),
    #[error("{0}")]
    Events(#[from] EventError),
}

impl JobError {
    /// How a job that met this error ends.
    pub fn status(&self) -> JobStatus {
        match self {
            JobError::Policy(_)
            | JobError::Sweep(_)
            | JobError::ForeignUpload { .. }
            | JobError::UploadTooLarge { .. }
            | JobError::Fetch(_)
            | JobError::UploadLongerThanSigned { .. }
            | JobError::Unpack(_)
            | JobError::UploadMismatch
            | JobError::Manifest(_)
            | JobError::Chunk(_) => JobStatus::Rejected,
            JobError::JobDir(_)
            | JobError::Sandbox(_)
            | JobError::Task { .. }
            | JobError::FetchTimedOut(_) => JobStatus::Error,
            JobError::ImageBuild(e) => {
                use crate::sandbox::built_image::ImageBuildError as E;
                match e {
                    E::NoDockerfile(_)
                    | E::Dockerfile(_)
                    | E::BaseNotAllowed { .. }
                    | E::Policy(_) => JobStatus::Rejected,
                    E::Failed(_) | E::TooLarge { .. } => JobStatus::Failed,
                    E::TimedOut(_) => JobStatus::TimedOut,
                    E::Context(_) | E::Engine(_) | E::Packer(_) | E::Pull(_) => JobStatus::Error,
                }
            }
            // Never recorded: the job goes back to the queue (see `hands_back`).
            JobError::Events(_) => JobStatus::Requeued,
        }
    }

    /// What the job's owner reads as the reason it ended: the error, and for a fault of the worker (not of the job)
    /// what to do about it, since resubmitting is all a student can do.
    pub fn reason(&self, worker: &str) -> String {
        match self {
            JobError::JobDir(_) | JobError::Sandbox(_) | JobError::Task { .. } => format!(
                "{self}; this is a fault of worker {worker}, not of your job: submit again, and tell your course \
                 staff if it keeps happening"
            ),
            JobError::ImageBuild(
                crate::sandbox::built_image::ImageBuildError::Context(_)
                | crate::sandbox::built_image::ImageBuildError::Engine(_)
                | crate::sandbox::built_image::ImageBuildError::Packer(_)
                | crate::sandbox::built_image::ImageBuildError::Pull(_),
            ) => {
                format!(
                    "{self}; the image could not be built on worker {worker} for a reason outside your Dockerfile: \
                 submit again, and tell your course staff if it keeps happening"
                )
            }
            _ => self.to_string(),
        }
    }

    /// Whether the job goes back to the queue instead of ending here: its events cannot be published, so neither
    /// can its end.
    pub fn hands_back(&self) -> bool {
        matches!(self, JobError::Events(_))
    }
}

/// Why `/build` was not kept.
#[derive(Debug, Error)]
pub enum OutputError {
    /// Measured while the job ran.
    #[error("{0}")]
    OverQuota(String),
    #[error("{0}")]
    Pack(#[source] ArchiveError),
    #[error("{0}")]
    Store(#[source] StoreError),
    #[error("the packer stopped unexpectedly: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// Why a worker could not be set up from its configuration: each names the part and what to do, keeping its cause.
#[derive(Debug, Error)]
pub enum SetupError {
    #[error("cannot connect to Docker (raid.docker)")]
    Docker(#[source] rai_sandbox::DockerError),
    #[error("cannot reach the Docker engine; is it running, and may raid use its socket?")]
    DockerUnreachable(#[source] rai_sandbox::DockerError),
    #[error("raid.queues is empty; name at least one queue to serve")]
    NoQueues,
    #[error("cannot open the queue {name}")]
    Queue {
        name: String,
        #[source]
        source: rai_backends::errors::QueueError,
    },
    #[error("cannot open the store")]
    Store(#[source] StoreError),
    #[error("cannot reach Redis for job events")]
    Events(#[source] EventError),
    #[error("cannot read the account registry {}", .path.display())]
    Registry {
        path: std::path::PathBuf,
        #[source]
        source: Box<rai_common::errors::AccountError>,
    },
    #[error("cannot create the job directory {}", .path.display())]
    WorkDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the jobs' network")]
    Network(#[source] crate::sandbox::network::NetworkError),
    #[error("raid.gateway_keys: {0:?} is not a public key printed by `rai-keygen gateway-key`")]
    GatewayKey(String),
    #[error("cannot read the embedded gateway's attestation key")]
    AttestationKey(#[source] Box<rai_common::errors::AccountError>),
    #[error("cannot open the content cache in {}", .path.display())]
    Cache {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}
