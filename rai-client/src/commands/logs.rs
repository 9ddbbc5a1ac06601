//! `rai logs [-f] ID`: a job's output from the start, from any machine, within the retention; `-f` follows it live.

use rai_common::JobId;

use crate::cli::GlobalArgs;
use crate::context;
use crate::{exit, follow};

pub async fn run(global: &GlobalArgs, id: &str, live: bool, json: bool) -> anyhow::Result<u8> {
    let job: JobId = id.parse()?;
    let session = context::session(global)?;
    if live {
        let followed = follow::follow(&session.client, job, 0, json, None).await;
        return Ok(follow::after(&job, followed));
    }
    let history = session.client.events_so_far(&job).await?;
    if history.is_empty() {
        eprintln!("rai: no events for job {job} (unknown, or older than the retention)");
        return Ok(exit::USAGE);
    }
    // Print the history through the same printer, then stop: what `rai submit` showed, without waiting.
    Ok(follow::print_all(&history, &job, json))
}
