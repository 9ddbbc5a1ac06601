//! `GET /v1/usage`: jobs, GPU-hours, failures and queue waits, summed from the records the workers write (a
//! student's own records; staff: everyone's), grouped by user, team, assignment or day.
//!
//! The records are the durable truth (Redis keeps a job's state only for the events' retention), but a term holds
//! tens of thousands of them. A record never changes once written, so the gateway keeps what usage reads of each
//! (a [`JobUse`], about a hundred bytes) by its key, and a request lists the records and reads only those it has not
//! seen: the first request of a term reads them all, later ones read the jobs that ended since.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Query, State};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use futures::StreamExt;
use rai_common::api::UsageQuery;
use rai_common::record::JobRecord;
use rai_common::usage::{JobUse, Usage, UsageBy, summarize};

use crate::auth::Caller;
use crate::{ApiError, Gateway};

/// How many records one request reads at once.
const READS_AT_ONCE: usize = 16;

/// What usage has read of each record, by the record's key.
#[derive(Default)]
pub struct UsageCache {
    seen: Mutex<HashMap<String, Option<JobUse>>>,
}

/// The course's time zone (UTC without a course file).
pub fn zone(gateway: &Gateway) -> Tz {
    gateway
        .course
        .as_ref()
        .map_or(Tz::UTC, |c| c.current().time_zone)
}

/// Reads `since` as a day in `zone` or as an instant.
fn since(text: &str, zone: Tz) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|t| t.and_local_timezone(zone).earliest())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "--since \"{text}\" is not a day; write it like 2026-12-01 (the course's time zone)"
            ))
        })
}

/// Every job under `prefix` (`records/` or `records/<user>/`), as usage counts it.
pub async fn jobs(gateway: &Gateway, prefix: &str) -> Result<Vec<JobUse>, ApiError> {
    let objects = gateway
        .store
        .list(prefix)
        .await
        .map_err(|e| ApiError::unavailable("list the records", e))?;
    let unseen: Vec<String> = {
        let seen = gateway.usage.seen.lock().unwrap_or_else(|e| e.into_inner());
        objects
            .iter()
            .filter(|o| o.key.ends_with(".json") && !seen.contains_key(&o.key))
            .map(|o| o.key.clone())
            .collect()
    };
    let read: Vec<(String, Option<JobUse>)> = futures::stream::iter(unseen)
        .map(|key| async move {
            let bytes = gateway
                .store
                .get_bytes(&key)
                .await
                .map_err(|e| ApiError::unavailable("read a record", e))?;
            // An unreadable record counts for nothing, once: it is not read again.
            let job = serde_json::from_slice::<JobRecord>(&bytes)
                .map(|r| JobUse::from(&r))
                .inspect_err(
                    |e| tracing::warn!(%key, error = %e, "usage skips an unreadable record"),
                )
                .ok();
            Ok::<_, ApiError>((key, job))
        })
        .buffer_unordered(READS_AT_ONCE)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let mut seen = gateway.usage.seen.lock().unwrap_or_else(|e| e.into_inner());
    seen.extend(read);
    Ok(objects
        .iter()
        .filter_map(|o| seen.get(&o.key).cloned().flatten())
        .collect())
}

/// Usage as `caller` may see it: their own jobs, or everyone's for staff.
pub async fn usage(
    gateway: &Gateway,
    caller: &Caller,
    by: UsageBy,
    since_text: Option<&str>,
) -> Result<Usage, ApiError> {
    let zone = zone(gateway);
    let since = since_text.map(|t| since(t, zone)).transpose()?;
    let prefix = if caller.is_staff() {
        "records/".to_string()
    } else {
        format!("records/{}/", caller.user)
    };
    let jobs = jobs(gateway, &prefix).await?;
    Ok(summarize(&jobs, by, since, zone))
}

/// `GET /v1/usage?by=user|team|assignment|day&since=2026-12-01`.
pub async fn get(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Query(query): Query<UsageQuery>,
) -> Result<Json<Usage>, ApiError> {
    let by = match &query.by {
        Some(b) => b.parse().map_err(ApiError::bad_request)?,
        None => UsageBy::default(),
    };
    usage(&gateway, &caller, by, query.since.as_deref())
        .await
        .map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_day_in_the_courses_zone_or_an_instant() {
        let chicago: Tz = "America/Chicago".parse().unwrap();
        assert_eq!(
            since("2026-12-01", chicago).unwrap().to_rfc3339(),
            "2026-12-01T06:00:00+00:00"
        );
        assert_eq!(
            since("2026-12-01T00:00:00Z", chicago).unwrap().to_rfc3339(),
            "2026-12-01T00:00:00+00:00"
        );
        assert!(
            since("last week", chicago)
                .unwrap_err()
                .message
                .contains("2026-12-01")
        );
    }
}
