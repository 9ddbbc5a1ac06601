//! Who used how much of the pool: jobs, GPU-hours, failures and queue waits, summed from the records the workers
//! write (`rai usage`, the dashboard's usage page).
//!
//! A record's times come from two clocks: `accepted_at` is the gateway's, `started_at` and `finished_at` the
//! worker's. A job's wait (accepted to started) crosses them, so a worker clock a little behind could make it
//! negative: waits are counted from zero. GPU-hours are the GPUs a job held times its run; a job on a worker without
//! GPUs counts its hours but no GPU-hours.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::event::JobStatus;
use crate::record::JobRecord;

/// What one job counts for: the fields of its record that usage reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobUse {
    pub user: String,
    /// The team (a student without one: their own name).
    pub team: String,
    pub assignment: Option<String>,
    pub status: JobStatus,
    pub accepted_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub gpus: usize,
}

impl From<&JobRecord> for JobUse {
    fn from(r: &JobRecord) -> JobUse {
        JobUse {
            user: r.user.clone(),
            team: if r.team.is_empty() {
                r.user.clone()
            } else {
                r.team.clone()
            },
            assignment: r.assignment.clone(),
            status: r.status,
            accepted_at: r.accepted_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            gpus: r.gpus.len(),
        }
    }
}

impl JobUse {
    /// Hours its commands' container ran.
    pub fn hours(&self) -> f64 {
        (self.finished_at - self.started_at)
            .num_milliseconds()
            .max(0) as f64
            / 3_600_000.0
    }

    /// Seconds from acceptance to start.
    pub fn wait_seconds(&self) -> f64 {
        (self.started_at - self.accepted_at)
            .num_milliseconds()
            .max(0) as f64
            / 1000.0
    }

    /// A job that ended without its commands succeeding, other than by a cancel.
    pub fn failed(&self) -> bool {
        matches!(
            self.status,
            JobStatus::Failed | JobStatus::TimedOut | JobStatus::Rejected | JobStatus::Error
        )
    }
}

/// How usage is grouped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageBy {
    #[default]
    User,
    Team,
    Assignment,
    /// The day the job was accepted, in the course's time zone.
    Day,
}

impl std::str::FromStr for UsageBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "user" => Ok(UsageBy::User),
            "team" => Ok(UsageBy::Team),
            "assignment" => Ok(UsageBy::Assignment),
            "day" => Ok(UsageBy::Day),
            other => Err(format!(
                "\"{other}\" is not a grouping; use user, team, assignment or day"
            )),
        }
    }
}

/// One group's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    /// The user, team, assignment (`-` for ungraded jobs) or day (`2026-12-05`).
    pub key: String,
    pub jobs: u64,
    pub failures: u64,
    pub hours: f64,
    pub gpu_hours: f64,
    pub mean_wait_seconds: f64,
    pub max_wait_seconds: f64,
}

/// The answer to `GET /v1/usage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub by: UsageBy,
    pub since: Option<DateTime<Utc>>,
    /// The groups, by key (days in order).
    pub rows: Vec<UsageRow>,
    /// Every job counted.
    pub total: UsageRow,
}

/// Sums `jobs` accepted at or after `since`, grouped `by` (days in `zone`); a grouping by day lists every day from
/// the first to the last, idle days with zeros, so a chart of them has no gaps.
pub fn summarize<'a>(
    jobs: impl IntoIterator<Item = &'a JobUse>,
    by: UsageBy,
    since: Option<DateTime<Utc>>,
    zone: Tz,
) -> Usage {
    let day = |t: DateTime<Utc>| t.with_timezone(&zone).date_naive();
    let mut groups: BTreeMap<String, (UsageRow, f64)> = BTreeMap::new();
    let mut total = (
        UsageRow {
            key: "total".into(),
            ..UsageRow::default()
        },
        0.0,
    );
    for j in jobs {
        if since.is_some_and(|s| j.accepted_at < s) {
            continue;
        }
        let key = match by {
            UsageBy::User => j.user.clone(),
            UsageBy::Team => j.team.clone(),
            UsageBy::Assignment => j.assignment.clone().unwrap_or_else(|| "-".into()),
            UsageBy::Day => day(j.accepted_at).to_string(),
        };
        for (row, waited) in [
            groups.entry(key.clone()).or_insert_with(|| {
                (
                    UsageRow {
                        key,
                        ..UsageRow::default()
                    },
                    0.0,
                )
            }),
            &mut total,
        ] {
            row.jobs += 1;
            row.failures += u64::from(j.failed());
            row.hours += j.hours();
            row.gpu_hours += j.hours() * j.gpus as f64;
            *waited += j.wait_seconds();
            row.max_wait_seconds = row.max_wait_seconds.max(j.wait_seconds());
        }
    }
    if by == UsageBy::Day
        && let (Some(first), Some(last)) = (groups.keys().next(), groups.keys().next_back())
        && let (Ok(first), Ok(last)) = (first.parse::<NaiveDate>(), last.parse::<NaiveDate>())
    {
        for d in first.iter_days().take_while(|d| *d <= last) {
            groups.entry(d.to_string()).or_insert_with(|| {
                (
                    UsageRow {
                        key: d.to_string(),
                        ..UsageRow::default()
                    },
                    0.0,
                )
            });
        }
    }
    let finish = |(mut row, waited): (UsageRow, f64)| {
        if row.jobs > 0 {
            row.mean_wait_seconds = waited / row.jobs as f64;
        }
        row
    };
    Usage {
        by,
        since,
        rows: groups.into_values().map(finish).collect(),
        total: finish(total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn job(
        user: &str,
        team: &str,
        accepted: &str,
        wait_s: i64,
        run_s: i64,
        gpus: usize,
        status: JobStatus,
    ) -> JobUse {
        let accepted_at = t(accepted);
        let started_at = accepted_at + chrono::Duration::seconds(wait_s);
        JobUse {
            user: user.into(),
            team: team.into(),
            assignment: Some("m1".into()),
            status,
            accepted_at,
            started_at,
            finished_at: started_at + chrono::Duration::seconds(run_s),
            gpus,
        }
    }

    #[test]
    fn usage_sums_gpu_hours_failures_and_waits_per_group() {
        let jobs = [
            job(
                "alice",
                "a",
                "2026-12-04T20:00:00Z",
                60,
                3600,
                1,
                JobStatus::Succeeded,
            ),
            job(
                "bob",
                "a",
                "2026-12-05T07:00:00Z",
                120,
                1800,
                2,
                JobStatus::Failed,
            ),
            job(
                "carol",
                "carol",
                "2026-12-07T12:00:00Z",
                0,
                7200,
                0,
                JobStatus::Cancelled,
            ),
            // The worker's clock a little behind the gateway's: no negative wait.
            job(
                "carol",
                "carol",
                "2026-12-07T12:00:00Z",
                -3,
                360,
                1,
                JobStatus::TimedOut,
            ),
        ];
        let by_team = summarize(&jobs, UsageBy::Team, None, Tz::UTC);
        let a = &by_team.rows[0];
        assert_eq!((a.key.as_str(), a.jobs, a.failures), ("a", 2, 1));
        assert!((a.gpu_hours - 2.0).abs() < 1e-9, "{a:?}");
        assert!((a.hours - 1.5).abs() < 1e-9);
        assert!((a.mean_wait_seconds - 90.0).abs() < 1e-9);
        assert_eq!(a.max_wait_seconds, 120.0);
        let carol = &by_team.rows[1];
        assert_eq!((carol.jobs, carol.failures), (2, 1));
        assert!((carol.gpu_hours - 0.1).abs() < 1e-9);
        assert_eq!(carol.mean_wait_seconds, 0.0);
        assert_eq!(by_team.total.jobs, 4);
        assert!((by_team.total.gpu_hours - 2.1).abs() < 1e-9);

        // Days in the course's zone, idle days filled in: 20:00 UTC on the 4th is the 4th in Chicago, 07:00 UTC on
        // the 5th is 01:00 on the 5th.
        let by_day = summarize(
            &jobs,
            UsageBy::Day,
            None,
            "America/Chicago".parse().unwrap(),
        );
        let days: Vec<(&str, u64)> = by_day
            .rows
            .iter()
            .map(|r| (r.key.as_str(), r.jobs))
            .collect();
        assert_eq!(
            days,
            [
                ("2026-12-04", 1),
                ("2026-12-05", 1),
                ("2026-12-06", 0),
                ("2026-12-07", 2)
            ]
        );
        let since = summarize(
            &jobs,
            UsageBy::User,
            Some(t("2026-12-06T00:00:00Z")),
            Tz::UTC,
        );
        assert_eq!(since.rows.len(), 1);
        assert_eq!(since.total.jobs, 2);
        assert!(
            "week"
                .parse::<UsageBy>()
                .unwrap_err()
                .contains("user, team, assignment or day")
        );
    }
}
