//! `rai init`: write a commented build file to start from.

use rai_common::build_spec::{BUILD_FILE_NAME, TEMPLATE};

use crate::cli::GlobalArgs;
use crate::exit;

pub fn run(global: &GlobalArgs, force: bool) -> anyhow::Result<u8> {
    let dir = global.path.clone().unwrap_or_else(|| ".".into());
    let path = dir.join(BUILD_FILE_NAME);
    if path.exists() && !force {
        eprintln!(
            "{} already exists; pass --force to replace it",
            path.display()
        );
        return Ok(exit::USAGE);
    }
    std::fs::write(&path, TEMPLATE)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    eprintln!(
        "✱ Wrote {}; edit the image and commands, then run `rai submit`.",
        path.display()
    );
    Ok(exit::OK)
}
