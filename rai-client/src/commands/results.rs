//! `rai results [JOB]`: a job's scores (its `/build/results.json`, Gradescope's format) as the gateway lets this
//! user see them now; without a job, the newest of the user's jobs that kept scores.

use rai_common::JobId;
use rai_common::results::{Results, TestStatus};

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit;

/// How far back `rai results` without a job id looks for a job with scores.
const LOOK_BACK: usize = 50;

pub async fn run(global: &GlobalArgs, id: Option<&str>, json: bool) -> anyhow::Result<u8> {
    let session = context::session(global)?;
    let job: JobId = match id {
        Some(id) => id.parse()?,
        None => {
            let records = session.client.history(None, LOOK_BACK).await?;
            match records.iter().find(|r| r.results.is_some()) {
                Some(r) => r.id.parse()?,
                None => {
                    eprintln!(
                        "rai: none of your last {LOOK_BACK} jobs kept scores (a job keeps them by writing \
                         /build/results.json); name a job: rai results JOB"
                    );
                    return Ok(exit::USAGE);
                }
            }
        }
    };
    let answer = match session.client.results(&job).await {
        Ok(answer) => answer,
        Err(e) if e.status() == Some(reqwest::StatusCode::NOT_FOUND) => {
            eprintln!("rai: {e}");
            return Ok(exit::USAGE);
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        println!("{}", serde_json::to_string(&answer)?);
        return Ok(exit::OK);
    }
    println!("job:   {job}");
    if let Some(a) = &answer.assignment {
        println!("for:   {a}");
    }
    match &answer.results {
        Some(results) => print!("{}", render(results)),
        None => println!("{}", answer.note.as_deref().unwrap_or("no scores to show")),
    }
    Ok(exit::OK)
}

/// A score as people write it: `7`, `3.5` (no trailing `.0`); also for spreadsheets (`rai submissions --csv`).
pub fn number(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

/// `score` out of `max` (`7 / 10`, or `7` without a maximum; `-` without a score).
pub fn fraction(score: Option<f64>, max: Option<f64>, between: &str) -> String {
    match (score, max) {
        (Some(s), Some(m)) => format!("{}{between}{}", number(s), number(m)),
        (Some(s), None) => number(s),
        (None, _) => "-".into(),
    }
}

/// The scores as a table: the total, then one line per test the user may see.
pub fn render(results: &Results) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "score: {}\n",
        fraction(results.total(), results.max_total(), " / ")
    ));
    if let Some(text) = results.output.as_deref().filter(|t| !t.is_empty()) {
        out.push_str(&format!("{}\n", crate::terminal::visible(text)));
    }
    let width = results
        .tests
        .iter()
        .map(|t| t.name.as_deref().unwrap_or("").chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    for t in &results.tests {
        let name = crate::terminal::visible(t.name.as_deref().unwrap_or("(unnamed)"));
        let score = fraction(t.score, t.max_score, " / ");
        let status = match t.status {
            Some(TestStatus::Passed) => "passed",
            Some(TestStatus::Failed) => "failed",
            None => "",
        };
        out.push_str(&format!("  {name:<width$}  {score:>9}  {status}\n"));
        if let Some(text) = t.output.as_deref().filter(|t| !t.is_empty()) {
            for line in text.lines() {
                out.push_str(&format!("      {}\n", crate::terminal::visible(line)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_render_as_a_total_and_a_line_per_test() {
        let r = Results::parse(
            br#"{"output": "graded on a T4", "tests": [
                {"name": "add", "score": 2, "max_score": 2, "status": "passed"},
                {"name": "speedup", "score": 1.5, "max_score": 3, "status": "failed", "output": "2.1x, want 4x"}]}"#,
        )
        .unwrap();
        assert_eq!(
            render(&r),
            "score: 3.5 / 5\ngraded on a T4\n  add          2 / 2  passed\n  speedup    1.5 / 3  failed\n      2.1x, want 4x\n"
        );
    }
}
