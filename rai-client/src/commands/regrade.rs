//! `rai regrade NAME [--team T ...] [--all-submissions]` (staff): runs an assignment's submissions again with the
//! course file's build file of now, from the stored uploads, below every student's job in the queue; follows the
//! batch with a progress bar and ends with a summary: done, failed, and whose score changed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::time::Duration;

use rai_common::api::{RegradeRequest, Submission};
use rai_common::event::JobStatus;
use rai_common::job::JobId;

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit;
use crate::terminal::visible;

/// How often the batch's jobs are looked at.
const POLL: Duration = Duration::from_secs(2);

/// How a batch ended.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub done: usize,
    pub failed: usize,
    /// Teams whose score the regrade changed, with the scores before and after.
    pub changed: Vec<(String, String, String)>,
}

pub async fn run(
    global: &GlobalArgs,
    assignment: &str,
    teams: Vec<String>,
    all_submissions: bool,
    detach: bool,
) -> anyhow::Result<u8> {
    let session = context::session(global)?;
    let answer = session
        .client
        .regrade(&RegradeRequest {
            assignment: assignment.to_string(),
            teams,
            all_submissions,
        })
        .await?;
    let mut jobs = BTreeSet::new();
    for item in &answer.items {
        match (&item.job, &item.refused) {
            (Some(job), _) => {
                jobs.insert(*job);
            }
            (None, Some(why)) => {
                eprintln!("✱ {}: not regraded: {}", visible(&item.team), visible(why))
            }
            (None, None) => {}
        }
    }
    eprintln!(
        "✱ {} submission(s) of {} queued for a regrade, below students' own jobs.",
        jobs.len(),
        visible(assignment)
    );
    if detach || jobs.is_empty() {
        return Ok(if jobs.len() == answer.items.len() {
            exit::OK
        } else {
            exit::SOME_FAILED
        });
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(jobs.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} regraded, {elapsed} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut ended: BTreeMap<JobId, JobStatus> = BTreeMap::new();
    while ended.len() < jobs.len() {
        let open: Vec<JobId> = jobs
            .iter()
            .filter(|j| !ended.contains_key(j))
            .copied()
            .collect();
        for job in &open {
            if let Ok(state) = session.client.status(job).await
                && let Some(status) = state.status.filter(|s| s.is_final())
            {
                ended.insert(*job, status);
            }
        }
        if let Some(bar) = &bar {
            bar.set_position(ended.len() as u64);
        }
        if ended.len() < jobs.len() {
            tokio::time::sleep(POLL).await;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let listed = session.client.submissions(Some(assignment), None).await?;
    let summary = summarize(&ended, &listed.submissions);
    print!("{}", render(&summary));
    Ok(if summary.failed == 0 && jobs.len() == answer.items.len() {
        exit::OK
    } else {
        exit::SOME_FAILED
    })
}

/// Done, failed and changed scores, from the batch's ends and the submissions as listed after it.
pub fn summarize(ended: &BTreeMap<JobId, JobStatus>, listed: &[Submission]) -> Summary {
    let mut s = Summary::default();
    for status in ended.values() {
        if *status == JobStatus::Succeeded {
            s.done += 1;
        } else {
            s.failed += 1;
        }
    }
    let number = |x: Option<f64>| x.map_or_else(|| "-".to_string(), super::results::number);
    for sub in listed {
        if sub.regraded_by.is_some_and(|j| ended.contains_key(&j))
            && sub.score != sub.original_score
        {
            s.changed.push((
                sub.record.team.clone(),
                number(sub.original_score),
                number(sub.score),
            ));
        }
    }
    s
}

/// The summary as printed.
pub fn render(s: &Summary) -> String {
    let mut out = format!(
        "regraded: {} done, {} failed, {} score(s) changed\n",
        s.done,
        s.failed,
        s.changed.len()
    );
    for (team, before, after) in &s.changed {
        out.push_str(&format!("  {}: {before} -> {after}\n", visible(team)));
    }
    out
}
