//! `matrix:` in a build file: a parameter sweep. Each key names a parameter and lists its values; a submit makes one
//! job per combination of values (the project uploaded once), each with `RAI_MATRIX_<NAME>=value` in its
//! environment and the values in its name (`block=32 n=1e7`).
//!
//! ```yaml
//! matrix:
//!   block: [16, 32, 64]
//!   n: [1000000, 10000000]
//! ```
//!
//! Parameters keep the file's order (the first varies slowest), values are read as text (`16` is `"16"`), and a
//! sweep has at most [`MAX_COMBINATIONS`] jobs (a course may allow fewer: `gateway.max_sweep`).

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The most jobs one sweep may make, whatever the course allows.
pub const MAX_COMBINATIONS: usize = 256;

/// The parameters of a sweep, in the file's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matrix(pub Vec<(String, Vec<String>)>);

/// One job of a sweep: a value for each parameter, in the matrix's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Combination(pub Vec<(String, String)>);

impl Matrix {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many jobs the sweep makes (saturating: a hostile file cannot overflow it).
    pub fn size(&self) -> usize {
        self.0
            .iter()
            .fold(1usize, |n, (_, values)| n.saturating_mul(values.len()))
    }

    /// Every combination, the first parameter varying slowest.
    pub fn combinations(&self) -> Vec<Combination> {
        let mut all = vec![Vec::new()];
        for (name, values) in &self.0 {
            all = all
                .into_iter()
                .flat_map(|prefix: Vec<(String, String)>| {
                    values.iter().map(move |v| {
                        let mut c = prefix.clone();
                        c.push((name.clone(), v.clone()));
                        c
                    })
                })
                .collect();
        }
        all.into_iter().map(Combination).collect()
    }

    /// What is wrong with the matrix, if anything: the key and the message.
    pub fn broken(&self) -> Option<(String, String)> {
        for (name, values) in &self.0 {
            let key = format!("matrix.{name}");
            if !is_parameter_name(name) {
                return Some((
                    key,
                    format!(
                        "\"{name}\" is not a parameter name (a letter, then letters, digits or _; it becomes \
                         RAI_MATRIX_{})",
                        name.to_ascii_uppercase()
                    ),
                ));
            }
            if values.is_empty() {
                return Some((key, "no values: list at least one".into()));
            }
            if let Some(v) = values
                .iter()
                .find(|v| v.is_empty() || v.len() > 256 || v.chars().any(char::is_control))
            {
                return Some((
                    key,
                    format!(
                        "the value {v:?} cannot be passed in the environment (empty, over 256 characters, or a \
                         control character)"
                    ),
                ));
            }
            if let Some((i, v)) = values
                .iter()
                .enumerate()
                .find(|(i, v)| values[..*i].contains(v))
            {
                return Some((
                    key,
                    format!("the value {v:?} is listed twice (again at {i})"),
                ));
            }
        }
        let names: Vec<String> = self.0.iter().map(|(n, _)| n.to_ascii_uppercase()).collect();
        if let Some((i, n)) = names
            .iter()
            .enumerate()
            .find(|(i, n)| names[..*i].contains(n))
        {
            return Some((
                format!("matrix.{}", self.0[i].0),
                format!("two parameters are both RAI_MATRIX_{n}; rename one"),
            ));
        }
        if self.size() > MAX_COMBINATIONS {
            return Some((
                "matrix".into(),
                format!(
                    "{} combinations is more than a sweep may make ({MAX_COMBINATIONS}); list fewer values",
                    self.size()
                ),
            ));
        }
        None
    }
}

impl Combination {
    /// The environment the job gets: `RAI_MATRIX_<NAME>=value` for each parameter.
    pub fn env(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(n, v)| format!("RAI_MATRIX_{}={v}", n.to_ascii_uppercase()))
            .collect()
    }

    /// The job's name in the sweep: `block=32 n=1e7` (large round numbers shortened).
    pub fn label(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={}", short(v)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Display for Combination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// `10000000` as `1e7`: a whole number of at least 10,000 that is a digit followed by zeros; anything else as is.
fn short(value: &str) -> String {
    let bytes = value.as_bytes();
    if value.len() >= 5
        && bytes[0].is_ascii_digit()
        && bytes[0] != b'0'
        && bytes[1..].iter().all(|b| *b == b'0')
    {
        format!("{}e{}", bytes[0] as char, value.len() - 1)
    } else {
        value.to_string()
    }
}

fn is_parameter_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

impl Serialize for Matrix {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, values) in &self.0 {
            map.serialize_entry(name, values)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Matrix {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Matrix, D::Error> {
        struct Parameters;
        impl<'de> Visitor<'de> for Parameters {
            type Value = Matrix;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("parameters, each with a list of values (block: [16, 32, 64])")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Matrix, A::Error> {
                let mut parameters = Vec::new();
                while let Some((name, values)) = map.next_entry::<String, Vec<String>>()? {
                    if parameters.iter().any(|(n, _)| n == &name) {
                        return Err(serde::de::Error::custom(format!(
                            "the parameter \"{name}\" is listed twice"
                        )));
                    }
                    parameters.push((name, values));
                }
                Ok(Matrix(parameters))
            }
        }
        deserializer.deserialize_map(Parameters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix() -> Matrix {
        Matrix(vec![
            ("block".into(), vec!["16".into(), "32".into(), "64".into()]),
            ("n".into(), vec!["1000000".into(), "10000000".into()]),
        ])
    }

    #[test]
    fn every_combination_once_the_first_parameter_slowest() {
        let m = matrix();
        assert_eq!(m.size(), 6);
        let all = m.combinations();
        assert_eq!(all.len(), 6);
        assert_eq!(all[0].label(), "block=16 n=1e6");
        assert_eq!(all[1].label(), "block=16 n=1e7");
        assert_eq!(all[5].label(), "block=64 n=1e7");
        assert_eq!(
            all[3].env(),
            ["RAI_MATRIX_BLOCK=32", "RAI_MATRIX_N=10000000"]
        );
        assert_eq!(Matrix::default().combinations().len(), 1);
    }

    #[test]
    fn numbers_shorten_only_when_round_and_large() {
        assert_eq!(short("10000000"), "1e7");
        assert_eq!(short("1000"), "1000");
        assert_eq!(short("12000000"), "12000000");
        assert_eq!(short("0.5"), "0.5");
        assert_eq!(short("fast"), "fast");
    }

    #[test]
    fn broken_matrices_say_what_and_where() {
        assert_eq!(matrix().broken(), None);
        let bad = |m: Vec<(&str, Vec<&str>)>| {
            Matrix(
                m.into_iter()
                    .map(|(n, v)| (n.to_string(), v.into_iter().map(String::from).collect()))
                    .collect(),
            )
            .broken()
            .unwrap()
        };
        assert!(
            bad(vec![("1x", vec!["a"])])
                .1
                .contains("not a parameter name")
        );
        assert!(bad(vec![("x", vec![])]).1.contains("no values"));
        assert!(
            bad(vec![("x", vec!["a\nb"])])
                .1
                .contains("control character")
        );
        assert!(bad(vec![("x", vec!["a", "a"])]).1.contains("listed twice"));
        assert!(
            bad(vec![("x", vec!["a"]), ("X", vec!["b"])])
                .1
                .contains("RAI_MATRIX_X")
        );
        let many: Vec<String> = (0..17).map(|i| i.to_string()).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let (key, message) = bad(vec![("a", many.clone()), ("b", many)]);
        assert_eq!(key, "matrix");
        assert!(message.contains("289 combinations"), "{message}");
    }

    #[test]
    fn a_build_file_reads_its_matrix_in_order_and_points_at_a_broken_one() {
        let spec = crate::BuildSpec::parse(
            "rai:\n  image: img\nmatrix:\n  n: [1000000, 10000000]\n  block: [16, 32]\ncommands:\n  build: [make]\n",
            "rai_build.yml",
        )
        .unwrap();
        assert!(spec.warnings.is_empty(), "{:?}", spec.warnings);
        assert_eq!(spec.matrix.0[0].0, "n", "the file's order");
        assert_eq!(spec.matrix.0[1].1, ["16", "32"]);
        let e = crate::BuildSpec::parse(
            "rai:\n  image: img\nmatrix:\n  block: []\ncommands:\n  build: [make]\n",
            "rai_build.yml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("rai_build.yml:4:") && e.contains("matrix.block") && e.contains("no values"),
            "{e}"
        );
    }
}
