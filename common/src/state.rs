//! A job's state and a worker's heartbeat: the small facts `rai status` and the staff read while jobs run.
//!
//! [`JobState`] is one typed value for both directions: a writer fills in the fields it knows (every field is
//! optional, and an empty one is left as it was), a reader gets back everything written so far. Its flat field form
//! ([`JobState::to_fields`], [`JobState::from_fields`]) is how a backend keeps it (a Redis hash); no other code
//! handles it as strings.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::JobStatus;

/// A job's state, or a change to it. Every field is optional: a job gains them as it goes, and an update sets
/// only the fields it holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobState {
    pub status: Option<JobStatus>,
    pub user: Option<String>,
    /// The user's team when the job was accepted.
    pub team: Option<String>,
    /// The assignment of a graded submission.
    pub assignment: Option<String>,
    pub queue: Option<String>,
    pub worker: Option<String>,
    pub submitted_at: Option<DateTime<Utc>>,
    /// When a worker leased it (the run that began; a job handed back and leased again has the later time).
    pub leased_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    /// The devices the job's commands ran with (GPU indexes or UUIDs, MIG instances by UUID).
    pub gpus: Option<Vec<String>>,
    /// How the job used each of them, sampled while its commands ran.
    pub gpu_use: Option<Vec<GpuUse>>,
    /// The sweep the job is one of, and its combination of values (`block=32 n=1e7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combination: Option<String>,
}

/// How one job used one GPU, from the worker's samples while its commands ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuUse {
    /// The device, as the job was given it.
    pub device: String,
    /// Utilisation (percent of the time a kernel ran), mean and highest of the samples.
    pub util_mean: f64,
    pub util_max: f64,
    /// The most memory in use on the device, MiB.
    pub memory_peak_mib: u64,
    /// How many samples these come from (0: none were taken, the figures say nothing).
    pub samples: u32,
}

impl GpuUse {
    /// One line for people: `GPU-8a3f...: 87% mean, 100% max, 1530 MiB peak (12 samples)`.
    pub fn describe(&self) -> String {
        if self.samples == 0 {
            return format!("{}: not sampled", self.device);
        }
        format!(
            "{}: {:.0}% mean, {:.0}% max, {} MiB peak ({} samples)",
            self.device, self.util_mean, self.util_max, self.memory_peak_mib, self.samples
        )
    }
}

impl JobState {
    /// An update that sets only the status.
    pub fn with_status(status: JobStatus) -> JobState {
        JobState {
            status: Some(status),
            ..JobState::default()
        }
    }

    /// The fields this value sets, as name and text, for a backend that keeps state as flat fields.
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        let time = |t: &Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339());
        [
            ("status", self.status.map(|s| s.as_str().to_string())),
            ("user", self.user.clone()),
            ("team", self.team.clone()),
            ("assignment", self.assignment.clone()),
            ("queue", self.queue.clone()),
            ("worker", self.worker.clone()),
            ("submitted_at", time(&self.submitted_at)),
            ("leased_at", time(&self.leased_at)),
            ("started_at", time(&self.started_at)),
            ("finished_at", time(&self.finished_at)),
            ("exit_code", self.exit_code.map(|c| c.to_string())),
            ("reason", self.reason.clone()),
            ("gpus", self.gpus.as_ref().map(|g| g.join(","))),
            (
                "gpu_use",
                self.gpu_use
                    .as_ref()
                    .and_then(|u| serde_json::to_string(u).ok()),
            ),
            ("sweep", self.sweep.clone()),
            ("combination", self.combination.clone()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }

    /// The state kept as flat fields, or `None` when nothing was kept. A field that does not read as its type
    /// (written by a newer version, or by hand) is left out rather than failing the whole state.
    pub fn from_fields(fields: &HashMap<String, String>) -> Option<JobState> {
        if fields.is_empty() {
            return None;
        }
        let text = |k: &str| fields.get(k).filter(|v| !v.is_empty()).cloned();
        let time = |k: &str| {
            text(k)
                .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        Some(JobState {
            status: text("status").and_then(|s| s.parse().ok()),
            user: text("user"),
            team: text("team"),
            assignment: text("assignment"),
            queue: text("queue"),
            worker: text("worker"),
            submitted_at: time("submitted_at"),
            leased_at: time("leased_at"),
            started_at: time("started_at"),
            finished_at: time("finished_at"),
            exit_code: text("exit_code").and_then(|s| s.parse().ok()),
            reason: text("reason"),
            gpus: text("gpus").map(|g| g.split(',').map(str::to_string).collect()),
            gpu_use: text("gpu_use").and_then(|u| serde_json::from_str(&u).ok()),
            sweep: text("sweep"),
            combination: text("combination"),
        })
    }
}

/// A worker's heartbeat: who it is and what it is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub name: String,
    pub queues: Vec<String>,
    pub slots: u32,
    /// The queue message ids of the jobs it holds now: running, finishing, or ready and waiting for a slot.
    pub running: Vec<String>,
    pub gpus: u32,
    pub version: String,
    pub started_at: DateTime<Utc>,
    /// The ids of the jobs it runs now.
    #[serde(default)]
    pub jobs: Vec<String>,
    /// When this heartbeat was written (the worker's clock).
    #[serde(default)]
    pub beat_at: Option<DateTime<Utc>>,
}

impl WorkerInfo {
    /// How often a worker writes its heartbeat.
    pub const BEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
    /// A heartbeat older than this means the worker stopped (crashed, hung, or lost Redis): three beats missed.
    pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(15);

    /// Whether the worker's last heartbeat is recent at `now`.
    pub fn is_alive(&self, now: DateTime<Utc>) -> bool {
        self.beat_at
            .is_some_and(|t| (now - t).to_std().unwrap_or_default() <= WorkerInfo::STALE_AFTER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_an_update_sets_only_what_it_holds() {
        let t = DateTime::parse_from_rfc3339("2026-12-02T05:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let state = JobState {
            status: Some(JobStatus::TimedOut),
            worker: Some("gpu1".into()),
            leased_at: Some(t),
            finished_at: Some(t),
            exit_code: Some(-1),
            ..JobState::default()
        };
        let fields = state.to_fields();
        assert_eq!(
            fields.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            ["status", "worker", "leased_at", "finished_at", "exit_code"]
        );
        let map: HashMap<String, String> = fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(JobState::from_fields(&map), Some(state));
        assert_eq!(JobState::from_fields(&HashMap::new()), None);
    }

    #[test]
    fn a_field_that_does_not_read_is_left_out() {
        let map: HashMap<String, String> =
            [("status", "exploded"), ("exit_code", "x"), ("user", "jdoe")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let s = JobState::from_fields(&map).unwrap();
        assert_eq!(
            (s.status, s.exit_code, s.user.as_deref()),
            (None, None, Some("jdoe"))
        );
    }
}
