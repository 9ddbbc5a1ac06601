//! A refusal, as the student sees it: an HTTP status that says what kind of refusal it is and a JSON
//! [`ErrorBody`](rai_common::api::ErrorBody) whose message says what to do. Backend failures become 503s that say
//! nothing was lost, with the cause logged here rather than shown to students.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rai_common::api::ErrorBody;

/// An HTTP refusal with a message for the student.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds until trying again may succeed, sent as `Retry-After` (a 429's or a 503's).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
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
    }

    /// A backend (Redis, the queue, the store) failed: logged with its cause, told as "try again".
    pub fn unavailable<E: std::fmt::Display>(what: &str, error: E) -> ApiError {
        crate::metrics::metrics().backend_error(&error);
        tracing::error!(%error, "{what}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the gateway cannot {what} right now; nothing was lost, try again in a minute"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.message,
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
}
