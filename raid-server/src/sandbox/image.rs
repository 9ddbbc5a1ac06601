//! The job's image: used when the engine has it, pulled (with progress as `✱` lines) when it is allowed and missing.

use std::time::{Duration, Instant};

use bollard::Docker;
use futures::StreamExt;

use crate::errors::{JobError, SandboxError};
use crate::output::OutputPump;

/// How often a pull reports its progress.
const REPORT_EVERY: Duration = Duration::from_secs(2);

/// Makes sure `image` is on this engine, pulling it when it is missing.
pub async fn ensure_image(
    docker: &Docker,
    image: &str,
    pump: &mut OutputPump,
) -> Result<(), JobError> {
    if docker.inspect_image(image).await.is_ok() {
        return Ok(());
    }
    pump.system(&format!("Pulling image {image}")).await?;
    let options = bollard::query_parameters::CreateImageOptionsBuilder::default()
        .from_image(image)
        .build();
    let mut pull = docker.create_image(Some(options), None, None);
    let mut last_report = Instant::now();
    while let Some(step) = pull.next().await {
        let info = step.map_err(|source| SandboxError::Pull {
            image: image.to_string(),
            source,
        })?;
        if last_report.elapsed() > REPORT_EVERY
            && let Some(status) = info.status
        {
            last_report = Instant::now();
            pump.system(&format!("{image}: {status}")).await?;
        }
    }
    Ok(())
}
