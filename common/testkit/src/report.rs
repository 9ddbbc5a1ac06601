//! The one-table report of `deploy/local/report.sh`: every benchmark appends its figures here.

/// One figure of a benchmark, for the one-table report of `deploy/local/report.sh`.
pub struct Figure<'a> {
    /// What was measured ("hello end to end, p50").
    pub name: &'a str,
    /// The figure, with its unit.
    pub value: String,
    /// The same thing done without rai (or the bound it is held to), measured in the same run; empty if none.
    pub reference: String,
    /// value / reference, where both are numbers.
    pub ratio: Option<f64>,
    /// The target, as the issue states it ("ratio <= 1.5").
    pub target: &'a str,
    pub met: bool,
}

/// Appends `figure` to the file named by `RAI_REPORT_FILE` (tab-separated), when the report runs the benchmark;
/// a benchmark run by hand prints its own table only.
pub fn report(figure: Figure<'_>) {
    use std::io::Write;
    let Ok(path) = std::env::var("RAI_REPORT_FILE") else {
        return;
    };
    let clean = |s: &str| s.replace(['\t', '\n'], " ");
    let line = format!(
        "{}\t{}\t{}\t{}\t{}\t{}\n",
        clean(figure.name),
        clean(&figure.value),
        clean(&figure.reference),
        figure.ratio.map(|r| format!("{r:.2}")).unwrap_or_default(),
        clean(figure.target),
        if figure.met { "yes" } else { "NO" }
    );
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("cannot add to the report file {path}: {e}");
    }
}
