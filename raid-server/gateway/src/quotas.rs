//! The course's per-user quotas (`gateway.quotas`), checked before a job is accepted: GPU time per day or week, jobs
//! waiting, jobs waiting or running (counted and admitted in one step), and the interval between submissions. Each refusal is a 429 that says when the
//! student may submit again. Staff are exempt unless the config says otherwise. The facts come from Redis
//! (`rai_backends::events::quota`); the client has no say in any of them.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rai_backends::events::quota::{Admission, Window};
use rai_common::config::GpuTimeWindow;
use rai_common::job::JobId;
use rai_common::units::Span;

use crate::auth::Caller;
use crate::{ApiError, Gateway};

fn too_many(message: String) -> ApiError {
    crate::metrics::metrics().refused("quota");
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, message)
}

/// A duration as a person reads it: `45s`, `12m`, `3h12m`.
fn human(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(1);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Checks `caller`'s quotas at `now` for `job`. On success the job is counted against the caps and the
/// submission interval has started; a job that is then not queued must be [`withdrawn`].
pub(super) async fn check(
    gateway: &Gateway,
    caller: &Caller,
    job: &JobId,
    now: DateTime<Utc>,
    counts_as_submission: bool,
) -> Result<(), ApiError> {
    let q = &gateway.config.gateway.quotas;
    if caller.is_staff() && q.staff_exempt {
        return Ok(());
    }
    let bus = &gateway.bus;
    let unavailable = |e| ApiError::unavailable("check your quotas", e);
    if !q.gpu_time.0.is_zero() {
        let window = match q.gpu_time_window {
            GpuTimeWindow::Day => Window::Day,
            GpuTimeWindow::Week => Window::Week,
        };
        let used = bus
            .gpu_seconds(&caller.user, window, now)
            .await
            .map_err(unavailable)?;
        let budget = q.gpu_time.0.as_secs_f64();
        if used >= budget {
            let resets = window.end(now);
            return Err(too_many(format!(
                "your jobs have used {} of GPU time this {}, the {} this course allows; it starts again at {} \
                 (in {})",
                human(chrono::Duration::seconds(used as i64)),
                if window == Window::Day { "day" } else { "week" },
                Span(q.gpu_time.0),
                resets.format("%Y-%m-%d %H:%M UTC"),
                human(resets - now)
            )));
        }
    }
    // Counted and admitted in one step: parallel submissions each see the ones admitted before them.
    match bus
        .admit(&caller.user, job, q.max_queued, q.max_active, now)
        .await
        .map_err(unavailable)?
    {
        Admission::Admitted => {}
        Admission::TooManyWaiting(waiting) => {
            return Err(too_many(format!(
                "you have {waiting} jobs waiting to start, the most this course allows; submit again when one \
                 starts (`rai history` and `rai status ID` show them)"
            )));
        }
        Admission::TooManyActive(total) => {
            return Err(too_many(format!(
                "you have {total} jobs waiting or running, the most this course allows; submit again when one ends"
            )));
        }
    }
    // A sweep is one submission: only its first job waits out the interval; each job counts against the caps.
    if !q.min_interval.0.is_zero() && counts_as_submission {
        let interval = bus
            .start_submit_interval(&caller.user, q.min_interval.0)
            .await;
        if !matches!(interval, Ok(None)) {
            withdrawn(gateway, caller, job).await;
        }
        if let Some(wait) = interval.map_err(unavailable)? {
            let wait = chrono::Duration::from_std(wait).unwrap_or_default();
            return Err(too_many(format!(
                "this course allows one submission every {}; submit again in {} (at {})",
                Span(q.min_interval.0),
                human(wait),
                (now + wait).format("%H:%M:%S UTC")
            )));
        }
    }
    Ok(())
}

/// Takes back `job`'s admission by [`check`] when it was not queued after all.
pub(super) async fn withdrawn(gateway: &Gateway, caller: &Caller, job: &JobId) {
    if let Err(e) = gateway.bus.withdraw(&caller.user, job).await {
        // It stops counting on its own a minute after its admission (it has no state).
        tracing::warn!(job = %job, error = %e, "cannot take back a job's admission");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_as_people_say_them() {
        assert_eq!(human(chrono::Duration::seconds(45)), "45s");
        assert_eq!(human(chrono::Duration::seconds(725)), "12m05s");
        assert_eq!(human(chrono::Duration::seconds(11_520)), "3h12m");
    }
}
