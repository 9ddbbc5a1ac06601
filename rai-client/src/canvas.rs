//! Grades out to Canvas: `rai submissions NAME --canvas roster.csv` writes the gradebook import CSV Canvas reads
//! (Gradebook, Import), from the instructor's own gradebook export as the roster.
//!
//! Canvas matches an imported row to a student by its `ID` (then `SIS User ID`, `SIS Login ID`), so every identity
//! column is copied from the roster as it is; the only rai fact joined in is the score of the submission that counts
//! for the student's team. A student is found by the roster's login column (`SIS Login ID`, or `Login ID` or
//! `username`), which at a university is the same NetID the roster for `rai-keygen` uses. The assignment's column is
//! the roster's own when it has one for the assignment (Canvas names them `m1 (12345)`: the id keeps the import on
//! the existing column), otherwise the assignment's name, which Canvas offers to create.

use std::collections::BTreeMap;

use rai_common::api::Submissions;

/// Why a roster cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CanvasError {
    #[error("{path}: cannot read it as CSV: {source}")]
    Csv {
        path: String,
        #[source]
        source: csv::Error,
    },
    #[error(
        "{path}: no {missing} column; export the gradebook from Canvas (Grades, Export) and pass that file as the roster"
    )]
    MissingColumn { path: String, missing: String },
}

/// The gradebook to import, and what the join could not place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gradebook {
    pub csv: String,
    /// The assignment column's header.
    pub column: String,
    /// Roster rows with a score.
    pub graded: usize,
    /// Logins in the roster that the course's registry does not have.
    pub not_in_course: Vec<String>,
    /// The course's students missing from the roster (their grade has no row to go to).
    pub not_in_roster: Vec<String>,
}

/// The columns copied, in Canvas's order; `Student`, `ID` and `Section` must be there.
const IDENTITY: [&str; 5] = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"];
const REQUIRED: [&str; 3] = ["Student", "ID", "Section"];
const LOGIN: [&str; 3] = ["sis login id", "login id", "username"];

/// A header matches the assignment when it is its name or title, alone or followed by Canvas's ` (id)`.
fn names_assignment(header: &str, names: &[&str]) -> bool {
    let h = header.trim();
    names.iter().any(|n| {
        h.eq_ignore_ascii_case(n)
            || h.len() > n.len() + 2
                && h[..n.len()].eq_ignore_ascii_case(n)
                && h[n.len()..].starts_with(" (")
                && h.ends_with(')')
    })
}

/// Joins `roster` (a Canvas gradebook export, read from `path`) with the counting submissions of `assignment`
/// (`title` too, when the course file gives one).
pub fn gradebook(
    roster: &str,
    path: &str,
    assignment: &str,
    title: Option<&str>,
    listed: &Submissions,
) -> Result<Gradebook, CanvasError> {
    let csv_error = |source| CanvasError::Csv {
        path: path.to_string(),
        source,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(roster.trim_start_matches('\u{feff}').as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(csv_error)?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let find = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    for name in REQUIRED {
        if find(name).is_none() {
            return Err(CanvasError::MissingColumn {
                path: path.to_string(),
                missing: format!("\"{name}\""),
            });
        }
    }
    let login = LOGIN
        .iter()
        .find_map(|n| find(n))
        .ok_or_else(|| CanvasError::MissingColumn {
            path: path.to_string(),
            missing: "login (\"SIS Login ID\", \"Login ID\" or \"username\") to find each student's rai account by"
                .to_string(),
        })?;
    let copied: Vec<(&str, usize)> = IDENTITY
        .iter()
        .filter_map(|n| find(n).map(|i| (*n, i)))
        .collect();
    let mut names = vec![assignment];
    names.extend(title);
    let column = headers
        .iter()
        .find(|h| names_assignment(h, &names))
        .cloned()
        .unwrap_or_else(|| title.unwrap_or(assignment).to_string());

    // The team's counting score, for each of its members.
    let mut by_team: BTreeMap<&str, f64> = BTreeMap::new();
    for s in listed.submissions.iter().filter(|s| s.counts) {
        if let Some(score) = s.score {
            by_team.insert(s.record.team.as_str(), score);
        }
    }
    let score_of = |user: &str| {
        let team = listed.teams.get(user).map(String::as_str).unwrap_or(user);
        by_team.get(team).copied()
    };

    let mut out = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<&str> = copied.iter().map(|(n, _)| *n).collect();
    header.push(&column);
    out.write_record(&header).map_err(csv_error)?;
    let (mut graded, mut not_in_course, mut seen) = (0, Vec::new(), Vec::new());
    for row in reader.records() {
        let row = row.map_err(csv_error)?;
        let field = |i: usize| row.get(i).unwrap_or("").trim();
        // Canvas's export has a "Points Possible" row (and sometimes muted/read-only rows) under the header.
        if field(copied[0].1).starts_with("Points Possible") || field(login).is_empty() {
            continue;
        }
        let user = field(login);
        seen.push(user.to_string());
        let score = score_of(user);
        if !listed.teams.is_empty() && !listed.teams.contains_key(user) {
            not_in_course.push(user.to_string());
        }
        graded += usize::from(score.is_some());
        let mut record: Vec<String> = copied.iter().map(|(_, i)| field(*i).to_string()).collect();
        record.push(
            score
                .map(crate::commands::results::number)
                .unwrap_or_default(),
        );
        out.write_record(&record).map_err(csv_error)?;
    }
    let not_in_roster = listed
        .teams
        .keys()
        .filter(|u| !seen.contains(u))
        .cloned()
        .collect();
    let csv = String::from_utf8(out.into_inner().unwrap_or_default()).unwrap_or_default();
    Ok(Gradebook {
        csv,
        column,
        graded,
        not_in_course,
        not_in_roster,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rai_common::api::{Submission, SubmissionRecord};
    use rai_common::job::JobId;

    fn sub(team: &str, user: &str, score: Option<f64>, counts: bool) -> Submission {
        Submission {
            record: SubmissionRecord {
                job: JobId::new(),
                assignment: "m1".into(),
                team: team.into(),
                user: user.into(),
                accepted_at: chrono::Utc::now(),
                late: false,
                signed: None,
                regrade_of: None,
            },
            status: Some(rai_common::event::JobStatus::Succeeded),
            ranked_seconds: None,
            counts,
            score,
            max_score: Some(10.0),
            regraded_by: None,
            original_score: None,
        }
    }

    const EXPORT: &str = "\u{feff}Student,ID,SIS User ID,SIS Login ID,Section,Milestone 1 (4401),Quiz 2 (4402)\n    Points Possible,,,,,10,5\n\"Doe, Jane\",101,6500101,jdoe,ECE 408 AL1,,4\n\"Roe, Bob\",102,6500102,broe,ECE 408 AL1,,5\n\"Smith, Ann\",103,6500103,asmith,ECE 408 AL2,,3\n\"Student, Test\",104,,,ECE 408 AL1,,\nVisitor,105,6500105,visitor,ECE 408 AL2,,\n";

    #[test]
    fn a_teams_counting_score_reaches_every_member_in_canvass_own_column() {
        let listed = Submissions {
            submissions: vec![
                sub("t7", "jdoe", Some(7.5), true),
                sub("t7", "broe", Some(2.0), false),
                sub("asmith", "asmith", None, true),
            ],
            deadlines: vec![],
            teams: [
                ("jdoe", "t7"),
                ("broe", "t7"),
                ("asmith", "asmith"),
                ("cwu", "cwu"),
            ]
            .into_iter()
            .map(|(u, t)| (u.to_string(), t.to_string()))
            .collect(),
        };
        let g = gradebook(EXPORT, "grades.csv", "m1", Some("Milestone 1"), &listed).unwrap();
        assert_eq!(g.column, "Milestone 1 (4401)");
        assert_eq!(
            g.csv,
            "Student,ID,SIS User ID,SIS Login ID,Section,Milestone 1 (4401)\n\"Doe, Jane\",101,6500101,jdoe,ECE 408 AL1,7.5\n\"Roe, Bob\",102,6500102,broe,ECE 408 AL1,7.5\n\"Smith, Ann\",103,6500103,asmith,ECE 408 AL2,\nVisitor,105,6500105,visitor,ECE 408 AL2,\n"
        );
        assert_eq!(g.graded, 2);
        assert_eq!(g.not_in_course, ["visitor"]);
        assert_eq!(g.not_in_roster, ["cwu"]);
        // Without a column for it, the assignment's name heads a new one.
        let g = gradebook(EXPORT, "grades.csv", "m2", None, &listed).unwrap();
        assert_eq!(g.column, "m2");
    }

    #[test]
    fn a_roster_without_identity_or_login_columns_says_what_to_export() {
        let listed = Submissions {
            submissions: vec![],
            deadlines: vec![],
            teams: BTreeMap::new(),
        };
        let e = gradebook("name,email\nx,y\n", "r.csv", "m1", None, &listed).unwrap_err();
        assert_eq!(
            e.to_string(),
            "r.csv: no \"Student\" column; export the gradebook from Canvas (Grades, Export) and pass that file as the roster"
        );
        let e = gradebook("Student,ID,Section\nx,1,A\n", "r.csv", "m1", None, &listed).unwrap_err();
        assert!(e.to_string().contains("no login (\"SIS Login ID\""), "{e}");
    }
}
