//! A job's scores: `/build/results.json`, in the format of Gradescope's autograder results, which course staff
//! already write (<https://gradescope-autograders.readthedocs.io/en/latest/specs/>).
//!
//! The worker reads the file after the job's commands end: bounded in size, parsed strictly (a key the format does
//! not have, a wrong type, a number that is not finite, a broken file: each refused with where and what), and the
//! job's record keeps what it read. Who may see what, and when, is [`Results::seen_by`]: staff see everything;
//! a student sees the tests whose `visibility` allows it at that time (`hidden` never, `after_due_date` once the
//! assignment is due, `after_published` once the course publishes its results, `visible` always).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The largest `results.json` the worker reads.
pub const MAX_RESULTS_BYTES: u64 = 1 << 20;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Results {
    /// The total; when absent, the sum of the tests' scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_score: Option<f64>,
    /// Text shown above the tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<String>,
    /// Who sees the results as a whole (and each test that says nothing itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_visibility: Option<Visibility>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_time: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaderboard: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<TestResult>,
}

/// One test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TestStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_data: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Hidden,
    AfterDueDate,
    AfterPublished,
    Visible,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestStatus {
    Passed,
    Failed,
}

/// Why a `results.json` was not kept.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResultsError {
    #[error("results.json is {size} bytes, over the {max} the worker reads")]
    TooLarge { size: u64, max: u64 },
    #[error("results.json:{line}:{column}: {message}")]
    Broken {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("results.json: {field} is {value}, not a finite number")]
    NotFinite { field: String, value: f64 },
}

/// When a viewer looks, and what the assignment's times are.
#[derive(Debug, Clone, Copy)]
pub struct Viewing {
    pub staff: bool,
    pub now: DateTime<Utc>,
    /// The assignment's due time (the viewer's own, with an extension); `None`: not a graded submission.
    pub due: Option<DateTime<Utc>>,
    /// When the course publishes the assignment's results; `None`: not said.
    pub published: Option<DateTime<Utc>>,
}

impl Visibility {
    fn allows(self, v: &Viewing) -> bool {
        v.staff
            || match self {
                Visibility::Visible => true,
                Visibility::Hidden => false,
                Visibility::AfterDueDate => v.due.is_none_or(|due| v.now >= due),
                Visibility::AfterPublished => v.published.is_some_and(|at| v.now >= at),
            }
    }
}

impl Results {
    /// Parses a `results.json` strictly.
    pub fn parse(bytes: &[u8]) -> Result<Results, ResultsError> {
        if bytes.len() as u64 > MAX_RESULTS_BYTES {
            return Err(ResultsError::TooLarge {
                size: bytes.len() as u64,
                max: MAX_RESULTS_BYTES,
            });
        }
        let results: Results = serde_json::from_slice(bytes).map_err(|e| ResultsError::Broken {
            line: e.line(),
            column: e.column(),
            message: e
                .to_string()
                .split(" at line ")
                .next()
                .unwrap_or_default()
                .to_owned(),
        })?;
        results.check_numbers()?;
        Ok(results)
    }

    fn check_numbers(&self) -> Result<(), ResultsError> {
        let mut numbers = vec![
            ("score".to_owned(), self.score),
            ("max_score".to_owned(), self.max_score),
            ("execution_time".to_owned(), self.execution_time),
        ];
        for (i, t) in self.tests.iter().enumerate() {
            numbers.push((format!("tests[{i}].score"), t.score));
            numbers.push((format!("tests[{i}].max_score"), t.max_score));
        }
        match numbers
            .into_iter()
            .find_map(|(field, v)| v.filter(|v| !v.is_finite()).map(|v| (field, v)))
        {
            Some((field, value)) => Err(ResultsError::NotFinite { field, value }),
            None => Ok(()),
        }
    }

    /// The total score: `score`, else the sum of the tests' scores (`None` when neither says one).
    pub fn total(&self) -> Option<f64> {
        self.score.or_else(|| {
            let scores: Vec<f64> = self.tests.iter().filter_map(|t| t.score).collect();
            (!scores.is_empty()).then(|| scores.iter().sum())
        })
    }

    /// The most the total can be: `max_score`, else the sum of the tests' `max_score`.
    pub fn max_total(&self) -> Option<f64> {
        self.max_score.or_else(|| {
            let maxes: Vec<f64> = self.tests.iter().filter_map(|t| t.max_score).collect();
            (!maxes.is_empty()).then(|| maxes.iter().sum())
        })
    }

    /// What a viewer may see now: `None` when the results as a whole are not theirs to see yet; otherwise the
    /// results with the tests they may not see taken out (the total still counts them, as Gradescope's does).
    pub fn seen_by(&self, viewing: &Viewing) -> Option<Results> {
        let whole = self.visibility.unwrap_or(Visibility::Visible);
        if !whole.allows(viewing) {
            return None;
        }
        let mut seen = self.clone();
        seen.score = self.total();
        seen.max_score = self.max_total();
        seen.tests
            .retain(|t| t.visibility.unwrap_or(whole).allows(viewing));
        if !self
            .stdout_visibility
            .unwrap_or(Visibility::Visible)
            .allows(viewing)
        {
            seen.stdout_visibility = Some(Visibility::Hidden);
        }
        if !viewing.staff {
            seen.extra_data = None;
            for t in &mut seen.tests {
                t.extra_data = None;
            }
        }
        Some(seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const GRADESCOPE_EXAMPLE: &str = r#"{
        "score": 44.0,
        "execution_time": 136,
        "output": "Text relevant to the entire submission",
        "output_format": "simple_format",
        "visibility": "after_due_date",
        "stdout_visibility": "visible",
        "extra_data": {},
        "tests": [
            {"score": 2.0, "max_score": 2.0, "status": "passed", "name": "Your name", "name_format": "text",
             "number": "1.1", "output": "Giant multiline string", "output_format": "text", "tags": ["tag1"],
             "visibility": "visible", "extra_data": {}},
            {"score": 0, "max_score": 3, "name": "hidden speed test", "visibility": "hidden"},
            {"score": 4, "max_score": 4, "name": "after publish", "visibility": "after_published"}
        ],
        "leaderboard": [{"name": "Accuracy", "value": 0.926}]
    }"#;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 10, h, 0, 0).unwrap()
    }

    #[test]
    fn gradescopes_own_example_parses() {
        let r = Results::parse(GRADESCOPE_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(r.tests.len(), 3);
        assert_eq!(r.total(), Some(44.0));
        assert_eq!(r.max_total(), Some(9.0));
        assert_eq!(r.tests[0].status, Some(TestStatus::Passed));
    }

    #[test]
    fn a_broken_file_says_where_and_what() {
        let e = Results::parse(b"{\n  \"score\": 3,\n  \"tests\": [ {\"name\": \"a\",} ]\n}")
            .unwrap_err();
        match e {
            ResultsError::Broken { line, column, .. } => assert_eq!((line, column), (3, 27)),
            other => panic!("{other:?}"),
        }
        let e = Results::parse(br#"{"score": 1, "grade": "A"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `grade`"), "{e}");
        assert!(e.to_string().starts_with("results.json:1:"), "{e}");
        let e = Results::parse(br#"{"tests": [{"score": "full"}]}"#).unwrap_err();
        assert!(e.to_string().contains("invalid type"), "{e}");
        let e = Results::parse(br#"{"visibility": "sometimes"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant `sometimes`"), "{e}");
        let big = vec![b' '; MAX_RESULTS_BYTES as usize + 1];
        assert!(matches!(
            Results::parse(&big),
            Err(ResultsError::TooLarge { .. })
        ));
    }

    #[test]
    fn numbers_must_be_finite() {
        // JSON has no NaN, but a number too large for f64 reads as infinity.
        let e = Results::parse(br#"{"tests": [{"score": 1e999}]}"#);
        assert!(
            matches!(&e, Err(ResultsError::NotFinite { field, .. }) if field == "tests[0].score")
                || matches!(&e, Err(ResultsError::Broken { .. })),
            "{e:?}"
        );
    }

    #[test]
    fn the_total_is_the_tests_sum_when_not_given() {
        let r = Results::parse(
            br#"{"tests": [{"score": 1.5, "max_score": 2}, {"score": 2, "max_score": 2}]}"#,
        )
        .unwrap();
        assert_eq!((r.total(), r.max_total()), (Some(3.5), Some(4.0)));
        assert_eq!(Results::parse(b"{}").unwrap().total(), None);
    }

    #[test]
    fn students_see_what_the_visibility_allows_when_it_allows_it_and_staff_see_all() {
        let r = Results::parse(GRADESCOPE_EXAMPLE.as_bytes()).unwrap();
        let student = |now, published| Viewing {
            staff: false,
            now,
            due: Some(at(12)),
            published,
        };
        // Before the due time the whole is after_due_date: nothing.
        assert_eq!(r.seen_by(&student(at(11), None)), None);
        // After it: the visible test only; hidden never, after_published not before publishing.
        let seen = r.seen_by(&student(at(13), Some(at(20)))).unwrap();
        let names: Vec<_> = seen.tests.iter().map(|t| t.name.clone().unwrap()).collect();
        assert_eq!(names, ["Your name"]);
        assert_eq!(seen.score, Some(44.0));
        assert_eq!(seen.extra_data, None);
        let seen = r.seen_by(&student(at(21), Some(at(20)))).unwrap();
        assert_eq!(seen.tests.len(), 2);
        let staff = Viewing {
            staff: true,
            ..student(at(1), None)
        };
        let seen = r.seen_by(&staff).unwrap();
        assert_eq!(seen.tests.len(), 3);
        assert!(seen.extra_data.is_some());
    }
}
