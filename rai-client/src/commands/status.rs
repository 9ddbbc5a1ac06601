//! `rai status ID`: queued, running (worker, elapsed), or finished (status, exit code); for a sweep's id, a line
//! for each of its jobs.

use rai_common::JobId;
use rai_common::api::ErrorCode;

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit;

pub async fn run(global: &GlobalArgs, id: &str, json: bool) -> anyhow::Result<u8> {
    let job: JobId = id.parse()?;
    let session = context::session(global)?;
    let state = match session.client.status(&job).await {
        Ok(state) => state,
        Err(e) if e.code() == Some(ErrorCode::NoSuchJob) => {
            // Not a job of yours: perhaps a sweep of yours.
            if let Ok(sweep) = session.client.sweep(&job).await {
                return sweep_status(&sweep, json);
            }
            eprintln!("rai: {e}");
            return Ok(exit::USAGE);
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        println!("{}", serde_json::to_string(&state)?);
        return Ok(exit::OK);
    }
    let status = state
        .status
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("job:      {job}");
    println!("status:   {status}");
    if let (Some(sweep), Some(label)) = (&state.sweep, &state.combination) {
        println!("sweep:    {} [{}]", field(sweep), field(label));
    }
    if let Some(w) = &state.worker {
        println!("worker:   {}", field(w));
    }
    if let Some(s) = state.started_at {
        match state.finished_at {
            None => println!("running:  {}s", (chrono::Utc::now() - s).num_seconds()),
            Some(_) => println!("started:  {}", s.to_rfc3339()),
        }
    }
    if let Some(f) = state.finished_at {
        println!("finished: {}", f.to_rfc3339());
    }
    if let Some(c) = state.exit_code {
        println!("exit:     {c}");
    }
    if let Some(r) = state.reason.as_deref().filter(|r| !r.is_empty()) {
        println!("reason:   {}", field(r));
    }
    if let Some(gpus) = state.gpus.as_ref().filter(|g| !g.is_empty()) {
        println!("gpus:     {}", field(&gpus.join(", ")));
    }
    // Sampled by the worker while the commands ran: whether the job used its GPU at all.
    for (i, used) in state.gpu_use.iter().flatten().enumerate() {
        let label = if i == 0 { "gpu use:" } else { "" };
        println!("{label:<9} {}", field(&used.describe()));
    }
    Ok(exit::OK)
}

/// A field that may quote a student (a reason names the failing command) with every control made visible; to a
/// pipe as it is.
fn field(text: &str) -> std::borrow::Cow<'_, str> {
    if crate::terminal::stdout_is_terminal() {
        crate::terminal::visible(text)
    } else {
        text.into()
    }
}

/// A sweep's jobs: one line each, its combination, status and exit code.
fn sweep_status(sweep: &rai_common::api::Sweep, json: bool) -> anyhow::Result<u8> {
    if json {
        println!("{}", serde_json::to_string(sweep)?);
        return Ok(exit::OK);
    }
    println!("sweep:    {} ({} jobs)", sweep.sweep, sweep.jobs.len());
    let width = sweep
        .jobs
        .iter()
        .filter_map(|j| j.state.combination.as_ref().map(String::len))
        .max()
        .unwrap_or(0)
        .max("COMBINATION".len());
    println!(
        "{:<width$}  {:<26}  {:<10}  EXIT",
        "COMBINATION", "JOB", "STATUS"
    );
    for j in &sweep.jobs {
        let line = format!(
            "{:<width$}  {:<26}  {:<10}  {}",
            j.state.combination.as_deref().unwrap_or("-"),
            j.job,
            j.state
                .status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into()),
            j.state
                .exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into())
        );
        println!("{}", crate::terminal::visible(&line));
    }
    Ok(exit::OK)
}
