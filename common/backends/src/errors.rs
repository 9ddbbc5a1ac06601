//! The error types of the backends, one per interface, each message written for the person who has to act on it.

use thiserror::Error;

/// A job queue operation failed.
#[derive(Debug, Error)]
pub enum QueueError {
    #[error(
        "cannot reach the job queue at {endpoint} after retrying ({reason}); check that it is running and the config's address"
    )]
    Unreachable { endpoint: String, reason: String },
    #[error(
        "the job queue \"{name}\" does not exist at {endpoint}; an admin creates it (see docs/admin.md)"
    )]
    NoSuchQueue { name: String, endpoint: String },
    #[error("the job message is {size} bytes, over the queue's limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("the lease on message {id} ran out and the message may be with another worker")]
    LeaseLost { id: String },
    #[error("job queue at {endpoint}: {message}")]
    Backend { endpoint: String, message: String },
}

/// Publishing or following job events failed.
#[derive(Debug, Error)]
pub enum EventError {
    #[error(
        "cannot reach Redis at {endpoint} after retrying ({reason}); check that it is running and the config's events.redis_url"
    )]
    Unreachable { endpoint: String, reason: String },
    #[error("Redis at {endpoint}: {message}")]
    Backend { endpoint: String, message: String },
    #[error(
        "job {job}: events were published by someone else (expected seq {expected}, found {found}); another worker has the job"
    )]
    Conflict {
        job: String,
        expected: u64,
        found: u64,
    },
}

/// An object store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("store key \"{key}\" {reason}")]
    BadKey { key: String, reason: String },
    #[error("object store {store}: {what}")]
    Missing { store: String, what: String },
    #[error("no object \"{key}\" in {store}")]
    NotFound { key: String, store: String },
    #[error("access to \"{key}\" in {store} was denied; check the credentials and their policy")]
    Denied { key: String, store: String },
    #[error(
        "cannot reach the object store {store} after retrying ({reason}); check that it is running and the config's address"
    )]
    Unreachable { store: String, reason: String },
    #[error("object store {store}: {message}")]
    Backend { store: String, message: String },
    #[error("object \"{key}\": {reason}")]
    Io { key: String, reason: String },
}

/// Trading the course's base AWS credentials for a student's short-lived ones (STS AssumeRole) failed.
#[derive(Debug, Error)]
#[error(
    "cannot get temporary AWS credentials for role {role} from {endpoint} ({message}); check aws.endpoint_url and aws.role_arn in the course config, or ask your instructor"
)]
pub struct StsError {
    pub endpoint: String,
    pub role: String,
    pub message: String,
}
