//! `rai cancel ID`: ask the worker to stop a job (SIGTERM, then a kill after the grace period).

use rai_common::JobId;

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit;

pub async fn run(global: &GlobalArgs, id: &str) -> anyhow::Result<u8> {
    let job: JobId = id.parse()?;
    let session = context::session(global)?;
    session.client.cancel(&job).await?;
    eprintln!("✱ Asked the worker to cancel job {job}; `rai logs -f {job}` shows when it stops.");
    Ok(exit::OK)
}
