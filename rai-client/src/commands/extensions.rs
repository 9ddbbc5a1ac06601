//! `rai extensions NAME` (staff): the deadlines the course file moved for one user or team, with whom each name is
//! in the registry (a name that is neither a user nor a team extends no one: a typo to fix).

use rai_common::api::{Extensions, Grantee};

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit;
use crate::terminal::visible;

pub async fn run(global: &GlobalArgs, assignment: &str, json: bool) -> anyhow::Result<u8> {
    let session = context::session(global)?;
    let answer = session.client.extensions(assignment).await?;
    if json {
        println!("{}", serde_json::to_string(&answer)?);
        return Ok(exit::OK);
    }
    print!("{}", render(assignment, &answer));
    Ok(exit::OK)
}

/// The listing: the assignment's own times, then one line per extension.
pub fn render(assignment: &str, answer: &Extensions) -> String {
    let mut out = format!(
        "{}: {}\n",
        visible(assignment),
        visible(&answer.course.text)
    );
    if answer.extensions.is_empty() {
        out.push_str("No extensions.\n");
        return out;
    }
    let width = answer
        .extensions
        .iter()
        .map(|e| e.name.chars().count())
        .max()
        .unwrap_or(0);
    for e in &answer.extensions {
        let who = match e.grantee {
            Grantee::User => "user",
            Grantee::Team => "team",
            Grantee::Unknown => "NOT IN THE REGISTRY",
        };
        out.push_str(&format!(
            "  {:width$}  {who:4}  {}\n",
            visible(&e.name),
            visible(&e.deadline.text)
        ));
    }
    if answer
        .extensions
        .iter()
        .any(|e| e.grantee == Grantee::Unknown)
    {
        out.push_str(
            "A name not in the registry extends no one: check its spelling in the course file's extensions.\n",
        );
    }
    out
}
