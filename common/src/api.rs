//! The gateway API (docs/architecture.md, "The gateway API"): its paths and the JSON bodies that cross it, shared
//! by the gateway that serves them and the client that calls them.
//!
//! Every request is signed (RFC 9421, see [`crate::httpsig`]); every refusal is an [`ErrorBody`] with a message
//! written for the student, beside an HTTP status that says what kind of refusal it is.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::account::Role;
use crate::job::JobId;
use crate::record::JobRecord;

/// The path of the upload API.
pub const UPLOADS: &str = "/v1/uploads";
/// The path of the jobs API.
pub const JOBS: &str = "/v1/jobs";
/// Who the signature says is asking.
pub const WHOAMI: &str = "/v1/whoami";

/// `/v1/uploads/{job}`: where an fs-store upload streams its body.
pub fn upload_path(job: &JobId) -> String {
    format!("{UPLOADS}/{job}")
}

/// `/v1/uploads/{job}/complete`: where a multipart upload is finished.
pub fn upload_complete_path(job: &JobId) -> String {
    format!("{UPLOADS}/{job}/complete")
}

/// `/v1/jobs/{job}`: a job's state.
pub fn job_path(job: &JobId) -> String {
    format!("{JOBS}/{job}")
}

/// `/v1/jobs/{job}/events`: a job's events as Server-Sent Events.
pub fn events_path(job: &JobId) -> String {
    format!("{JOBS}/{job}/events")
}

/// `/v1/jobs/{job}/cancel`.
pub fn cancel_path(job: &JobId) -> String {
    format!("{JOBS}/{job}/cancel")
}

/// `/v1/jobs/{job}/artifact`: the job's `/build`.
pub fn artifact_path(job: &JobId) -> String {
    format!("{JOBS}/{job}/artifact")
}

/// `POST /v1/uploads`: room for a project archive of `size` bytes hashing to `sha256`, under a new job id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    pub job: JobId,
    pub size: u64,
    /// Hex SHA-256 of the archive.
    pub sha256: String,
}

/// How to send the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum UploadPlan {
    /// PUT the whole body, signed, to `path` on the gateway (fs store).
    Stream { path: String },
    /// PUT each `part_size` slice of the archive to its presigned URL (S3 multipart), in any order and in
    /// parallel, then POST the parts' ETags to `complete`.
    Parts {
        upload_id: String,
        part_size: u64,
        urls: Vec<String>,
        complete: String,
    },
}

/// One uploaded part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletedPart {
    /// From 1.
    pub number: u32,
    pub etag: String,
}

/// `POST /v1/uploads/{job}/complete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteUpload {
    pub upload_id: String,
    pub parts: Vec<CompletedPart>,
}

/// The answer to `POST /v1/jobs` (whose body is the student's [`crate::job::SignedJob`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub job: JobId,
    pub queue: String,
    /// The gateway's clock: the time deadlines and records trust.
    pub accepted_at: DateTime<Utc>,
    /// Something the student should know about the queued job (no worker serves its queue right now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The answer to `GET /v1/whoami`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    pub user: String,
    pub team: String,
    pub role: Role,
}

/// The answer to `GET /v1/jobs?user=U&limit=N`: finished jobs' records, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub records: Vec<JobRecord>,
}

/// The query of `GET /v1/jobs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryQuery {
    /// Whose jobs; the signer's own when absent.
    pub user: Option<String>,
    pub limit: Option<usize>,
}

/// Every refusal's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// What a request's signature must cover: the method, the path and the query (so a signature for one request
/// never fits another), and, for a request with a body, its `Content-Digest` (so the body cannot be swapped).
/// The signature's parameters must carry `created`, `nonce` and `keyid` (the username).
pub fn signed_components(has_body: bool) -> Vec<String> {
    let mut components = vec!["@method".to_string(), "@path".into(), "@query".into()];
    if has_body {
        components.push("content-digest".into());
    }
    components
}

/// Whether a request of this method carries a body the signature must cover.
pub fn method_has_body(method: &str) -> bool {
    matches!(
        method.to_ascii_uppercase().as_str(),
        "POST" | "PUT" | "PATCH"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_covered_exactly_when_the_method_carries_one() {
        for method in ["POST", "put", "PATCH"] {
            assert!(method_has_body(method));
        }
        for method in ["GET", "HEAD", "DELETE"] {
            assert!(!method_has_body(method));
        }
        assert_eq!(signed_components(false), ["@method", "@path", "@query"]);
        assert_eq!(
            signed_components(true),
            ["@method", "@path", "@query", "content-digest"]
        );
    }

    #[test]
    fn upload_plans_name_their_method() {
        let plan = UploadPlan::Stream {
            path: upload_path(&JobId::new()),
        };
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["method"], "stream");
        assert_eq!(serde_json::from_value::<UploadPlan>(json).unwrap(), plan);
    }
}
