//! The dashboard's pages. Each reads what the API handlers read, as the logged-in staff member: the same access
//! checks, the same job index, events and records, drawn as HTML instead of JSON.
//!
//! Over 450 lines: a small handler per dashboard page, sharing the page context and query types.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use rai_backends::events::index::JobFilter;
use rai_common::api::{RankingQuery, SubmissionsQuery};
use rai_common::event::JobStatus;
use rai_common::state::JobState;
use serde::{Deserialize, Serialize};

use super::chart;
use super::page::{Page, error_page};
use super::session::{CsrfForm, StaffSession};
use crate::access::{Access, authorize, job_id};
use crate::{ApiError, Gateway, deadletters, events, jobs, submissions, usage, workers};

/// Jobs on one page of the list.
pub const PAGE_SIZE: usize = 50;

fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

fn api_error_page(e: ApiError) -> Response {
    error_page(e.status, "Cannot show this", &e.message)
}

fn assignments(gateway: &Gateway) -> Vec<String> {
    gateway
        .course
        .as_ref()
        .map(|c| c.current().assignments.keys().cloned().collect())
        .unwrap_or_default()
}

/// One queue's depth, for the overview and its refresh.
#[derive(Debug, Serialize)]
pub struct QueueDepth {
    name: String,
    waiting: u64,
    leased: u64,
}

async fn depths(gateway: &Gateway) -> Vec<QueueDepth> {
    let mut out = Vec::new();
    let mut names: Vec<&String> = gateway.queues.keys().collect();
    names.sort();
    for name in names {
        match gateway.queues[name].depth().await {
            Ok(d) => out.push(QueueDepth {
                name: name.clone(),
                waiting: d.waiting,
                leased: d.leased,
            }),
            Err(e) => {
                crate::metrics::metrics().backend_error(&e);
                tracing::warn!(queue = %name, error = %e, "cannot read the queue's depth");
            }
        }
    }
    out
}

/// `GET /ui`: queues and workers.
pub async fn overview(State(gateway): State<Arc<Gateway>>, session: StaffSession) -> Response {
    let listed = match workers::workers(&gateway).await {
        Ok(w) => w,
        Err(e) => return api_error_page(e),
    };
    let now = listed.now;
    let workers: Vec<_> = listed
        .workers
        .iter()
        .map(|w| {
            let ago = w.info.beat_at.map_or("never".to_string(), |t| {
                format!("{}s ago", (now - t).num_seconds().max(0))
            });
            context! {
                name => w.info.name, alive => w.alive, queues => w.info.queues, slots => w.info.slots,
                gpus => w.info.gpus, jobs => w.info.jobs, ago => ago,
            }
        })
        .collect();
    Page::new("Overview", Some(session.viewer()))
        .render(
            "overview.html",
            context! { queues => depths(&gateway).await, workers, assignments => assignments(&gateway) },
        )
        .into_response()
}

/// `GET /ui/queues`: the overview's figures, refreshed by its script.
pub async fn queues(
    State(gateway): State<Arc<Gateway>>,
    _session: StaffSession,
) -> Json<Vec<QueueDepth>> {
    Json(depths(&gateway).await)
}

#[derive(Debug, Default, Deserialize)]
pub struct JobsQuery {
    user: Option<String>,
    team: Option<String>,
    assignment: Option<String>,
    status: Option<String>,
    from: Option<u64>,
}

const STATUSES: [JobStatus; 9] = [
    JobStatus::Queued,
    JobStatus::Running,
    JobStatus::Succeeded,
    JobStatus::Failed,
    JobStatus::TimedOut,
    JobStatus::Cancelled,
    JobStatus::Error,
    JobStatus::Rejected,
    JobStatus::Requeued,
];

/// `GET /ui/jobs?user&team&assignment&status&from`: the newest jobs first, filtered.
pub async fn jobs(
    State(gateway): State<Arc<Gateway>>,
    session: StaffSession,
    Query(q): Query<JobsQuery>,
) -> Response {
    let given = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let status = match given(&q.status) {
        Some(s) => match s.parse::<JobStatus>() {
            Ok(s) => Some(s),
            Err(_) => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "No such status",
                    &format!("\"{s}\" is not a job status"),
                );
            }
        },
        None => None,
    };
    let filter = JobFilter {
        user: given(&q.user),
        team: given(&q.team),
        assignment: given(&q.assignment),
        status,
    };
    let page = match gateway
        .bus
        .list_jobs(&filter, q.from.unwrap_or(0), PAGE_SIZE)
        .await
    {
        Ok(p) => p,
        Err(e) => return api_error_page(ApiError::unavailable("list the jobs", e)),
    };
    let rows: Vec<_> = page
        .jobs
        .iter()
        .map(|(id, s)| {
            context! {
                id => id.to_string(), status => s.status.map(|s| s.as_str()), user => s.user, team => s.team,
                assignment => s.assignment, queue => s.queue, worker => s.worker, submitted_at => when(s.submitted_at),
            }
        })
        .collect();
    let next = page.next.map(|from| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("user", &filter.user),
            ("team", &filter.team),
            ("assignment", &filter.assignment),
        ] {
            if let Some(v) = v {
                query.append_pair(k, v);
            }
        }
        if let Some(s) = filter.status {
            query.append_pair("status", s.as_str());
        }
        query.append_pair("from", &from.to_string());
        format!("/ui/jobs?{}", query.finish())
    });
    let shown = context! {
        user => filter.user, team => filter.team, assignment => filter.assignment,
        status => filter.status.map(|s| s.as_str()),
    };
    Page::new("Jobs", Some(session.viewer()))
        .render(
            "jobs.html",
            context! {
                jobs => rows, next, filter => shown, assignments => assignments(&gateway),
                statuses => STATUSES.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            },
        )
        .into_response()
}

/// `GET /ui/jobs/{id}`: a job's state, its live log, and cancel.
pub async fn job(
    State(gateway): State<Arc<Gateway>>,
    session: StaffSession,
    Path(id): Path<String>,
) -> Response {
    let job = match job_id(&id) {
        Ok(j) => j,
        Err(e) => return api_error_page(e),
    };
    if let Err(e) = authorize(&gateway, &session.caller, &job, Access::Read).await {
        return api_error_page(e);
    }
    let state = match gateway.bus.state(&job).await {
        Ok(s) => s.unwrap_or_default(),
        Err(e) => return api_error_page(ApiError::unavailable("read the job's state", e)),
    };
    let finished = state.status.is_some_and(JobStatus::is_final);
    let JobState {
        status,
        user,
        team,
        assignment,
        queue,
        worker,
        submitted_at,
        reason,
        gpus,
        gpu_use,
        ..
    } = state;
    let gpu_use: Vec<String> = gpu_use.iter().flatten().map(|u| u.describe()).collect();
    let shown = context! {
        status => status.map(|s| s.as_str()), user, team, assignment, queue, worker, reason,
        submitted_at => when(submitted_at), gpus => gpus.map(|g| g.join(", ")), gpu_use,
    };
    Page::new(&format!("Job {job}"), Some(session.viewer()))
        .render(
            "job.html",
            context! { id => job.to_string(), state => shown, finished, assignments => assignments(&gateway) },
        )
        .into_response()
}

/// `GET /ui/jobs/{id}/events`: the job's events as Server-Sent Events, as `GET /v1/jobs/{id}/events` serves them.
pub async fn job_events(
    State(gateway): State<Arc<Gateway>>,
    session: StaffSession,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    events::follow(
        State(gateway),
        Path(id),
        session.caller,
        headers,
        Query(events::After::default()),
    )
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /ui/jobs/{id}/cancel` (form, with the session's CSRF token).
pub async fn cancel(
    State(gateway): State<Arc<Gateway>>,
    session: StaffSession,
    Path(id): Path<String>,
    host: super::session::RequestHost,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if !session.form_is_ours(&host, &headers, &form.csrf) {
        return super::session::foreign_form();
    }
    let job = match job_id(&id) {
        Ok(job) => job,
        Err(e) => return api_error_page(e),
    };
    match jobs::request_cancel(&gateway, &session.caller, &job).await {
        Ok(()) => Redirect::to(&format!("/ui/jobs/{id}")).into_response(),
        Err(e) => api_error_page(e),
    }
}

/// `GET /ui/assignments/{name}`: the leaderboard and every team's submissions.
pub async fn assignment(
    State(gateway): State<Arc<Gateway>>,
    session: StaffSession,
    Path(name): Path<String>,
) -> Response {
    let listed = submissions::listed(
        gateway.clone(),
        session.caller.clone(),
        SubmissionsQuery {
            assignment: Some(name.clone()),
            team: None,
        },
    )
    .await;
    let listed = match listed {
        Ok(l) => l.submissions,
        Err(e) => return api_error_page(e),
    };
    let board = submissions::ranked(
        gateway.clone(),
        session.caller.clone(),
        name.clone(),
        RankingQuery { n: Some(100) },
    )
    .await
    .ok();
    // The scores of the submissions that count, one per team.
    let counting: Vec<_> = listed.iter().filter(|s| s.counts).collect();
    let mut scores: Vec<f64> = counting.iter().filter_map(|s| s.score).collect();
    scores.sort_by(f64::total_cmp);
    let max_score = counting
        .iter()
        .filter_map(|s| s.max_score)
        .fold(0.0, f64::max);
    let mean = scores.iter().sum::<f64>() / scores.len().max(1) as f64;
    let median = match scores.len() {
        0 => 0.0,
        n if n % 2 == 1 => scores[n / 2],
        n => (scores[n / 2 - 1] + scores[n / 2]) / 2.0,
    };
    let histogram = chart::bars("histogram", &chart::histogram(&scores, max_score), "teams");
    Page::new(&format!("Assignment {name}"), Some(session.viewer()))
        .render(
            "assignment.html",
            context! {
                assignment => name, submissions => listed, board, assignments => assignments(&gateway),
                scored => scores.len(), teams => counting.len(), mean => chart::figure(mean),
                median => chart::figure(median), max_score => chart::figure(max_score), histogram,
            },
        )
        .into_response()
}

/// `GET /ui/usage`: GPU-hours and queue waits per day, and who used how much.
pub async fn usage(
    State(gateway): State<Arc<Gateway>>,
    session: StaffSession,
    Query(query): Query<rai_common::api::UsageQuery>,
) -> Response {
    use rai_common::usage::UsageBy;
    let since = query.since.as_deref().filter(|s| !s.is_empty());
    let by = match query.by.as_deref().filter(|s| !s.is_empty()) {
        Some(b) => match b.parse::<UsageBy>() {
            Ok(b) => b,
            Err(e) => return error_page(StatusCode::BAD_REQUEST, "Cannot show this", &e),
        },
        None => UsageBy::User,
    };
    let (days, groups) = match tokio::try_join!(
        usage::usage(&gateway, &session.caller, UsageBy::Day, since),
        usage::usage(&gateway, &session.caller, by, since),
    ) {
        Ok(both) => both,
        Err(e) => return api_error_page(e),
    };
    let day_bars = |value: &dyn Fn(&rai_common::usage::UsageRow) -> f64, what: &str| {
        days.rows
            .iter()
            .map(|r| chart::Bar {
                label: r.key.get(5..).unwrap_or(&r.key).to_string(),
                value: value(r),
                title: format!("{}: {} {what}", r.key, chart::figure(value(r))),
            })
            .collect::<Vec<_>>()
    };
    let gpu_hours = chart::bars(
        "gpu-hours",
        &day_bars(&|r| r.gpu_hours, "GPU-hours"),
        "GPU-hours",
    );
    let waits = chart::bars(
        "waits",
        &day_bars(&|r| r.mean_wait_seconds / 60.0, "minutes mean wait"),
        "mean wait (min)",
    );
    let mut rows = groups.rows;
    rows.sort_by(|a, b| {
        b.gpu_hours
            .total_cmp(&a.gpu_hours)
            .then(b.hours.total_cmp(&a.hours))
    });
    let by_name = match by {
        UsageBy::User => "user",
        UsageBy::Team => "team",
        UsageBy::Assignment => "assignment",
        UsageBy::Day => "day",
    };
    Page::new("Usage", Some(session.viewer()))
        .render(
            "usage.html",
            context! {
                gpu_hours, waits, rows, total => groups.total, by => by_name, since,
                assignments => assignments(&gateway),
            },
        )
        .into_response()
}

/// `GET /ui/deadletters`: the jobs workers gave up on, each with its owner, why, and the two ways out.
pub async fn dead_letters(State(gateway): State<Arc<Gateway>>, session: StaffSession) -> Response {
    match deadletters::views(&gateway).await {
        Ok(letters) => Page::new("Dead letters", Some(session.viewer()))
            .render(
                "deadletters.html",
                context! { letters, assignments => assignments(&gateway) },
            )
            .into_response(),
        Err(e) => api_error_page(e),
    }
}

/// What a dead-letter form asks for.
#[derive(Deserialize)]
pub struct DeadLetterForm {
    #[serde(default)]
    csrf: String,
    /// `requeue` or `drop`.
    action: String,
}

/// `POST /ui/deadletters/{job}` (form, with the session's CSRF token): requeue or drop.
pub async fn dead_letter_action(
    State(gateway): State<Arc<Gateway>>,
    session: StaffSession,
    Path(id): Path<String>,
    host: super::session::RequestHost,
    headers: HeaderMap,
    axum::Form(form): axum::Form<DeadLetterForm>,
) -> Response {
    if !session.form_is_ours(&host, &headers, &form.csrf) {
        return super::session::foreign_form();
    }
    let done = match form.action.as_str() {
        "requeue" => deadletters::requeue(State(gateway), Path(id), session.caller)
            .await
            .map(|_| ()),
        "drop" => deadletters::drop(State(gateway), Path(id), session.caller)
            .await
            .map(|_| ()),
        other => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Cannot do this",
                &format!("\"{other}\" is not an action here (requeue or drop)"),
            );
        }
    };
    match done {
        Ok(()) => Redirect::to("/ui/deadletters").into_response(),
        Err(e) => api_error_page(e),
    }
}
