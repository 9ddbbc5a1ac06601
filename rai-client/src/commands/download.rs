//! `rai download ID [-o DIR]`: fetch a job's /build and unpack it safely.

use std::path::PathBuf;

use anyhow::Context as _;
use rai_common::JobId;
use rai_common::archive::UnpackLimits;

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit;

pub async fn run(global: &GlobalArgs, id: &str, out: Option<PathBuf>) -> anyhow::Result<u8> {
    let job: JobId = id.parse()?;
    let session = context::session(global)?;
    let dest = out.unwrap_or_else(|| PathBuf::from(format!("build-{job}")));
    let bytes = session.client.download(&job).await?;
    let reader = tokio_util::io::StreamReader::new(futures::TryStreamExt::map_err(
        bytes,
        std::io::Error::other,
    ));
    let bridge = tokio_util::io::SyncIoBridge::new(reader);
    let target = dest.clone();
    let summary = tokio::task::spawn_blocking(move || {
        rai_common::archive::unpack(bridge, &target, UnpackLimits::default())
    })
    .await
    .context("the unpacker failed")??;
    eprintln!(
        "✱ Downloaded /build of job {job} into {} ({} files).",
        dest.display(),
        summary.files
    );
    Ok(exit::OK)
}
