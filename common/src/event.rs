//! Job events as they travel: `{"seq": n, "ts": rfc3339, "kind": ..., ...}`, one JSON object each.
//!
//! `seq` counts from 1 per job and never skips or repeats, even when a job is rerun on another worker after a
//! crash: the worker's publisher and the follower's reader (in `rai-backends`) both keep to this shape, so the wire
//! form is defined once, here, with its JSON shape pinned by this module's test.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a job is in its life, and how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Requeued,
    Uploading,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
    Rejected,
    /// The worker could not run the job for a reason of its own (not the student's).
    Error,
}

impl JobStatus {
    /// Whether the job is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded
                | JobStatus::Failed
                | JobStatus::Cancelled
                | JobStatus::TimedOut
                | JobStatus::Rejected
                | JobStatus::Error
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Requeued => "requeued",
            JobStatus::Uploading => "uploading",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::TimedOut => "timed_out",
            JobStatus::Rejected => "rejected",
            JobStatus::Error => "error",
        }
    }
}

impl std::str::FromStr for JobStatus {
    type Err = String;

    /// Reads the names [`JobStatus::as_str`] writes.
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.to_string()))
            .map_err(|_| format!("\"{s}\" is not a job status"))
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened, without its place in the sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    /// The job moved to another status.
    Status {
        status: JobStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        worker: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// Output the job wrote to stdout: text, possibly several lines.
    Stdout { data: String },
    /// Output the job wrote to stderr.
    Stderr { data: String },
    /// A `✱ ...` line from rai itself.
    System { data: String },
    /// The job's `/build` was stored; `rai download` (through the gateway, which checks who asks) fetches it.
    /// Events carry no links: anyone who may read a job's events could otherwise pass its output around.
    Artifact {},
    /// The job is over; the last event of a job.
    End {
        status: JobStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// An event in its place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub ts: DateTime<Utc>,
    #[serde(flatten)]
    pub body: EventBody,
}

impl Event {
    pub fn is_end(&self) -> bool {
        matches!(self.body, EventBody::End { .. })
    }
}

/// The JSON of an event without `seq`, as the publish script expects it: an object whose `seq` it prepends.
pub fn unsequenced_json(ts: DateTime<Utc>, body: &EventBody) -> String {
    #[derive(Serialize)]
    struct Unsequenced<'a> {
        ts: DateTime<Utc>,
        #[serde(flatten)]
        body: &'a EventBody,
    }
    serde_json::to_string(&Unsequenced { ts, body }).expect("an event always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_matches_the_design() {
        let ts = DateTime::parse_from_rfc3339("2026-11-22T05:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let json = unsequenced_json(
            ts,
            &EventBody::Stdout {
                data: "hi\n".into(),
            },
        );
        assert_eq!(
            json,
            r#"{"ts":"2026-11-22T05:00:00Z","kind":"stdout","data":"hi\n"}"#
        );
        let wire = format!("{{\"seq\":7,{}", &json[1..]);
        let e: Event = serde_json::from_str(&wire).unwrap();
        assert_eq!(e.seq, 7);
        let end: Event = serde_json::from_str(
            r#"{"seq":9,"ts":"2026-11-22T05:00:00Z","kind":"end","status":"failed","exit_code":3}"#,
        )
        .unwrap();
        assert!(end.is_end());
        assert_eq!(
            end.body,
            EventBody::End {
                status: JobStatus::Failed,
                exit_code: Some(3),
                reason: None
            }
        );
    }
}
