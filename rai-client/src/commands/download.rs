//! `rai download ID [-o DIR] [--force]`: fetch a job's /build and unpack it safely.
//!
//! The folder must be new or empty unless `--force` is given, and even then nothing already in it is replaced,
//! deleted, written through or re-moded: the archive comes from a job, which a student controls, and the folder
//! may be their project. Links that would lead outside the folder are removed once everything is written.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rai_common::JobId;
use rai_common::archive::{Existing, UnpackLimits};

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit;

/// How many names of left-out entries are listed before "and N more".
const LISTED: usize = 10;

pub async fn run(
    global: &GlobalArgs,
    id: &str,
    out: Option<PathBuf>,
    force: bool,
) -> anyhow::Result<u8> {
    let job: JobId = id.parse()?;
    let dest = out.unwrap_or_else(|| PathBuf::from(format!("build-{job}")));
    if !force && !is_new_or_empty(&dest)? {
        eprintln!(
            "error: {} is not empty; rai download writes only into a new or empty folder. Choose another with -o DIR, \
             or add --force to unpack beside what is there (nothing there is replaced).",
            dest.display()
        );
        return Ok(exit::USAGE);
    }
    let session = context::session(global)?;
    let bytes = session.client.download(&job).await?;
    let reader = tokio_util::io::StreamReader::new(futures::TryStreamExt::map_err(
        bytes,
        std::io::Error::other,
    ));
    let bridge = tokio_util::io::SyncIoBridge::new(reader);
    let target = dest.clone();
    let summary = tokio::task::spawn_blocking(move || {
        rai_common::archive::unpack_into(bridge, &target, UnpackLimits::default(), Existing::Keep)
    })
    .await
    .context("the unpacker failed")??;
    let names = |paths: &[PathBuf]| {
        let mut text: Vec<String> = paths
            .iter()
            .take(LISTED)
            .map(|p| p.display().to_string())
            .collect();
        if paths.len() > LISTED {
            text.push(format!("and {} more", paths.len() - LISTED));
        }
        crate::terminal::visible(&text.join(", ")).into_owned()
    };
    if !summary.kept_existing.is_empty() {
        eprintln!(
            "✱ Left out {} entries whose paths were already taken in {} (yours were kept): {}",
            summary.kept_existing.len(),
            dest.display(),
            names(&summary.kept_existing)
        );
    }
    if !summary.links_dropped.is_empty() {
        eprintln!(
            "✱ Removed {} symbolic links that led outside {}: {}",
            summary.links_dropped.len(),
            dest.display(),
            names(&summary.links_dropped)
        );
    }
    eprintln!(
        "✱ Downloaded /build of job {job} into {} ({} files).",
        dest.display(),
        summary.files
    );
    Ok(exit::OK)
}

/// Whether `dir` does not exist yet or holds nothing (a file there is neither).
fn is_new_or_empty(dir: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}
