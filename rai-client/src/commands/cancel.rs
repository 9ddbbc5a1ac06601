//! `rai cancel ID`: ask the worker to stop a job (SIGTERM, then a kill after the grace period).

use rai_common::JobId;

use crate::cli::GlobalArgs;
use crate::context::{self, Services};
use crate::exit;

pub async fn run(global: &GlobalArgs, id: &str) -> anyhow::Result<u8> {
    let job: JobId = id.parse()?;
    let config = context::load_config(global)?;
    let profile = context::load_profile(global, Some(&config))?;
    let services = Services::connect(config, &profile.username, &[]).await?;
    services.bus.request_cancel(&job, &profile.username).await?;
    eprintln!("✱ Asked the worker to cancel job {job}; `rai logs -f {job}` shows when it stops.");
    Ok(exit::OK)
}
