//! `rai submissions NAME [--csv] [--every]` (staff): an assignment's graded submissions, one row per team (the one
//! that counts), for grading.

use rai_common::api::Submission;

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit;
use crate::terminal::visible;

/// The CSV's columns, in order (docs/instructor.md describes each).
pub const CSV_COLUMNS: [&str; 12] = [
    "team",
    "user",
    "job",
    "accepted_at",
    "late",
    "status",
    "score",
    "max_score",
    "original_score",
    "ranked_seconds",
    "counts",
    "regrade_of",
];

/// One CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180); a leading `=`, `+`, `-` or `@`
/// is prefixed with `'` so a spreadsheet never runs a team name as a formula.
fn field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// A submission as a CSV row of [`CSV_COLUMNS`].
pub fn csv_row(s: &Submission) -> String {
    let r = &s.record;
    [
        field(&r.team),
        field(&r.user),
        r.job.to_string(),
        r.accepted_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        r.late.to_string(),
        s.status.map_or("queued", |st| st.as_str()).to_string(),
        s.score.map(super::results::number).unwrap_or_default(),
        s.max_score.map(super::results::number).unwrap_or_default(),
        s.original_score
            .map(super::results::number)
            .unwrap_or_default(),
        s.ranked_seconds
            .map(|t| format!("{t:.3}"))
            .unwrap_or_default(),
        s.counts.to_string(),
        r.regrade_of.map(|j| j.to_string()).unwrap_or_default(),
    ]
    .join(",")
}

/// The header of [`row`]'s table.
pub fn header() -> String {
    format!(
        "{:<10} {:<16} {:<12} {:<27} {:<21} {:<8} {:<10} {:>9} {:>9}",
        "FOR", "TEAM", "USER", "JOB", "ACCEPTED (UTC)", "", "STATUS", "SCORE", "RANKED"
    )
}

/// A submission as a line of the table `rai submitted` and `rai submissions` print (fields students wrote made
/// visible), marked when it is the one that counts.
pub fn row(s: &Submission) -> String {
    let r = &s.record;
    let line = format!(
        "{:<10} {:<16} {:<12} {:<27} {:<21} {:<8} {:<10} {:>9} {:>9}{}",
        r.assignment,
        r.team,
        r.user,
        r.job,
        r.accepted_at.format("%Y-%m-%d %H:%M:%S"),
        if r.late { "late" } else { "on time" },
        s.status.map_or("queued", |st| st.as_str()),
        super::results::fraction(s.score, s.max_score, "/"),
        s.ranked_seconds
            .map(|t| format!("{t:.3}s"))
            .unwrap_or_else(|| "-".into()),
        if s.counts { "  ← counts" } else { "" },
    );
    visible(&line).into_owned()
}

pub async fn run(
    global: &GlobalArgs,
    assignment: &str,
    csv: bool,
    every: bool,
) -> anyhow::Result<u8> {
    let session = context::session(global)?;
    let mut rows = session
        .client
        .submissions(Some(assignment), None)
        .await?
        .submissions;
    if !every {
        rows.retain(|s| s.counts);
    }
    rows.sort_by(|a, b| a.record.team.cmp(&b.record.team));
    if csv {
        println!("{}", CSV_COLUMNS.join(","));
        for s in &rows {
            println!("{}", csv_row(s));
        }
        return Ok(exit::OK);
    }
    println!("{}", header());
    for s in &rows {
        println!("{}", row(s));
    }
    Ok(exit::OK)
}

/// `--canvas ROSTER`: the Canvas gradebook import on stdout, what could not be joined on stderr.
pub async fn canvas(
    global: &GlobalArgs,
    assignment: &str,
    roster: &std::path::Path,
) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(roster)
        .map_err(|e| anyhow::anyhow!("cannot read the roster {}: {e}", roster.display()))?;
    let session = context::session(global)?;
    let listed = session.client.submissions(Some(assignment), None).await?;
    let title = listed
        .deadlines
        .iter()
        .find(|d| d.assignment == assignment)
        .and_then(|d| d.title.clone());
    let book = crate::canvas::gradebook(
        &text,
        &roster.display().to_string(),
        assignment,
        title.as_deref(),
        &listed,
    )?;
    print!("{}", book.csv);
    eprintln!(
        "{} student(s) graded in the column \"{}\"",
        book.graded,
        visible(&book.column)
    );
    if !book.not_in_course.is_empty() {
        eprintln!(
            "in the roster, not in the course's registry (left blank): {}",
            visible(&book.not_in_course.join(", "))
        );
    }
    if !book.not_in_roster.is_empty() {
        eprintln!(
            "in the course, not in the roster (no row to grade): {}",
            visible(&book.not_in_roster.join(", "))
        );
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rai_common::api::SubmissionRecord;
    use rai_common::event::JobStatus;
    use rai_common::job::JobId;

    #[test]
    fn rows_have_the_columns_and_hostile_names_stay_text() {
        let job = JobId::new();
        let s = Submission {
            record: SubmissionRecord {
                job,
                assignment: "m1".into(),
                team: "=HYPERLINK(\"x\"),evil".into(),
                user: "alice".into(),
                accepted_at: chrono::DateTime::parse_from_rfc3339("2026-12-10T05:59:00Z")
                    .unwrap()
                    .with_timezone(&chrono::Utc),
                late: true,
                signed: None,
                regrade_of: None,
            },
            status: Some(JobStatus::Succeeded),
            ranked_seconds: Some(1.23456),
            counts: true,
            score: Some(7.5),
            max_score: Some(10.0),
            regraded_by: None,
            original_score: None,
        };
        let row = csv_row(&s);
        assert_eq!(
            row,
            format!(
                "\"'=HYPERLINK(\"\"x\"\"),evil\",alice,{job},2026-12-10T05:59:00Z,true,succeeded,7.5,10,,1.235,true,"
            )
        );
        assert_eq!(CSV_COLUMNS.len(), 12);
    }
}
