//! `rai submitted [NAME]`: the team's graded submissions, newest first, and which one counts.

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit;
use crate::terminal::visible;

pub async fn run(global: &GlobalArgs, assignment: Option<&str>, json: bool) -> anyhow::Result<u8> {
    let session = context::session(global)?;
    let submissions = session.client.submissions(assignment, None).await?;
    if json {
        for s in &submissions {
            println!("{}", serde_json::to_string(s)?);
        }
        return Ok(exit::OK);
    }
    if submissions.is_empty() {
        println!(
            "No submissions for team {} yet{}. Submit with `rai submit --submit NAME`.",
            visible(&session.profile.team.name),
            assignment.map(|a| format!(" for {a}")).unwrap_or_default()
        );
        return Ok(exit::OK);
    }
    println!(
        "{:<10} {:<27} {:<21} {:<8} {:<10} {:>9}  BY",
        "FOR", "JOB", "ACCEPTED (UTC)", "", "STATUS", "RANKED"
    );
    for s in submissions {
        let r = &s.record;
        let line = format!(
            "{:<10} {:<27} {:<21} {:<8} {:<10} {:>9}  {}{}",
            r.assignment,
            r.job,
            r.accepted_at.format("%Y-%m-%d %H:%M:%S"),
            if r.late { "late" } else { "on time" },
            s.status.map_or("queued", |st| st.as_str()),
            s.ranked_seconds
                .map(|t| format!("{t:.3}s"))
                .unwrap_or_else(|| "-".into()),
            r.user,
            if s.counts { "  ← counts" } else { "" },
        );
        println!("{}", visible(&line));
    }
    Ok(exit::OK)
}
