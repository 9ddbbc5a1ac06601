//! The error types of the backends, one per interface, each message written for the person who has to act on it.
//! Every error keeps what caused it as its source; messages show the whole chain (an SDK error's own text is only
//! "service error", its cause says what the service said).

use thiserror::Error;

/// Any error, as a cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error and its causes as one line: "service error: NoSuchKey: The specified key does not exist.".
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Which backend an error came from, as the `backend_errors` metric counts it: each error type says so itself
/// (never guessed from its name). Errors from outside the backends (a task that panicked, a file) count as
/// `other`.
pub trait Backend {
    /// `redis`, `queue`, `store` or `other`.
    fn backend(&self) -> &'static str;
}

impl Backend for QueueError {
    fn backend(&self) -> &'static str {
        "queue"
    }
}

impl Backend for EventError {
    fn backend(&self) -> &'static str {
        "redis"
    }
}

impl Backend for StoreError {
    fn backend(&self) -> &'static str {
        "store"
    }
}

impl Backend for redis::RedisError {
    fn backend(&self) -> &'static str {
        "redis"
    }
}

impl Backend for ArchiveError {
    fn backend(&self) -> &'static str {
        "other"
    }
}

impl Backend for serde_json::Error {
    fn backend(&self) -> &'static str {
        "other"
    }
}

impl Backend for tokio::task::JoinError {
    fn backend(&self) -> &'static str {
        "other"
    }
}

impl Backend for std::io::Error {
    fn backend(&self) -> &'static str {
        "other"
    }
}

/// A job queue operation failed.
#[derive(Debug, Error)]
pub enum QueueError {
    #[error(
        "cannot reach the job queue at {endpoint} after retrying ({}); check that it is running and the config's address",
        chain(.source.as_ref())
    )]
    Unreachable {
        endpoint: String,
        #[source]
        source: BoxError,
    },
    #[error(
        "the job queue \"{name}\" does not exist at {endpoint}; an admin creates it (see docs/admin.md)"
    )]
    NoSuchQueue { name: String, endpoint: String },
    #[error("the job message is {size} bytes, over the queue's limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("the lease on message {id} ran out and the message may be with another worker")]
    LeaseLost { id: String },
    #[error("job queue at {endpoint}: {}", chain(.source.as_ref()))]
    Backend {
        endpoint: String,
        #[source]
        source: BoxError,
    },
}

/// Publishing or following job events failed.
#[derive(Debug, Error)]
pub enum EventError {
    #[error(
        "cannot reach Redis at {endpoint} after retrying ({source}); check that it is running and the config's events.redis_url"
    )]
    Unreachable {
        endpoint: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("Redis at {endpoint}: {source}")]
    Backend {
        endpoint: String,
        #[source]
        source: redis::RedisError,
    },
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
    Denied {
        key: String,
        store: String,
        #[source]
        source: BoxError,
    },
    #[error(
        "cannot reach the object store {store} after retrying ({}); check that it is running and the config's address",
        chain(.source.as_ref())
    )]
    Unreachable {
        store: String,
        #[source]
        source: BoxError,
    },
    #[error("object store {store}: {}", chain(.source.as_ref()))]
    Backend {
        store: String,
        #[source]
        source: BoxError,
    },
    #[error("object \"{key}\": {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
}

/// A finished job's log could not be stored, or its stored copy read back.
#[derive(Debug, Error)]
pub enum ArchiveError {
    #[error("cannot read the job's events from Redis: {0}")]
    Events(#[from] EventError),
    #[error("cannot store or read the job's log: {0}")]
    Store(#[from] StoreError),
    #[error(
        "the job's log has no end event yet (last seq {last}); only a finished job's log is archived"
    )]
    NotFinished { last: u64 },
    #[error("the stored log {key} is damaged: {reason}")]
    Damaged { key: String, reason: String },
}
