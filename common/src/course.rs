//! The course file, `course.yml`: a term's assignments, their deadlines on the server's clock, and what a graded
//! submission must be.
//!
//! The gateway names it (`gateway.course`) and rereads it when it changes. It is read strictly (unlike a student's
//! build file): a typo in a deadline must stop the instructor, not silently move the deadline. Times are written in
//! the course's own time zone, as a syllabus says them (`due: 2026-12-10 23:59` in `America/Chicago`), and compared
//! as instants, so daylight saving time is the time zone database's business, not the instructor's.
//!
//! ```yaml
//! course: ECE 408 Fall 2026
//! time_zone: America/Chicago
//! assignments:
//!   m1:
//!     title: Milestone 1
//!     due: 2026-12-10 23:59
//!     late_until: 2026-12-12 23:59   # accepted and marked late until then; without it, late is refused
//!     build_file: m1_build.yml       # the instructor's, run instead of the student's (relative to this file)
//!     required_files: [report.pdf]
//!     queue: rai_amd64_ece408
//!     counts: latest_on_time         # or latest
//!     ranking: { command: 3, better: lower }
//! extensions:                          # per assignment, per user or team (a user's own comes first)
//!   m1:
//!     jdoe: 48h                          # due and late_until both move
//!     team-7: { due: 2026-12-14 23:59 }  # late_until moves as far as due did, unless given
//! ```
//!
//! Over 450 lines: the course file's schema, deadlines and extensions read one another's types.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::build_spec::BuildSpec;
use crate::yaml::{self, Limits, YamlError};

/// A course file that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CourseError(pub YamlError);

/// Why a graded submission is refused by the course file itself (the gateway adds the HTTP status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmissionRefused {
    #[error("this course has no assignments to submit to")]
    NoAssignments,
    #[error("there is no assignment \"{name}\" in this course; its assignments are: {}", .known.join(", "))]
    NoSuchAssignment { name: String, known: Vec<String> },
    /// Past the due time (the student's own, `extension` saying so) and past the late window.
    #[error(
        "{assignment} was due {due}{extension}; late submissions closed {closed} (it is {now} now)"
    )]
    LateClosed {
        assignment: String,
        due: String,
        extension: String,
        closed: String,
        now: String,
    },
    #[error(
        "{assignment} was due {due}{extension} and this course does not accept late submissions (it is {now} now)"
    )]
    NoLate {
        assignment: String,
        due: String,
        extension: String,
        now: String,
    },
}

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CourseText {
    #[serde(default)]
    course: Option<String>,
    time_zone: String,
    #[serde(default)]
    keep_submissions_until: Option<String>,
    #[serde(default)]
    assignments: BTreeMap<String, AssignmentText>,
    #[serde(default)]
    extensions: BTreeMap<String, BTreeMap<String, ExtensionText>>,
}

/// One extension as written: a duration added to the assignment's times, or a new due time (and late window).
#[derive(Debug, Clone)]
enum ExtensionText {
    Longer(crate::units::Span),
    Until {
        due: String,
        late_until: Option<String>,
    },
}

impl<'de> Deserialize<'de> for ExtensionText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        const KEYS: &[&str] = &["due", "late_until"];
        impl<'de> serde::de::Visitor<'de> for Text {
            type Value = ExtensionText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration like 48h, or { due: 2026-12-14 23:59, late_until: ... }")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<ExtensionText, E> {
                Err(E::custom(format!(
                    "{n} has no unit; write the extension like {n}h or {n}d, or give a due time"
                )))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ExtensionText, E> {
                text.parse().map(ExtensionText::Longer).map_err(E::custom)
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<ExtensionText, M::Error> {
                let (mut due, mut late_until) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "due" => due = Some(map.next_value::<String>()?),
                        "late_until" => late_until = Some(map.next_value::<String>()?),
                        other => return Err(serde::de::Error::unknown_field(other, KEYS)),
                    }
                }
                let due = due.ok_or_else(|| serde::de::Error::missing_field("due"))?;
                Ok(ExtensionText::Until { due, late_until })
            }
        }
        d.deserialize_any(Text)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignmentText {
    #[serde(default)]
    title: Option<String>,
    due: String,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    late_until: Option<String>,
    #[serde(default)]
    build_file: Option<PathBuf>,
    #[serde(default)]
    required_files: Vec<String>,
    #[serde(default)]
    queue: Option<String>,
    #[serde(default)]
    counts: Counts,
    #[serde(default)]
    ranking: Option<Ranking>,
    #[serde(default)]
    results: Option<ResultsText>,
}

/// An assignment's `results:` (the job's `/build/results.json`, docs/instructor.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultsText {
    #[serde(default)]
    required: bool,
    #[serde(default)]
    publish: Option<String>,
}

/// Which of a team's submissions is graded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Counts {
    /// The latest one accepted on time (a late one counts only when there is none on time).
    #[default]
    LatestOnTime,
    /// The latest one, late or not.
    Latest,
}

/// How an assignment ranks teams: by the worker-measured wall time of one command of the graded build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ranking {
    /// What ranks: the timed command's worker-measured time (the default), or the run's score (its
    /// `/build/results.json`), higher first, ties by time.
    #[serde(default)]
    pub by: RankBy,
    /// Which command (from 1) of the build is timed: what a ranking by time ranks, and what breaks a tie of scores
    /// (without it, the run's commands' time together).
    #[serde(default)]
    pub command: Option<usize>,
    /// For a ranking by time: whether lower or higher is better.
    #[serde(default)]
    pub better: Better,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankBy {
    #[default]
    Time,
    Score,
}

/// Whether a lower or a higher time ranks first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    #[default]
    Lower,
    Higher,
}

/// One assignment, its times resolved to instants.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub name: String,
    pub title: Option<String>,
    pub due: DateTime<Utc>,
    pub late_until: Option<DateTime<Utc>>,
    /// The time zone the times were written in, to say them back the same way.
    pub time_zone: Tz,
    /// The instructor's build, run instead of the student's.
    pub build: Option<BuildSpec>,
    /// Where it was read from: the gateway rereads the course when it changes (a fixed grader).
    pub build_path: Option<PathBuf>,
    pub required_files: Vec<String>,
    pub queue: Option<String>,
    pub counts: Counts,
    pub ranking: Option<Ranking>,
    /// A graded run must write `/build/results.json` (without it, it has failed).
    pub results_required: bool,
    /// When students may see the tests marked `after_published`.
    pub results_publish: Option<DateTime<Utc>>,
    /// Deadlines moved for one user or team, by their name (the course file's `extensions:`).
    pub extensions: BTreeMap<String, Deadline>,
}

/// When one student's submissions are due: the assignment's times, or an extension's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    pub due: DateTime<Utc>,
    pub late_until: Option<DateTime<Utc>>,
    /// The user or team the extension was granted to; `None` for the assignment's own times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_for: Option<String>,
}

/// Whether a submission made now is on time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeliness {
    OnTime,
    /// After the due time, before `late_until`: accepted and marked late.
    Late,
}

impl Assignment {
    /// A time as the course wrote it: `2026-12-10 23:59 CST`.
    pub fn local(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.time_zone)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    }

    /// The assignment's own times, for everyone without an extension.
    pub fn course_deadline(&self) -> Deadline {
        Deadline {
            due: self.due,
            late_until: self.late_until,
            extended_for: None,
        }
    }

    /// The deadline of `user` of `team` (a team of one: the user's name): the user's own extension, else the
    /// team's, else the assignment's times.
    pub fn deadline(&self, user: &str, team: &str) -> Deadline {
        self.extensions
            .get(user)
            .or_else(|| self.extensions.get(team))
            .cloned()
            .unwrap_or_else(|| self.course_deadline())
    }

    /// A deadline's times as the course says them: "due 2026-12-12 23:59 CST, late until ...".
    pub fn describe(&self, d: &Deadline) -> String {
        match d.late_until {
            Some(until) => format!(
                "due {}, late until {}",
                self.local(d.due),
                self.local(until)
            ),
            None => format!("due {}, no late submissions", self.local(d.due)),
        }
    }

    /// Judges a submission accepted `at` (the gateway's clock) against `deadline`: on time, late, or refused with
    /// the reason.
    pub fn judge(
        &self,
        deadline: &Deadline,
        at: DateTime<Utc>,
    ) -> Result<Timeliness, SubmissionRefused> {
        if at <= deadline.due {
            return Ok(Timeliness::OnTime);
        }
        let extension = match &deadline.extended_for {
            Some(who) => format!(
                " (an extension for {who}; the course's due time was {})",
                self.local(self.due)
            ),
            None => String::new(),
        };
        match deadline.late_until {
            Some(until) if at <= until => Ok(Timeliness::Late),
            Some(until) => Err(SubmissionRefused::LateClosed {
                assignment: self.name.clone(),
                due: self.local(deadline.due),
                extension,
                closed: self.local(until),
                now: self.local(at),
            }),
            None => Err(SubmissionRefused::NoLate {
                assignment: self.name.clone(),
                due: self.local(deadline.due),
                extension,
                now: self.local(at),
            }),
        }
    }
}

/// Resolves the extensions of one assignment `a` (`path`: `extensions.m1`) into deadlines.
fn extensions(
    a: &Assignment,
    texts: &BTreeMap<String, ExtensionText>,
    node: &yaml::Node,
    path: &str,
) -> Result<BTreeMap<String, Deadline>, YamlError> {
    let mut out = BTreeMap::new();
    for (who, text) in texts {
        let node = node.get(who).unwrap_or(node);
        let path = format!("{path}.{who}");
        let at = |key: &str| node.get(key).unwrap_or(node);
        let (due, late_until) = match text {
            ExtensionText::Longer(span) => {
                let by = chrono::Duration::from_std(span.as_duration())
                    .map_err(|_| located(node, &path, format!("{span} is too long")))?;
                (a.due + by, a.late_until.map(|t| t + by))
            }
            ExtensionText::Until { due, late_until } => {
                let due = parse_local(due, a.time_zone)
                    .map_err(|m| located(at("due"), &format!("{path}.due"), m))?;
                let late_until = match late_until {
                    Some(t) => Some(parse_local(t, a.time_zone).map_err(|m| {
                        located(at("late_until"), &format!("{path}.late_until"), m)
                    })?),
                    None => a.late_until.map(|t| t + (due - a.due)),
                };
                (due, late_until)
            }
        };
        if due < a.due {
            return Err(located(
                at("due"),
                &path,
                format!(
                    "{} is before {}'s own due time {}; an extension gives more time",
                    a.local(due),
                    a.name,
                    a.local(a.due)
                ),
            ));
        }
        if let Some(until) = late_until.filter(|u| *u < due) {
            return Err(located(
                at("late_until"),
                &path,
                format!(
                    "{} is before the extension's due time {}",
                    a.local(until),
                    a.local(due)
                ),
            ));
        }
        out.insert(
            who.clone(),
            Deadline {
                due,
                late_until,
                extended_for: Some(who.clone()),
            },
        );
    }
    Ok(out)
}

/// A course: its assignments by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Course {
    pub name: Option<String>,
    /// The course's time zone: its days (usage by day) and the times it says back.
    pub time_zone: Tz,
    /// Until when the store keeps graded submissions' uploads, outputs and logs; `None`: for ever.
    pub keep_submissions_until: Option<DateTime<Utc>>,
    pub assignments: BTreeMap<String, Assignment>,
}

fn located(node: &yaml::Node, path: &str, message: String) -> YamlError {
    YamlError::at(node, path, message)
}

fn parse_zone(text: &str) -> Result<Tz, String> {
    text.parse::<Tz>().map_err(|_| {
        format!(
            "\"{text}\" is not a time zone; write one like America/Chicago, Europe/Paris or UTC"
        )
    })
}

fn parse_local(text: &str, zone: Tz) -> Result<DateTime<Utc>, String> {
    let formats = [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
    ];
    let naive = formats
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text.trim(), f).ok())
        .ok_or_else(|| {
            format!("\"{text}\" is not a time; write it like 2026-12-10 23:59 (in the course's time zone)")
        })?;
    match zone.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        // The hour repeated when clocks go back: the later one, so no one loses the hour.
        chrono::LocalResult::Ambiguous(_, later) => Ok(later.with_timezone(&Utc)),
        chrono::LocalResult::None => Err(format!(
            "{text} does not exist in {zone} (the clocks skip it); choose another time"
        )),
    }
}

impl Course {
    /// Reads a course file; build files it names are read relative to it.
    pub fn load(path: &Path) -> Result<Course, CourseError> {
        let name = path.display().to_string();
        let fail = |e: YamlError| CourseError(e.in_source(&name));
        let text = std::fs::read_to_string(path).map_err(|e| {
            fail(YamlError::at(
                &yaml::Node::plain(""),
                "",
                format!("cannot read the course file: {e}"),
            ))
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, &name, base)
    }

    /// Reads a course file's text; `base` is where its build files are.
    pub fn parse(text: &str, source: &str, base: &Path) -> Result<Course, CourseError> {
        let fail = |e: YamlError| CourseError(e.in_source(source));
        let root = yaml::parse(text, &Limits::SMALL)
            .map_err(fail)?
            .unwrap_or(yaml::Node::plain(""));
        let file: CourseText = yaml::from_node(&root).map_err(fail)?;
        let zone_node = root.get("time_zone").unwrap_or(&root);
        let zone =
            parse_zone(&file.time_zone).map_err(|m| fail(located(zone_node, "time_zone", m)))?;
        let keep_submissions_until = match &file.keep_submissions_until {
            Some(t) => Some(parse_local(t, zone).map_err(|m| {
                fail(located(
                    root.get("keep_submissions_until").unwrap_or(&root),
                    "keep_submissions_until",
                    m,
                ))
            })?),
            None => None,
        };
        let mut assignments = BTreeMap::new();
        for (name, a) in file.assignments {
            let node = root.at_path(&["assignments", &name]).unwrap_or(&root);
            let at = |key: &str| node.get(key).unwrap_or(node);
            let path = |key: &str| format!("assignments.{name}.{key}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(fail(located(
                    node,
                    &format!("assignments.{name}"),
                    "an assignment's name is letters, digits, - _ . (students type it: --submit NAME)".into(),
                )));
            }
            let zone = match &a.time_zone {
                Some(z) => parse_zone(z)
                    .map_err(|m| fail(located(at("time_zone"), &path("time_zone"), m)))?,
                None => zone,
            };
            let due =
                parse_local(&a.due, zone).map_err(|m| fail(located(at("due"), &path("due"), m)))?;
            let late_until = match &a.late_until {
                Some(t) => {
                    let until = parse_local(t, zone)
                        .map_err(|m| fail(located(at("late_until"), &path("late_until"), m)))?;
                    if until < due {
                        return Err(fail(located(
                            at("late_until"),
                            &path("late_until"),
                            format!("{t} is before the due time {}", a.due),
                        )));
                    }
                    Some(until)
                }
                None => None,
            };
            let build_path = a.build_file.as_ref().map(|f| base.join(f));
            let build = match &a.build_file {
                Some(file) => {
                    let full = base.join(file);
                    let spec = BuildSpec::load(&full).map_err(|e| {
                        fail(located(
                            at("build_file"),
                            &path("build_file"),
                            e.to_string(),
                        ))
                    })?;
                    Some(spec)
                }
                None => None,
            };
            for f in &a.required_files {
                let p = Path::new(f);
                if f.is_empty()
                    || p.is_absolute()
                    || p.components()
                        .any(|c| !matches!(c, std::path::Component::Normal(_)))
                {
                    return Err(fail(located(
                        at("required_files"),
                        &path("required_files"),
                        format!(
                            "\"{f}\" is not a path inside a project (write it like report.pdf or docs/report.pdf)"
                        ),
                    )));
                }
            }
            if let Some(r) = a.ranking {
                let commands = build.as_ref().map(|b| b.commands.build.len());
                match r.command {
                    None if r.by == RankBy::Time => {
                        return Err(fail(located(
                            at("ranking"),
                            &path("ranking.command"),
                            "a ranking by time names the command to time: ranking: { command: 2 } (counted from 1)"
                                .to_string(),
                        )));
                    }
                    Some(c) if c == 0 || commands.is_some_and(|n| c > n) => {
                        return Err(fail(located(
                            at("ranking"),
                            &path("ranking.command"),
                            match commands {
                                Some(n) => format!(
                                    "command {c} is not one of the build file's {n} commands (counted from 1)"
                                ),
                                None => "commands are counted from 1".to_string(),
                            },
                        )));
                    }
                    _ => {}
                }
            }
            let results = a.results.clone().unwrap_or_default();
            let results_publish = match &results.publish {
                Some(t) => Some(parse_local(t, zone).map_err(|m| {
                    let node = node.get("results").unwrap_or(node);
                    fail(located(
                        node.get("publish").unwrap_or(node),
                        &path("results.publish"),
                        m,
                    ))
                })?),
                None => None,
            };
            assignments.insert(
                name.clone(),
                Assignment {
                    name,
                    title: a.title,
                    due,
                    late_until,
                    time_zone: zone,
                    build,
                    build_path,
                    required_files: a.required_files,
                    queue: a.queue,
                    counts: a.counts,
                    ranking: a.ranking,
                    results_required: results.required,
                    results_publish,
                    extensions: BTreeMap::new(),
                },
            );
        }
        for (name, texts) in &file.extensions {
            let node = root.at_path(&["extensions", name]).unwrap_or(&root);
            let path = format!("extensions.{name}");
            let Some(a) = assignments.get_mut(name) else {
                let names: Vec<&str> = assignments.keys().map(String::as_str).collect();
                return Err(fail(located(
                    root.get("extensions")
                        .and_then(|e| e.key_node(name))
                        .unwrap_or(node),
                    &path,
                    format!(
                        "there is no assignment \"{name}\" to extend; the assignments are: {}",
                        names.join(", ")
                    ),
                )));
            };
            a.extensions = extensions(a, texts, node, &path).map_err(fail)?;
        }
        Ok(Course {
            name: file.course,
            time_zone: zone,
            keep_submissions_until,
            assignments,
        })
    }

    /// The files the course was read from besides itself (the instructors' build files).
    pub fn build_files(&self) -> Vec<PathBuf> {
        self.assignments
            .values()
            .filter_map(|a| a.build_path.clone())
            .collect()
    }

    /// The assignment `name`, or the refusal that lists the course's assignments.
    pub fn assignment(&self, name: &str) -> Result<&Assignment, SubmissionRefused> {
        self.assignments.get(name).ok_or_else(|| {
            if self.assignments.is_empty() {
                SubmissionRefused::NoAssignments
            } else {
                SubmissionRefused::NoSuchAssignment {
                    name: name.to_string(),
                    known: self.assignments.keys().cloned().collect(),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COURSE: &str = "course: ECE 408\ntime_zone: America/Chicago\nassignments:\n  m1:\n    due: 2026-12-10 23:59\n    late_until: 2026-12-12 23:59\n    required_files: [report.pdf]\n  m2:\n    due: 2026-03-08 02:30\n";

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn due_times_are_instants_in_the_courses_zone() {
        let err = Course::parse(COURSE, "course.yml", Path::new(".")).unwrap_err();
        // 02:30 on 8 March 2026 does not exist in Chicago (clocks jump from 2:00 to 3:00).
        assert_eq!(
            err.to_string(),
            "course.yml:9:10: assignments.m2.due: 2026-03-08 02:30 does not exist in America/Chicago (the clocks skip it); choose another time"
        );
        let course = Course::parse(
            &COURSE.replace("02:30", "03:30"),
            "course.yml",
            Path::new("."),
        )
        .unwrap();
        let m1 = course.assignment("m1").unwrap();
        // 23:59 CST is 05:59 UTC the next day.
        assert_eq!(m1.due, utc("2026-12-11T05:59:00Z"));
        assert_eq!(m1.local(m1.due), "2026-12-10 23:59 CST");
        let d = m1.course_deadline();
        assert_eq!(
            m1.judge(&d, utc("2026-12-11T05:59:00Z")),
            Ok(Timeliness::OnTime)
        );
        assert_eq!(
            m1.judge(&d, utc("2026-12-11T06:00:00Z")),
            Ok(Timeliness::Late)
        );
        let e = m1.judge(&d, utc("2026-12-13T06:00:00Z")).unwrap_err();
        assert!(matches!(e, SubmissionRefused::LateClosed { .. }));
        assert_eq!(
            e.to_string(),
            "m1 was due 2026-12-10 23:59 CST; late submissions closed 2026-12-12 23:59 CST (it is 2026-12-13 00:00 CST now)"
        );
        let m2 = course.assignment("m2").unwrap();
        assert!(
            m2.judge(&m2.course_deadline(), m2.due + chrono::Duration::seconds(1))
                .unwrap_err()
                .to_string()
                .contains("does not accept late")
        );
        assert!(
            course
                .assignment("m9")
                .unwrap_err()
                .to_string()
                .contains("its assignments are: m1, m2")
        );
    }

    #[test]
    fn mistakes_are_located_errors() {
        let cases = [
            (
                COURSE.replace("America/Chicago", "America/Chicgo"),
                "course.yml:2:12: time_zone: \"America/Chicgo\" is not a time zone",
            ),
            (
                COURSE.replace("2026-12-10 23:59", "next friday"),
                "course.yml:5:10: assignments.m1.due: \"next friday\" is not a time",
            ),
            (
                COURSE.replace("late_until: 2026-12-12", "late_until: 2026-12-01"),
                "assignments.m1.late_until: 2026-12-01 23:59 is before the due time",
            ),
            (
                COURSE.replace("required_files: [report.pdf]", "required_files: [../x]"),
                "assignments.m1.required_files: \"../x\" is not a path inside a project",
            ),
            (
                COURSE.replace("    due: 2026-03", "    deu: 2026-03"),
                "unknown key \"deu\" (did you mean \"due\"?)",
            ),
        ];
        for (text, expected) in cases {
            let e = Course::parse(&text, "course.yml", Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "expected {expected}\n     got {e}");
        }
    }

    #[test]
    fn extensions_move_one_users_or_one_teams_deadline() {
        let text = format!(
            "{}extensions:\n  m1:\n    jdoe: 48h\n    team-7: {{ due: 2026-12-14 23:59 }}\n    asmith: {{ due: 2026-12-11 12:00, late_until: 2026-12-11 18:00 }}\n",
            COURSE.replace("02:30", "03:30")
        );
        let course = Course::parse(&text, "course.yml", Path::new(".")).unwrap();
        let m1 = course.assignment("m1").unwrap();
        // A duration moves both times.
        let jdoe = m1.deadline("jdoe", "team-7");
        assert_eq!(m1.local(jdoe.due), "2026-12-12 23:59 CST");
        assert_eq!(m1.local(jdoe.late_until.unwrap()), "2026-12-14 23:59 CST");
        assert_eq!(jdoe.extended_for.as_deref(), Some("jdoe"));
        // A team's extension holds for every member without their own; the late window moves as far as due did.
        let mate = m1.deadline("bob", "team-7");
        assert_eq!(mate.extended_for.as_deref(), Some("team-7"));
        assert_eq!(m1.local(mate.late_until.unwrap()), "2026-12-16 23:59 CST");
        let asmith = m1.deadline("asmith", "asmith");
        assert_eq!(m1.local(asmith.late_until.unwrap()), "2026-12-11 18:00 CST");
        // Everyone else keeps the course's times.
        assert_eq!(m1.deadline("carol", "team-1"), m1.course_deadline());
        assert_eq!(
            m1.judge(&jdoe, utc("2026-12-12T12:00:00Z")),
            Ok(Timeliness::OnTime)
        );
        assert_eq!(
            m1.judge(&m1.course_deadline(), utc("2026-12-12T12:00:00Z")),
            Ok(Timeliness::Late)
        );
        assert_eq!(
            m1.judge(&asmith, utc("2026-12-12T12:00:00Z"))
                .unwrap_err()
                .to_string(),
            "m1 was due 2026-12-11 12:00 CST (an extension for asmith; the course's due time was 2026-12-10 23:59 CST); late submissions closed 2026-12-11 18:00 CST (it is 2026-12-12 06:00 CST now)"
        );
        assert_eq!(
            m1.describe(&jdoe),
            "due 2026-12-12 23:59 CST, late until 2026-12-14 23:59 CST"
        );
        let cases = [
            (
                "jdoe: 48h",
                "jdoe: 48",
                "extensions.m1.jdoe: 48 has no unit",
            ),
            (
                "jdoe: 48h",
                "jdoe: 2 days please",
                "extensions.m1.jdoe: \"2 days please\" is not a duration",
            ),
            (
                "{ due: 2026-12-14 23:59 }",
                "{ due: 2026-12-01 23:59 }",
                "extensions.m1.team-7: 2026-12-01 23:59 CST is before m1's own due time",
            ),
            (
                "{ due: 2026-12-14 23:59 }",
                "{ deu: 2026-12-14 23:59 }",
                "extensions.m1.team-7: unknown key \"deu\" (did you mean \"due\"?)",
            ),
            (
                "  m1:\n    jdoe",
                "  m9:\n    jdoe",
                "no assignment \"m9\" to extend; the assignments are: m1, m2",
            ),
            (
                "late_until: 2026-12-11 18:00",
                "late_until: 2026-12-11 11:00",
                "2026-12-11 11:00 CST is before the extension's due time",
            ),
        ];
        for (from, to, expected) in cases {
            let e = Course::parse(&text.replace(from, to), "course.yml", Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "expected {expected}\n     got {e}");
        }
    }

    #[test]
    fn results_may_be_required_and_published_at_a_time_of_the_course() {
        let text = "time_zone: America/Chicago\nassignments:\n  m1:\n    due: 2026-12-10 23:59\n    results:\n      required: true\n      publish: 2026-12-20 12:00\n  m2:\n    due: 2026-12-17 23:59\n";
        let course = Course::parse(text, "course.yml", Path::new(".")).unwrap();
        let m1 = course.assignment("m1").unwrap();
        assert!(m1.results_required);
        assert_eq!(
            m1.local(m1.results_publish.unwrap()),
            "2026-12-20 12:00 CST"
        );
        let m2 = course.assignment("m2").unwrap();
        assert_eq!((m2.results_required, m2.results_publish), (false, None));
        let e = Course::parse(
            &text.replace("2026-12-20 12:00", "after grading"),
            "course.yml",
            Path::new("."),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "course.yml:7:16: assignments.m1.results.publish: \"after grading\" is not a time; write it like 2026-12-10 23:59 (in the course's time zone)"
        );
        let e = Course::parse(
            &text.replace("required: true", "requird: true"),
            "course.yml",
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.to_string().contains("requird"), "{e}");
    }

    #[test]
    fn the_instructor_build_file_is_read_and_the_ranked_command_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("m1_build.yml"),
            "rai:\n  image: x\ncommands:\n  build: [make, ./run]\n",
        )
        .unwrap();
        let text = "time_zone: UTC\nassignments:\n  m1:\n    due: 2026-12-10 23:59\n    build_file: m1_build.yml\n    ranking: { command: 2 }\n";
        let course = Course::parse(text, "course.yml", dir.path()).unwrap();
        let m1 = course.assignment("m1").unwrap();
        assert_eq!(m1.build.as_ref().unwrap().commands.build, ["make", "./run"]);
        assert_eq!(
            m1.ranking,
            Some(Ranking {
                by: RankBy::Time,
                command: Some(2),
                better: Better::Lower
            })
        );
        // A ranking by time names the command it times; one by score need not.
        let e = Course::parse(
            &text.replace("{ command: 2 }", "{ better: lower }"),
            "course.yml",
            dir.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("a ranking by time names the command to time"),
            "{e}"
        );
        let course = Course::parse(
            &text.replace("{ command: 2 }", "{ by: score }"),
            "course.yml",
            dir.path(),
        )
        .unwrap();
        let ranking = course.assignment("m1").unwrap().ranking.unwrap();
        assert_eq!((ranking.by, ranking.command), (RankBy::Score, None));
        let e = Course::parse(
            &text.replace("command: 2", "command: 3"),
            "course.yml",
            dir.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("command 3 is not one of the build file's 2 commands"),
            "{e}"
        );
        let e = Course::parse(
            &text.replace("m1_build", "missing"),
            "course.yml",
            dir.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("assignments.m1.build_file: ") && e.contains("cannot read the build file"),
            "{e}"
        );
    }
}
