//! Durations ("90s", "10m", "1h30m") and byte sizes ("512m", "4g", "1.5GiB") as people write them in YAML.
//!
//! Both serialize back to a canonical text ("10m", "4g") so a signed job message says exactly what the student wrote
//! in a form every worker parses the same way.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A span of time with at least one-second resolution in its text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(pub Duration);

/// A number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub u64);

impl Span {
    pub fn from_secs(s: u64) -> Self {
        Span(Duration::from_secs(s))
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl FromStr for Span {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let bad = || format!("\"{text}\" is not a duration; write it like 90s, 10m, 1h or 1h30m");
        if t.is_empty() {
            return Err(bad());
        }
        // A bare number is seconds, as in the 2017 build files.
        if let Ok(secs) = t.parse::<u64>() {
            return Ok(Span::from_secs(secs));
        }
        if t.starts_with('-') {
            return Err(format!(
                "\"{text}\" is negative; a duration must be positive"
            ));
        }
        humantime::parse_duration(t).map(Span).map_err(|_| bad())
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() != 0 {
            return write!(f, "{}ms", d.as_millis());
        }
        let s = d.as_secs();
        match s {
            0 => write!(f, "0s"),
            s if s.is_multiple_of(3600) => write!(f, "{}h", s / 3600),
            s if s.is_multiple_of(60) => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

const UNITS: [(&str, u64); 5] = [
    ("", 1),
    ("k", 1 << 10),
    ("m", 1 << 20),
    ("g", 1 << 30),
    ("t", 1 << 40),
];

impl FromStr for Bytes {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad =
            || format!("\"{text}\" is not a size; write it like 512m, 4g or 1073741824 (bytes)");
        let t = text.trim().to_ascii_lowercase();
        if t.starts_with('-') {
            return Err(format!("\"{text}\" is negative; a size must be positive"));
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let unit = unit.trim();
        // Docker's convention: k, m, g are powers of 1024, with an optional "b", "ib" or "i" tail.
        let unit = unit
            .strip_suffix("ib")
            .or_else(|| unit.strip_suffix('i'))
            .or_else(|| unit.strip_suffix('b').filter(|u| !u.is_empty()))
            .unwrap_or(unit);
        let unit = if unit == "b" { "" } else { unit };
        let factor = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, f)| *f)
            .ok_or_else(bad)?;
        if number.is_empty() {
            return Err(bad());
        }
        let value = if number.contains('.') {
            let x: f64 = number.parse().map_err(|_| bad())?;
            let v = x * factor as f64;
            if !v.is_finite() || v > u64::MAX as f64 {
                return Err(bad());
            }
            v.round() as u64
        } else {
            let n: u64 = number.parse().map_err(|_| bad())?;
            n.checked_mul(factor).ok_or_else(bad)?
        };
        Ok(Bytes(value))
    }
}

impl Bytes {
    /// A rounded human form for messages: `1.5 GiB`, `312 KiB`, `17 B`.
    pub fn human(self) -> String {
        let n = self.0 as f64;
        for (unit, factor) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if self.0 >= factor {
                let v = n / factor as f64;
                return if v >= 100.0 {
                    format!("{v:.0} {unit}")
                } else {
                    format!("{v:.1} {unit}")
                };
            }
        }
        format!("{} B", self.0)
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, factor) in UNITS.iter().rev() {
            if *factor > 1 && self.0 >= *factor && self.0.is_multiple_of(*factor) {
                return write!(f, "{}{unit}", self.0 / factor);
            }
        }
        write!(f, "{}", self.0)
    }
}

macro_rules! text_serde {
    ($ty:ty, $expecting:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(E::custom)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$ty, E> {
                        v.to_string().parse().map_err(E::custom)
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$ty, E> {
                        v.to_string().parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

text_serde!(Span, "a duration such as 90s, 10m or 1h");
text_serde!(Bytes, "a size such as 512m or 4g");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!("90s".parse::<Span>().unwrap(), Span::from_secs(90));
        assert_eq!("10m".parse::<Span>().unwrap(), Span::from_secs(600));
        assert_eq!("1h".parse::<Span>().unwrap(), Span::from_secs(3600));
        assert_eq!("1h30m".parse::<Span>().unwrap(), Span::from_secs(5400));
        assert_eq!("45".parse::<Span>().unwrap(), Span::from_secs(45));
        assert!("ten minutes".parse::<Span>().is_err());
        assert!("-5s".parse::<Span>().unwrap_err().contains("negative"));
        assert_eq!(Span::from_secs(600).to_string(), "10m");
        assert_eq!(Span::from_secs(5400).to_string(), "90m");
        assert_eq!(Span::from_secs(7).to_string(), "7s");
    }

    #[test]
    fn sizes() {
        assert_eq!("512m".parse::<Bytes>().unwrap(), Bytes(512 << 20));
        assert_eq!("4g".parse::<Bytes>().unwrap(), Bytes(4 << 30));
        assert_eq!("4GB".parse::<Bytes>().unwrap(), Bytes(4 << 30));
        assert_eq!("1.5GiB".parse::<Bytes>().unwrap(), Bytes(3 << 29));
        assert_eq!("100".parse::<Bytes>().unwrap(), Bytes(100));
        assert_eq!("100b".parse::<Bytes>().unwrap(), Bytes(100));
        assert!("4 gigs".parse::<Bytes>().is_err());
        assert!("g".parse::<Bytes>().is_err());
        assert!("99999999999t".parse::<Bytes>().is_err());
        assert_eq!(Bytes(4 << 30).to_string(), "4g");
        assert_eq!(Bytes(1000).to_string(), "1000");
    }

    #[test]
    fn text_forms_round_trip() {
        for t in ["7s", "10m", "2h", "512m", "4g", "1000"] {
            if let Ok(s) = t.parse::<Span>() {
                assert_eq!(s.to_string().parse::<Span>().unwrap(), s);
            }
            if let Ok(b) = t.parse::<Bytes>() {
                assert_eq!(b.to_string().parse::<Bytes>().unwrap(), b);
            }
        }
    }
}
