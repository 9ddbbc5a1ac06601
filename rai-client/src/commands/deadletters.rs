//! `rai deadletters [--requeue JOB | --drop JOB]` (staff): the jobs the queue gave up on after workers took them
//! again and again without finishing, with their owners and why; one can be sent back to its queue, or ended as an
//! error (its owner is told who dropped it).

use rai_common::api::DeadLetters;
use rai_common::job::JobId;

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit;
use crate::terminal::visible;

pub async fn run(
    global: &GlobalArgs,
    requeue: Option<&str>,
    drop: Option<&str>,
    json: bool,
) -> anyhow::Result<u8> {
    let session = context::session(global)?;
    if let Some(id) = requeue {
        let job: JobId = id.parse()?;
        session.client.requeue_dead_letter(&job).await?;
        println!("Job {job} is back in its queue; its owner's `rai status {job}` follows it.");
        return Ok(exit::OK);
    }
    if let Some(id) = drop {
        let job: JobId = id.parse()?;
        session.client.drop_dead_letter(&job).await?;
        println!("Job {job} ended as an error; its owner sees who dropped it and why.");
        return Ok(exit::OK);
    }
    let letters = session.client.dead_letters().await?;
    if json {
        for l in &letters.letters {
            println!("{}", serde_json::to_string(l)?);
        }
        return Ok(exit::OK);
    }
    print!("{}", render(&letters));
    Ok(exit::OK)
}

/// The listing: one block per dead letter.
pub fn render(letters: &DeadLetters) -> String {
    if letters.letters.is_empty() {
        return "No dead letters: every job either ran or is still queued.\n".to_string();
    }
    let mut out = String::new();
    for l in &letters.letters {
        let job = l
            .job
            .map_or_else(|| format!("message {}", l.message), |j| j.to_string());
        let owner = match (&l.user, &l.team) {
            (Some(u), Some(t)) => format!("{u} (team {t})"),
            (Some(u), None) => u.clone(),
            _ => "unknown owner".to_string(),
        };
        let mut line = format!("{job}  {owner}  queue {}", l.queue);
        if let Some(a) = &l.assignment {
            line.push_str(&format!("  for {a}"));
        }
        if let Some(t) = l.accepted_at {
            line.push_str(&format!("  accepted {}", t.format("%Y-%m-%d %H:%M:%S UTC")));
        }
        out.push_str(&visible(&line));
        out.push('\n');
        out.push_str(&format!("    {}\n", visible(&l.reason)));
    }
    out.push_str(
        "Send one back with `rai deadletters --requeue JOB`, or end it with `--drop JOB`.\n",
    );
    out
}
