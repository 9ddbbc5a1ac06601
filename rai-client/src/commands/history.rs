//! `rai history [-n N]`: the user's jobs, newest first, from the stored job records.

use rai_common::record::JobRecord;

use crate::cli::GlobalArgs;
use crate::context::{self, Services};
use crate::exit;

pub async fn run(global: &GlobalArgs, n: usize, json: bool) -> anyhow::Result<u8> {
    let config = context::load_config(global)?;
    let profile = context::load_profile(global, Some(&config))?;
    let services = Services::connect(config, &profile.username, &[]).await?;
    let mut records = services
        .store
        .list(&format!("records/{}/", profile.username))
        .await?;
    // Job ids sort by time: newest first.
    records.sort_by(|a, b| b.key.cmp(&a.key));
    records.truncate(n);
    if !json {
        let header = format!(
            "{:<27} {:<10} {:>5}  {:<25} IMAGE",
            "JOB", "STATUS", "EXIT", "FINISHED"
        );
        if !print_line(&header)? {
            return Ok(exit::OK);
        }
    }
    for r in records {
        let bytes = services.store.get_bytes(&r.key).await?;
        let record: JobRecord = match serde_json::from_slice(&bytes) {
            Ok(record) => record,
            Err(e) => {
                eprintln!("rai: skipping {}: not a job record ({e})", r.key);
                continue;
            }
        };
        let line = if json {
            serde_json::to_string(&record)?
        } else {
            format!(
                "{:<27} {:<10} {:>5}  {:<25} {}",
                record.id,
                record.status.as_str(),
                record
                    .exit_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                record
                    .finished_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                record.image,
            )
        };
        if !print_line(&line)? {
            // The reader went away (`rai history | head -1`): stop quietly.
            return Ok(exit::OK);
        }
    }
    Ok(exit::OK)
}

/// Prints a line; false when standard output is closed (a broken pipe), instead of the panic `println!` gives.
fn print_line(line: &str) -> std::io::Result<bool> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{line}") {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
    }
}
