//! `rai usage [--by user|team|assignment|day] [--since DAY] [--csv]`: jobs, GPU-hours, failures and queue waits from
//! the workers' records (a student's own; staff: everyone's).

use rai_common::usage::{Usage, UsageRow};

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit;
use crate::terminal::visible;

/// The CSV's columns, in order.
pub const CSV_COLUMNS: [&str; 7] = [
    "key",
    "jobs",
    "failures",
    "hours",
    "gpu_hours",
    "mean_wait_seconds",
    "max_wait_seconds",
];

pub async fn run(
    global: &GlobalArgs,
    by: &str,
    since: Option<&str>,
    csv: bool,
    json: bool,
) -> anyhow::Result<u8> {
    let session = context::session(global)?;
    let usage = session.client.usage(Some(by), since).await?;
    if json {
        println!("{}", serde_json::to_string(&usage)?);
    } else if csv {
        print!("{}", to_csv(&usage));
    } else {
        print!("{}", table(&usage));
    }
    Ok(exit::OK)
}

fn csv_row(r: &UsageRow) -> String {
    let key = if r.key.starts_with(['=', '+', '-', '@']) && r.key != "-" {
        format!("'{}", r.key)
    } else {
        r.key.clone()
    };
    format!(
        "{},{},{},{:.4},{:.4},{:.1},{:.1}",
        key, r.jobs, r.failures, r.hours, r.gpu_hours, r.mean_wait_seconds, r.max_wait_seconds
    )
}

/// One row per group, no total (a spreadsheet sums).
pub fn to_csv(u: &Usage) -> String {
    let mut out = format!("{}\n", CSV_COLUMNS.join(","));
    for r in &u.rows {
        out.push_str(&csv_row(r));
        out.push('\n');
    }
    out
}

/// Seconds as a person reads a wait: `42s`, `3m10s`, `1h05m`.
fn wait(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// The table, with a total line.
pub fn table(u: &Usage) -> String {
    let name = match u.by {
        rai_common::usage::UsageBy::User => "USER",
        rai_common::usage::UsageBy::Team => "TEAM",
        rai_common::usage::UsageBy::Assignment => "ASSIGNMENT",
        rai_common::usage::UsageBy::Day => "DAY",
    };
    let width = u
        .rows
        .iter()
        .map(|r| r.key.chars().count())
        .max()
        .unwrap_or(0)
        .max(name.len())
        .max(5);
    let line = |key: &str, r: &UsageRow| {
        format!(
            "{key:width$}  {:>6}  {:>8}  {:>8.2}  {:>9.2}  {:>9}  {:>9}\n",
            r.jobs,
            r.failures,
            r.hours,
            r.gpu_hours,
            wait(r.mean_wait_seconds),
            wait(r.max_wait_seconds),
        )
    };
    let mut out = format!(
        "{name:width$}  {:>6}  {:>8}  {:>8}  {:>9}  {:>9}  {:>9}\n",
        "JOBS", "FAILURES", "HOURS", "GPU-HOURS", "MEAN WAIT", "MAX WAIT"
    );
    for r in &u.rows {
        out.push_str(&line(&visible(&r.key), r));
    }
    if u.rows.is_empty() {
        out.push_str("No jobs have ended yet.\n");
    } else {
        out.push_str(&line("total", &u.total));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rai_common::usage::UsageBy;

    #[test]
    fn the_table_and_csv_show_every_group_and_the_total() {
        let row = |key: &str, jobs, gpu_hours, wait| UsageRow {
            key: key.into(),
            jobs,
            failures: 1,
            hours: gpu_hours,
            gpu_hours,
            mean_wait_seconds: wait,
            max_wait_seconds: wait * 2.0,
        };
        let u = Usage {
            by: UsageBy::Team,
            since: None,
            rows: vec![row("a", 2, 1.5, 75.0), row("=evil", 1, 0.25, 4000.0)],
            total: row("total", 3, 1.75, 1000.0),
        };
        let t = table(&u);
        assert!(t.starts_with("TEAM     JOBS  FAILURES"), "{t}");
        assert!(
            t.contains("a           2         1      1.50       1.50      1m15s      2m30s"),
            "{t}"
        );
        assert!(t.contains("1h06m"), "{t}");
        assert!(t.lines().last().unwrap().starts_with("total"), "{t}");
        assert_eq!(
            to_csv(&u),
            "key,jobs,failures,hours,gpu_hours,mean_wait_seconds,max_wait_seconds\na,2,1,1.5000,1.5000,75.0,150.0\n'=evil,1,1,0.2500,0.2500,4000.0,8000.0\n"
        );
    }
}
