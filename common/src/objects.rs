//! Where a job's objects live in the object store: its upload, its `/build` output and its record.
//!
//! Every key starts with the owner's name, so a store policy (an S3 prefix condition) can give each user their own
//! objects only; the worker refuses a job whose upload key is not the one these functions give for its signer.

use crate::job::JobId;

/// The store key of a job's upload.
pub fn upload_key(user: &str, job: &JobId) -> String {
    format!("uploads/{user}/{job}.tar.zst")
}

/// The store key of a job's `/build` output.
pub fn output_key(user: &str, job: &JobId) -> String {
    format!("outputs/{user}/{job}.tar.zst")
}

/// The store key of a job's record.
pub fn record_key(user: &str, job: &JobId) -> String {
    format!("records/{user}/{job}.json")
}
