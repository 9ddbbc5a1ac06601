//! The course's per-user quotas (`gateway.quotas`), checked before a job is accepted: jobs waiting, jobs waiting or
//! running, the interval between submissions, and GPU time per day or week. Each refusal is a 429 that says when the
//! student may submit again. Staff are exempt unless the config says otherwise. The facts come from Redis
//! (`rai_backends::events::quota`); the client has no say in any of them.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rai_backends::events::quota::Window;
use rai_common::config::GpuTimeWindow;
use rai_common::event::JobStatus;
use rai_common::units::Span;

use super::auth::Caller;
use super::{ApiError, Gateway};

fn too_many(message: String) -> ApiError {
    crate::metrics::metrics()
        .refusals
        .get_or_create(&crate::metrics::RefusalLabels { reason: "quota" })
        .inc();
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

/// Checks `caller`'s quotas at `now`; on success the submission interval has started.
pub(super) async fn check(
    gateway: &Gateway,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let q = &gateway.config.gateway.quotas;
    if caller.is_staff() && q.staff_exempt {
        return Ok(());
    }
    let bus = &gateway.bus;
    let unavailable = |e| ApiError::unavailable("check your quotas", e);
    if q.max_queued > 0 || q.max_active > 0 {
        let active = bus.active_jobs(&caller.user).await.map_err(unavailable)?;
        let waiting = active
            .iter()
            .filter(|(_, s)| {
                matches!(
                    s,
                    JobStatus::Queued | JobStatus::Requeued | JobStatus::Uploading
                )
            })
            .count() as u32;
        if q.max_queued > 0 && waiting >= q.max_queued {
            return Err(too_many(format!(
                "you have {waiting} jobs waiting to start, the most this course allows; submit again when one \
                 starts (`rai history` and `rai status ID` show them)"
            )));
        }
        let total = active.len() as u32;
        if q.max_active > 0 && total >= q.max_active {
            return Err(too_many(format!(
                "you have {total} jobs waiting or running, the most this course allows; submit again when one ends"
            )));
        }
    }
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
    if !q.min_interval.0.is_zero()
        && let Some(wait) = bus
            .start_submit_interval(&caller.user, q.min_interval.0)
            .await
            .map_err(unavailable)?
    {
        let wait = chrono::Duration::from_std(wait).unwrap_or_default();
        return Err(too_many(format!(
            "this course allows one submission every {}; submit again in {} (at {})",
            Span(q.min_interval.0),
            human(wait),
            (now + wait).format("%H:%M:%S UTC")
        )));
    }
    Ok(())
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
