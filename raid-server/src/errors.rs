//! The errors of the worker, one type per part.

use thiserror::Error;

/// The job container could not be made or driven.
#[derive(Debug, Error)]
pub enum SandboxError {
    #[error("cannot create the job container: {0}")]
    Create(String),
    #[error("cannot start the job container: {0}")]
    Start(String),
    #[error("cannot run a command in the job container: {0}")]
    Exec(String),
}
