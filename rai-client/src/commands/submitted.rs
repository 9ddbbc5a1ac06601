//! `rai submitted [NAME]`: the team's graded submissions, newest first, which one counts, and each assignment's
//! deadline as the student has it (their own extension, or their team's, included).

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit;
use crate::terminal::visible;

pub async fn run(global: &GlobalArgs, assignment: Option<&str>, json: bool) -> anyhow::Result<u8> {
    let session = context::session(global)?;
    let answer = session.client.submissions(assignment, None).await?;
    let submissions = answer.submissions;
    if json {
        for s in &submissions {
            println!("{}", serde_json::to_string(s)?);
        }
        return Ok(exit::OK);
    }
    for d in &answer.deadlines {
        let whose = match &d.deadline.extended_for {
            Some(who) => format!(" (extended for {})", visible(who)),
            None => String::new(),
        };
        println!("{}: {}{whose}", visible(&d.assignment), visible(&d.text));
    }
    if !answer.deadlines.is_empty() {
        println!();
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
