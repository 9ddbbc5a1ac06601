//! The gateway API (docs/architecture.md, "The gateway API"): its paths and the JSON bodies that cross it, shared
//! by the gateway that serves them and the client that calls them.
//!
//! Every request is signed (RFC 9421, see [`crate::httpsig`]); every refusal is an [`ErrorBody`] with a message
//! written for the student, beside an HTTP status that says what kind of refusal it is.
//!
//! Over 450 lines: the whole gateway API, routes and bodies, so the client and the gateway read one list.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use serde::{Deserialize, Serialize};

use crate::account::Role;
use crate::job::JobId;
use crate::record::JobRecord;

/// The path of the upload API.
pub const UPLOADS: &str = "/v1/uploads";
/// The path of the chunked-upload API (issue 30).
pub const PROJECTS: &str = "/v1/projects";
/// The path of the jobs API.
pub const JOBS: &str = "/v1/jobs";
/// Who the signature says is asking.
pub const WHOAMI: &str = "/v1/whoami";

/// A route of the API with one parameter, written once: the gateway's route table takes its [`Route::template`]
/// and clients fill it in with [`Route::path`], so the two cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route(&'static str);

impl Route {
    /// The route as axum matches it (`/v1/jobs/{job}`).
    pub const fn template(self) -> &'static str {
        self.0
    }

    /// The route with its parameter filled in. Every value filled in is a job id or an assignment name (letters,
    /// digits and `-_.`, as the course file checks), so nothing needs escaping.
    pub fn path(self, value: impl std::fmt::Display) -> String {
        let (open, close) = (
            self.0.find('{').expect("a route has a parameter"),
            self.0.find('}').expect("a route's parameter is closed"),
        );
        format!("{}{value}{}", &self.0[..open], &self.0[close + 1..])
    }
}

/// Where an fs-store upload streams its body.
pub const UPLOAD: Route = Route("/v1/uploads/{job}");
/// Where a multipart upload is finished.
pub const UPLOAD_COMPLETE: Route = Route("/v1/uploads/{job}/complete");
/// Where batches of a chunked upload's chunks ([`crate::project::batch`]) go through the gateway (fs store).
pub const PROJECT_CHUNKS: Route = Route("/v1/projects/{job}/chunks");
/// Where a chunked upload is finished once its missing chunks are sent.
pub const PROJECT_COMPLETE: Route = Route("/v1/projects/{job}/complete");
/// A job's state.
pub const JOB: Route = Route("/v1/jobs/{job}");
/// A job's events as Server-Sent Events.
pub const JOB_EVENTS: Route = Route("/v1/jobs/{job}/events");
/// Asks a job's worker to stop it.
pub const JOB_CANCEL: Route = Route("/v1/jobs/{job}/cancel");
/// The job's scores, as much of them as the caller may see now.
pub const JOB_RESULTS: Route = Route("/v1/jobs/{job}/results");
/// The job's `/build`.
pub const JOB_ARTIFACT: Route = Route("/v1/jobs/{job}/artifact");
/// An assignment's leaderboard.
pub const RANKING: Route = Route("/v1/rankings/{assignment}");
/// An assignment's extensions (staff).
pub const EXTENSIONS: Route = Route("/v1/extensions/{assignment}");
/// Sends a dead letter's job back to its queue (staff).
pub const DEAD_LETTER_REQUEUE: Route = Route("/v1/deadletters/{job}/requeue");
/// Ends a dead letter's job as `error` (staff).
pub const DEAD_LETTER_DROP: Route = Route("/v1/deadletters/{job}/drop");
/// The jobs of one of the caller's sweeps, with their states.
pub const SWEEP: Route = Route("/v1/sweeps/{sweep}");
/// Asks the workers to stop every job of one of the caller's sweeps.
pub const SWEEP_CANCEL: Route = Route("/v1/sweeps/{sweep}/cancel");

/// Every route with a parameter, for the test that the gateway serves each.
pub const ROUTES: [Route; 15] = [
    UPLOAD,
    UPLOAD_COMPLETE,
    PROJECT_CHUNKS,
    PROJECT_COMPLETE,
    JOB,
    JOB_EVENTS,
    JOB_CANCEL,
    JOB_RESULTS,
    JOB_ARTIFACT,
    RANKING,
    EXTENSIONS,
    DEAD_LETTER_REQUEUE,
    DEAD_LETTER_DROP,
    SWEEP,
    SWEEP_CANCEL,
];

/// The answer to `GET /v1/jobs/{job}/results`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResults {
    pub job: JobId,
    /// The assignment a graded submission was for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<String>,
    /// What the caller may see now; `None` when the job kept no scores, or none are the caller's to see yet.
    pub results: Option<crate::results::Results>,
    /// Why `results` is `None`: the job ended without scores, or they are not to be seen yet (and until when).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `POST /v1/uploads`: room for a project archive of `size` bytes hashing to `sha256`, under a new job id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    pub job: JobId,
    pub size: u64,
    /// Hex SHA-256 of the archive.
    pub sha256: String,
    /// The datasets the project's build file asks for: a course that offers none of them refuses before a byte is
    /// sent (the submit is checked again).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<String>,
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

/// `POST /v1/projects`: a project described by its manifest, under a new job id (issue 30). The gateway checks the
/// manifest, keeps it as the job's input, and answers which chunks it lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectRequest {
    pub job: JobId,
    pub manifest: crate::project::Manifest,
    /// As [`UploadRequest::datasets`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<String>,
}

/// The answer to `POST /v1/projects`: the chunks to send (those the owner's store lacks), how, and where to say
/// they were sent. The signed job then names the manifest as its input: `key`, the size and SHA-256 of the
/// manifest's canonical JSON ([`crate::project::Manifest::to_json`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectPlan {
    /// The manifest's store key (the signed job's input key).
    pub key: String,
    pub missing: Vec<crate::project::ChunkRef>,
    pub send: ChunkSending,
    /// `POST` here (signed, empty JSON object) once every missing chunk is sent.
    pub complete: String,
}

/// How to send the missing chunks, each sealed ([`crate::project::seal`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum ChunkSending {
    /// PUT them in batches ([`crate::project::batch`]), signed, to [`project_chunks_path`] on the gateway (fs
    /// store), which checks each chunk before storing any; at most `at_once` batches at a time (the gateway's
    /// per-student limit on chunk uploads).
    Stream { at_once: usize },
    /// PUT each to its presigned URL (S3), in the order of `missing`.
    Presigned { urls: Vec<String> },
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
    /// Staff (and the team's own members): every member's jobs of a team.
    pub team: Option<String>,
    /// Staff: everyone's jobs.
    #[serde(default)]
    pub all: bool,
    pub limit: Option<usize>,
}

/// `/v1/submissions`: graded submissions.
pub const SUBMISSIONS: &str = "/v1/submissions";

/// An assignment's deadline as one student (or team) has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentDeadline {
    pub assignment: String,
    /// The assignment's title in the course file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(flatten)]
    pub deadline: crate::course::Deadline,
    /// The deadline as a sentence in the course's time zone ("due 2026-12-12 23:59 CST, late until ...").
    pub text: String,
}

/// Who an extension was granted to, as the registry knows the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grantee {
    User,
    Team,
    /// Neither a user nor a team in the registry: a typo, or someone not enrolled yet.
    Unknown,
}

/// One extension of an assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub name: String,
    pub grantee: Grantee,
    #[serde(flatten)]
    pub deadline: AssignmentDeadline,
}

/// The answer to `GET /v1/extensions/{assignment}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extensions {
    /// The assignment's own times.
    pub course: AssignmentDeadline,
    pub extensions: Vec<Extension>,
}

/// `/v1/usage`: jobs, GPU-hours, failures and waits (a student's own; staff: everyone's).
pub const USAGE: &str = "/v1/usage";

/// The query of `GET /v1/usage`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageQuery {
    /// `user` (default), `team`, `assignment` or `day`.
    pub by: Option<String>,
    /// Jobs accepted on or after this day (`2026-12-01`, in the course's time zone) or instant (RFC 3339).
    pub since: Option<String>,
}

/// `/v1/deadletters`: the jobs workers gave up on (staff); `/{job}/requeue` and `/{job}/drop` act on one.
pub const DEAD_LETTERS: &str = "/v1/deadletters";

/// One dead letter, read from its message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterView {
    pub queue: String,
    /// The queue's id of the message.
    pub message: String,
    /// The job, its owner and when it was accepted, as the gateway's acceptance says (`None`: the message does not
    /// read as a job; it can only be dropped).
    pub job: Option<JobId>,
    pub user: Option<String>,
    pub team: Option<String>,
    pub assignment: Option<String>,
    pub accepted_at: Option<DateTime<Utc>>,
    /// Times it was handed to a worker (0: the backend does not say).
    pub deliveries: u32,
    /// Why it is here, as its owner is told.
    pub reason: String,
}

/// The answer to `GET /v1/deadletters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetters {
    pub letters: Vec<DeadLetterView>,
}

/// `/v1/datasets`: the datasets the course offers to jobs.
pub const DATASETS: &str = "/v1/datasets";

/// The answer of `GET /v1/datasets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Datasets {
    pub datasets: Vec<DatasetView>,
}

/// One dataset the course offers: mounted read-only at `/data/<name>` for a job whose build file asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetView {
    pub name: String,
    /// What it is, in the course's words.
    pub about: String,
}

/// The answer of `GET /v1/sweeps/{sweep}` and of its cancel: its jobs, in the matrix's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    pub sweep: String,
    pub jobs: Vec<SweepJob>,
}

/// One job of a sweep and its state (its `combination` names its values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepJob {
    pub job: String,
    pub state: crate::state::JobState,
}

/// `/v1/workers`: the workers' heartbeats (staff).
pub const WORKERS: &str = "/v1/workers";

/// The answer of `GET /v1/workers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workers {
    /// The gateway's clock when it read the heartbeats: `alive` was judged at this time.
    pub now: DateTime<Utc>,
    pub workers: Vec<WorkerView>,
}

/// One worker as staff see it: its heartbeat, and whether that is recent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    #[serde(flatten)]
    pub info: crate::state::WorkerInfo,
    /// False when the worker stopped heartbeating (crashed, hung, or cut off from Redis).
    pub alive: bool,
}

/// A graded submission as the gateway recorded it when it accepted it (`submissions/<assignment>/<team>/<job>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmissionRecord {
    pub job: JobId,
    pub assignment: String,
    pub team: String,
    pub user: String,
    /// The gateway's clock.
    pub accepted_at: DateTime<Utc>,
    pub late: bool,
    /// The student's signed job, kept so that staff can run the submission again (`rai regrade`) with the course's
    /// build file of the day; absent in records from before regrades.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<crate::job::SignedJob>,
    /// A regrade's record: the submission it ran again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regrade_of: Option<JobId>,
}

/// A submission with how its job ended, as `rai submitted` and the staff's CSV show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    #[serde(flatten)]
    pub record: SubmissionRecord,
    /// `None` while the job has not ended.
    pub status: Option<crate::event::JobStatus>,
    /// The ranked command's worker-measured wall time, when the job succeeded and the assignment ranks.
    pub ranked_seconds: Option<f64>,
    /// Whether this is the submission that is graded (the course file's `counts`).
    pub counts: bool,
    /// The run's total score and its maximum (its `/build/results.json`), when the caller may see them now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_score: Option<f64>,
    /// A submission that was regraded: its latest regrade's job, and the original run's score (`score` is the
    /// regrade's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regraded_by: Option<JobId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_score: Option<f64>,
}

/// What `POST /v1/regrades` runs again (staff).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegradeRequest {
    pub assignment: String,
    /// Only these teams (default: every team with a submission).
    #[serde(default)]
    pub teams: Vec<String>,
    /// Every submission of each team, not only the one that counts.
    #[serde(default)]
    pub all_submissions: bool,
}

/// One submission a regrade batch runs again, or why it cannot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegradeItem {
    pub team: String,
    /// The submission run again (`None`: the team has none).
    pub original: Option<JobId>,
    /// The regrade's job, when it was queued.
    pub job: Option<JobId>,
    /// Why it was not queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// The answer to `POST /v1/regrades`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Regrades {
    pub items: Vec<RegradeItem>,
}

/// `/v1/regrades`.
pub const REGRADES: &str = "/v1/regrades";

/// The query of `GET /v1/submissions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmissionsQuery {
    pub assignment: Option<String>,
    /// Staff only: one team's (default: every team's). A student always gets their own team's.
    pub team: Option<String>,
}

/// The answer to `GET /v1/submissions`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submissions {
    pub submissions: Vec<Submission>,
    /// Each listed assignment's deadline as the caller has it (a student's own extension included).
    #[serde(default)]
    pub deadlines: Vec<AssignmentDeadline>,
    /// Staff listing every team: each student's team (a student without one: their own name), from the registry,
    /// so a team's grade reaches members who never submitted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub teams: BTreeMap<String, String>,
}

/// One row of a leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankRow {
    /// Equal times share a rank (1, 1, 3).
    pub rank: usize,
    /// The team's name for staff and for the team itself; an anonymous name (`team-7f3a`) for other students.
    pub team: String,
    /// Whether this row is the asking student's team.
    pub yours: bool,
    pub seconds: f64,
    /// The run's score, for a ranking by score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The ranked job: for staff and for the team's own row only (another team's job id would name who they are
    /// and let a student ask for their records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobId>,
}

/// The answer to `GET /v1/rankings/{assignment}?n=N`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    pub assignment: String,
    /// Which command is timed (from 1; `None`: all of them, for a ranking by score), and whether lower is better.
    pub command: Option<usize>,
    pub lower_is_better: bool,
    /// Ranked by score (higher first, ties by time) rather than by time.
    #[serde(default)]
    pub by_score: bool,
    pub rows: Vec<RankRow>,
    /// Teams with submissions but no successful on-time run to rank.
    pub unranked: usize,
}

/// The query of `GET /v1/rankings/{assignment}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankingQuery {
    pub n: Option<usize>,
}

/// Every refusal's body: a message written for people (its words may change) and a [`ErrorCode`] a client acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    /// Absent from gateways before codes; read as [`ErrorCode::Other`].
    #[serde(default)]
    pub code: ErrorCode,
}

/// What kind of refusal a gateway sent, stable across releases: a client matches on this, never on the message.
/// A code a newer gateway added reads as [`ErrorCode::Other`], so old clients keep working.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed or breaks a rule; the message says which.
    BadRequest,
    /// The request is not signed, or its signature, key, clock or nonce is wrong.
    Unauthorized,
    /// The caller is known but may not do this (a student on a staff route, a deadline passed).
    Forbidden,
    /// No such route or thing.
    NotFound,
    /// No job (or sweep) of the caller's with that id: one they may not see looks the same.
    NoSuchJob,
    /// The job names a queue the course does not have.
    NoSuchQueue,
    /// The request clashes with what is already there (a job id used before, an upload not finished).
    Conflict,
    /// The body is larger than the gateway takes.
    TooLarge,
    /// Too many requests or jobs; `Retry-After` says when to try again.
    RateLimited,
    /// A backend (Redis, the queue, the store) failed; nothing was lost, try again.
    Unavailable,
    /// Anything else, and any code this client does not know.
    #[default]
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// The code of a refusal that says no more than its HTTP status.
    pub fn of_status(status: u16) -> ErrorCode {
        match status {
            400 => ErrorCode::BadRequest,
            401 => ErrorCode::Unauthorized,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            409 => ErrorCode::Conflict,
            413 => ErrorCode::TooLarge,
            429 => ErrorCode::RateLimited,
            503 => ErrorCode::Unavailable,
            _ => ErrorCode::Other,
        }
    }
}

/// The header that ties a batch of chunks ([`PROJECT_CHUNKS`]) to its signature by its frames instead of its bytes:
/// `sha-256=:<base64>:` of the frames' headers, each chunk's id and sealed length in order
/// ([`crate::project::batch::index_digest`]). The gateway opens every chunk and checks it against its id, so the
/// ids and lengths fix the body as well as its whole digest would; hashing a first submit's gigabyte once more on
/// each side only to sign it bought nothing (issue 30). A signature over a batch covers this or `content-digest`
/// (clients before it send that), and the gateway checks whichever it covers.
pub const BATCH_INDEX: &str = "rai-batch-index";

/// What a request's signature must cover: the method, the path and the query (so a signature for one request
/// never fits another), and, for a request with a body, its `Content-Digest` (so the body cannot be swapped; a
/// batch of chunks may be tied by its [`BATCH_INDEX`] instead, see [`batch_signed_components`]).
/// The signature's parameters must carry `created`, `nonce` and `keyid` (the username).
pub fn signed_components(has_body: bool) -> Vec<String> {
    let mut components = vec!["@method".to_string(), "@path".into(), "@query".into()];
    if has_body {
        components.push("content-digest".into());
    }
    components
}

/// What the signature of a batch of chunks covers when it is tied by its frames ([`BATCH_INDEX`]).
pub fn batch_signed_components() -> Vec<String> {
    let mut components = signed_components(false);
    components.push(BATCH_INDEX.into());
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
    fn a_route_is_filled_in_where_its_parameter_is() {
        let job = JobId::new();
        assert_eq!(JOB.path(job), format!("/v1/jobs/{job}"));
        assert_eq!(JOB_CANCEL.path(job), format!("/v1/jobs/{job}/cancel"));
        assert_eq!(RANKING.path("m1"), "/v1/rankings/m1");
        for route in ROUTES {
            let t = route.template();
            assert!(t.starts_with("/v1/") && t.matches('{').count() == 1, "{t}");
        }
    }

    #[test]
    fn error_codes_are_stable_words_and_unknown_ones_read_as_other() {
        let body = ErrorBody {
            error: "there is no queue \"x\" here".into(),
            code: ErrorCode::NoSuchQueue,
        };
        let json = serde_json::to_string(&body).unwrap();
        assert!(json.contains(r#""code":"no_such_queue""#), "{json}");
        assert_eq!(serde_json::from_str::<ErrorBody>(&json).unwrap(), body);
        // A gateway from before codes, and one with a code this client does not know.
        let old: ErrorBody = serde_json::from_str(r#"{"error":"no"}"#).unwrap();
        assert_eq!(old.code, ErrorCode::Other);
        let newer: ErrorBody =
            serde_json::from_str(r#"{"error":"no","code":"quantum_flux"}"#).unwrap();
        assert_eq!(newer.code, ErrorCode::Other);
        assert_eq!(ErrorCode::of_status(429), ErrorCode::RateLimited);
        assert_eq!(ErrorCode::of_status(418), ErrorCode::Other);
    }

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
            path: UPLOAD.path(JobId::new()),
        };
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["method"], "stream");
        assert_eq!(serde_json::from_value::<UploadPlan>(json).unwrap(), plan);
    }
}
