//! `rai validate [FILE]`: read a build file exactly as a submission would, and say what it asks for.

use std::path::PathBuf;

use rai_common::build_spec::{BUILD_FILE_NAME, find_build_file};

use crate::cli::GlobalArgs;
use crate::exit;

pub fn run(global: &GlobalArgs, file: Option<PathBuf>) -> anyhow::Result<u8> {
    let path = file.unwrap_or_else(|| {
        let dir = global.path.clone().unwrap_or_else(|| ".".into());
        find_build_file(&dir).unwrap_or_else(|| dir.join(BUILD_FILE_NAME))
    });
    let spec = match crate::context::load_build_spec(&path) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("{e}");
            return Ok(exit::USAGE);
        }
    };
    let limits = spec.limits();
    println!("{} is valid", path.display());
    println!("  image:    {}", spec.rai.image);
    println!("  gpus:     {}", spec.gpu_count());
    let or_default = |v: Option<String>| v.unwrap_or_else(|| "worker default".into());
    println!(
        "  time:     {}",
        or_default(limits.time.map(|t| t.to_string()))
    );
    println!(
        "  memory:   {}",
        or_default(limits.memory.map(|m| m.to_string()))
    );
    println!(
        "  network:  {}",
        if spec.wants_network() {
            "requested"
        } else {
            "none"
        }
    );
    if let Some(q) = &spec.rai.queue {
        println!("  queue:    {q}");
    }
    println!("  commands: {}", spec.commands.build.len());
    for (i, c) in spec.commands.build.iter().enumerate() {
        println!("    {}. {c}", i + 1);
    }
    Ok(exit::OK)
}
