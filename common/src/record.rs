//! The job record: what is kept of a job once it is over, stored as `records/<user>/<job>.json`.
//!
//! The worker writes it after the job's output is stored and before the `end` event; `rai history` and the staff
//! read it back as the same type, so the record has one shape from writer to reader.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::JobStatus;

/// One finished job, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub user: String,
    pub team: String,
    pub queue: String,
    pub worker: String,
    pub status: JobStatus,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    pub image: String,
    /// When the gateway accepted the job: the server's clock, the only time deadlines trust (records written before
    /// the gateway called it `submitted_at` and held the client's clock).
    #[serde(alias = "submitted_at")]
    pub accepted_at: DateTime<Utc>,
    /// When the worker started it (the worker's clock, as is every time below).
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Where `/build` was stored, if it was kept.
    pub output_key: Option<String>,
    /// Whether the job's output passed the log cap and was cut.
    pub output_truncated: bool,
    /// The assignment a graded submission was for, as the gateway judged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<String>,
    /// A graded submission accepted after its due time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
    /// Each command that ran, in order, timed by the worker (the job cannot forge it): rankings read these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<CommandTime>,
    /// The GPUs (or MIG instances) its commands ran with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<String>,
    /// How it used each of them, sampled by the worker while its commands ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpu_use: Vec<crate::state::GpuUse>,
    /// The scores the job wrote to `/build/results.json`, as read (who may see which: `Results::seen_by`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<crate::results::Results>,
    /// A regrade: the submission it ran again (whose record stays as it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regrade_of: Option<String>,
    /// The sweep the job was one of, and its combination of values (`block=32 n=1e7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combination: Option<String>,
}

/// One command of a job as the worker saw it run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandTime {
    /// Its exit code; `None` when it was stopped (time limit, cancel).
    pub exit_code: Option<i64>,
    /// Wall time from its start to its end, in seconds, on the worker's monotonic clock.
    pub seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_written_before_times_were_typed_still_read() {
        let old = r#"{"id":"01kb0000000000000000000000","user":"jdoe","team":"t","queue":"rai","worker":"w",
            "status":"failed","exit_code":3,"reason":"command failed","image":"busybox",
            "submitted_at":"2026-11-22T05:00:00+00:00","started_at":"2026-11-22T05:00:01.5+00:00",
            "finished_at":"2026-11-22T05:00:09Z","output_key":null,"output_truncated":false}"#;
        let r: JobRecord = serde_json::from_str(old).unwrap();
        assert_eq!((r.status, r.exit_code), (JobStatus::Failed, Some(3)));
        assert_eq!((r.finished_at - r.started_at).num_milliseconds(), 7_500);
    }
}
