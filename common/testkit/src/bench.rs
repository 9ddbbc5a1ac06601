//! What every benchmark shares: percentiles, durations in the units a table shows, a process's memory, a timed
//! loop, and the one row format a benchmark prints its figures in (each figure with its reference, measured in the
//! same run, and its target), which also goes into the report of `deploy/local/report.sh` ([`crate::report`]).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The value at quantile `q` (0.5: the median) of `values`, by the nearest rank.
pub fn percentile<T: Copy + PartialOrd>(values: &[T], q: f64) -> T {
    assert!(!values.is_empty(), "a percentile of no values");
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// `d` in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `d` in seconds.
pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A figure of `/proc/<pid>/status` in KiB (`VmRSS:`, `VmHWM:`), of this process when `pid` is `None`; 0 when the
/// process is gone.
pub fn status_kib(pid: Option<u32>, field: &str) -> u64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_string(),
    };
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets this process's peak-RSS mark (`VmHWM`), so a measurement starts from the RSS of now.
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Runs `command` under GNU time: its peak RSS in KiB, and whether it succeeded.
pub fn peak_rss_kib(command: &Command) -> (u64, bool) {
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["-f", "%M"])
        .arg(command.get_program())
        .args(command.get_args())
        .stdout(Stdio::null());
    for (k, v) in command.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        timed.current_dir(dir);
    }
    let out = timed
        .output()
        .expect("GNU time at /usr/bin/time (Debian package `time`)");
    let text = String::from_utf8_lossy(&out.stderr);
    let kib = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS figure from time:\n{text}"));
    (kib, out.status.success())
}

/// How long each of `n` runs of `f` took, one after another.
pub async fn timed<F, Fut>(n: usize, mut f: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f().await;
        out.push(t.elapsed());
    }
    out
}

/// The heading over [`row`]s: what the value and the reference columns hold.
pub fn header(value: &str, reference: &str) {
    println!(
        "{:<72} {value:>12} {reference:>12} {:>7}  target",
        "", "ratio"
    );
}

/// Prints one figure beside its reference (measured in the same run), their ratio and the target; a row with a
/// verdict (`met`) goes into the report too.
pub fn row(
    name: &str,
    value: String,
    reference: String,
    ratio: Option<f64>,
    target: &str,
    met: Option<bool>,
) {
    let verdict = match met {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "",
    };
    println!(
        "{name:<72} {value:>12} {reference:>12} {:>7}  {target} {verdict}",
        ratio.map_or(String::new(), |r| format!("{r:.3}"))
    );
    if let Some(met) = met {
        crate::report(crate::Figure {
            name: name.trim(),
            value,
            reference,
            ratio,
            target,
            met,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_ranks_of_the_sorted_values() {
        let v = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(percentile(&v, 0.5), 3.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 1.0), 5.0);
        let d = [Duration::from_millis(30), Duration::from_millis(10)];
        assert_eq!(percentile(&d, 0.99), Duration::from_millis(30));
    }

    #[test]
    fn this_process_has_a_resident_set() {
        assert!(status_kib(None, "VmRSS:") > 0);
        assert_eq!(status_kib(Some(u32::MAX), "VmRSS:"), 0);
    }
}
