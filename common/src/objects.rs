//! Where a job's objects live in the object store: its upload, its `/build` output, its record, and (for a graded
//! submission) the submission's record under its assignment and team.
//!
//! Every key starts with the owner's name, so a store policy (an S3 prefix condition) can give each user their own
//! objects only; the worker refuses a job whose upload key is not the one these functions give for its signer.

use crate::job::JobId;

/// The store key of a job's upload.
pub fn upload_key(user: &str, job: &JobId) -> String {
    format!("uploads/{user}/{job}.tar.zst")
}

/// The store key of a chunked upload's manifest (issue 30): what the signed job names as its input instead of an
/// archive.
pub fn manifest_key(user: &str, job: &JobId) -> String {
    format!("manifests/{user}/{job}.json")
}

/// Whether an input key names a manifest (else an archive of an older client).
pub fn is_manifest_key(key: &str) -> bool {
    key.starts_with("manifests/") && key.ends_with(".json")
}

/// The store key of one of a user's chunks, sealed (one zstd frame). Chunks are the owner's own: the same bytes
/// uploaded by two students are two objects, so no one learns what another uploaded.
pub fn chunk_key(user: &str, id: &crate::project::ChunkId) -> String {
    format!("chunks/{user}/{id}.zst")
}

/// The store key of a job's `/build` output.
pub fn output_key(user: &str, job: &JobId) -> String {
    format!("outputs/{user}/{job}.tar.zst")
}

/// A finished job's complete event log: one event per line (JSON), zstd-compressed.
pub fn log_key(user: &str, job: &JobId) -> String {
    format!("logs/{user}/{job}.jsonl.zst")
}

/// The store key of a job's record.
pub fn record_key(user: &str, job: &JobId) -> String {
    format!("records/{user}/{job}.json")
}

/// The store key of a graded submission's record: under the assignment and the team (a student without a team is a
/// team of one, under their own name).
pub fn submission_key(assignment: &str, team: &str, job: &JobId) -> String {
    format!("{}{job}.json", submissions_prefix(assignment, Some(team)))
}

/// The prefix of an assignment's submissions, or of one team's.
pub fn submissions_prefix(assignment: &str, team: Option<&str>) -> String {
    match team {
        Some(team) => format!("submissions/{assignment}/{team}/"),
        None => format!("submissions/{assignment}/"),
    }
}
