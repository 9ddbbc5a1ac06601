//! `rai history [-n N] [--user U | --team T | --all]`: finished jobs, newest first, from the stored job records.

use crate::cli::GlobalArgs;
use crate::client::Whose;
use crate::context;
use crate::exit;

pub async fn run(
    global: &GlobalArgs,
    whose: Whose<'_>,
    n: usize,
    json: bool,
) -> anyhow::Result<u8> {
    let session = context::session(global)?;
    // Newest first, from the gateway.
    let records = session.client.history_of(whose, n).await?;
    let others = whose != Whose::Me;
    if !json {
        let header = format!(
            "{:<27} {}{:<10} {:>5}  {:<25} IMAGE",
            "JOB",
            if others {
                format!("{:<12} ", "USER")
            } else {
                String::new()
            },
            "STATUS",
            "EXIT",
            "FINISHED"
        );
        if !print_line(&header)? {
            return Ok(exit::OK);
        }
    }
    for record in records {
        let line = if json {
            serde_json::to_string(&record)?
        } else {
            // A sweep's job says which sweep and which combination, so a sweep's rows are read together.
            let sweep = match (&record.sweep, &record.combination) {
                (Some(sweep), Some(label)) => format!("  (sweep {sweep}: {label})"),
                _ => String::new(),
            };
            format!(
                "{:<27} {}{:<10} {:>5}  {:<25} {}{sweep}",
                record.id,
                if others {
                    format!("{:<12} ", record.user)
                } else {
                    String::new()
                },
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
        // The image (and, for staff, other students' fields) were written by students.
        let line = if !json && crate::terminal::stdout_is_terminal() {
            crate::terminal::visible(&line).into_owned()
        } else {
            line
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
