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
    println!("{}", super::submissions::header());
    for s in &submissions {
        println!("{}", super::submissions::row(s));
    }
    Ok(exit::OK)
}
