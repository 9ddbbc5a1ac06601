//! A refusal, as the student sees it: an HTTP status that says what kind of refusal it is and a JSON
//! [`ErrorBody`](rai_common::api::ErrorBody) whose message says what to do, with a stable
//! [`ErrorCode`] for the client to act on (the status's own code unless a refusal names a finer one). Backend
//! failures become 503s that say nothing was lost, with the cause logged here rather than shown to students.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rai_common::api::{ErrorBody, ErrorCode};

/// An HTTP refusal with a message for the student.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// Seconds until trying again may succeed, sent as `Retry-After` (a 429's or a 503's).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: ErrorCode::of_status(status.as_u16()),
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same refusal with a finer code than its status's.
    pub fn with_code(mut self, code: ErrorCode) -> ApiError {
        self.code = code;
        self
    }

    /// The same refusal, saying when to try again.
    pub fn retry_after(mut self, wait: std::time::Duration) -> ApiError {
        self.retry_after = Some(wait.as_secs().max(1));
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        crate::metrics::metrics().auth_failures.inc();
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    /// A job the caller may not see looks exactly like one that does not exist.
    pub fn no_such_job(job: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no job {job} of yours; check the id (`rai history` lists your jobs)"),
        )
        .with_code(ErrorCode::NoSuchJob)
    }

    /// A backend (Redis, the queue, the store) failed: logged with its cause, told as "try again".
    pub fn unavailable<E: std::fmt::Display + rai_backends::errors::Backend>(
        what: &str,
        error: E,
    ) -> ApiError {
        crate::metrics::metrics().backend_error(&error);
        tracing::error!(%error, "{what}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the gateway cannot {what} right now; nothing was lost, try again in a minute"),
        )
    }
}

/// A course file's refusal: an assignment that is not there is a bad request, a deadline passed is forbidden.
impl From<rai_common::course::SubmissionRefused> for ApiError {
    fn from(refused: rai_common::course::SubmissionRefused) -> ApiError {
        use rai_common::course::SubmissionRefused as R;
        let status = match refused {
            R::NoAssignments | R::NoSuchAssignment { .. } => StatusCode::BAD_REQUEST,
            R::LateClosed { .. } | R::NoLate { .. } => StatusCode::FORBIDDEN,
        };
        ApiError::new(status, refused.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.message,
                code: self.code,
            }),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_that_knows_when_says_it_in_retry_after() {
        let response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "later")
            .retry_after(std::time::Duration::from_millis(90_500))
            .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "90");
        let plain = ApiError::bad_request("no").into_response();
        assert!(plain.headers().get("retry-after").is_none());
    }

    #[tokio::test]
    async fn a_refusal_carries_its_status_code_or_a_finer_one() {
        async fn body(e: ApiError) -> ErrorBody {
            let bytes = axum::body::to_bytes(e.into_response().into_body(), 1 << 16)
                .await
                .unwrap();
            serde_json::from_slice(&bytes).unwrap()
        }
        assert_eq!(
            body(ApiError::forbidden("no")).await.code,
            ErrorCode::Forbidden
        );
        let job = body(ApiError::no_such_job("j1")).await;
        assert_eq!(job.code, ErrorCode::NoSuchJob);
        assert!(job.error.contains("no job j1 of yours"), "{}", job.error);
        let queue = ApiError::bad_request("no such queue").with_code(ErrorCode::NoSuchQueue);
        assert_eq!(queue.status, StatusCode::BAD_REQUEST);
        assert_eq!(body(queue).await.code, ErrorCode::NoSuchQueue);
    }
}

/// Why the gateway could not start: each says what to set or fix, and keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "gateway.attestation_key is not set; make a key with `rai-keygen gateway-key --out FILE` and name it there"
    )]
    NoAttestationKey,
    #[error("cannot read the gateway's attestation key")]
    AttestationKey(#[source] rai_common::errors::AccountError),
    #[error("gateway.queues is empty; name the queues students may submit to")]
    NoQueues,
    #[error("cannot open the queue {name}")]
    Queue {
        name: String,
        #[source]
        source: rai_backends::errors::QueueError,
    },
    #[error("cannot open the store")]
    Store(#[source] rai_backends::errors::StoreError),
    #[error("cannot reach Redis for job events")]
    Events(#[source] rai_backends::errors::EventError),
    #[error(transparent)]
    File(#[from] crate::watched::FileError),
    #[error("gateway.listen is not set; give the address to serve on, such as 0.0.0.0:8443")]
    NoListen,
    #[error("gateway.listen {listen:?} is not host:port")]
    ListenAddress {
        listen: String,
        #[source]
        source: std::io::Error,
    },
    #[error("gateway.listen {listen:?} names no address")]
    NoAddress { listen: String },
    #[error("set both gateway.tls_cert and gateway.tls_key, or neither")]
    HalfTls,
    #[error(
        "gateway.listen is {addr}, not a loopback address, and no TLS certificate is set: students' keys \
         would sign requests anyone on the network can read; set gateway.tls_cert and gateway.tls_key \
         (or listen on 127.0.0.1)"
    )]
    PlainBeyondLoopback { addr: std::net::SocketAddr },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot load the gateway's TLS certificate {} and key {}", cert.display(), key.display())]
    Tls {
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}
