//! The sandbox's errors: the job container could not be made or driven.

use thiserror::Error;

/// The job container could not be made or driven.
#[derive(Debug, Error)]
pub enum SandboxError {
    #[error("cannot create the job container: {0}")]
    Create(#[source] bollard::errors::Error),
    #[error("cannot start the job container: {0}")]
    Start(#[source] bollard::errors::Error),
    #[error("cannot run a command in the job container: {0}")]
    Exec(#[source] bollard::errors::Error),
    #[error("cannot open the gate of the job's first command: {0}")]
    Gate(#[source] std::io::Error),
    /// A limit would reach Docker as zero, which it reads as "no limit"; the policy's floors should have caught it.
    #[error("refusing to create a container without a {0} limit")]
    Unbounded(&'static str),
    #[error("cannot pull image {image}: {source}")]
    Pull {
        image: String,
        #[source]
        source: bollard::errors::Error,
    },
}
