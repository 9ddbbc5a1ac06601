//! `rai validate [FILE]`: read a build file exactly as a submission would, and say what it asks for.

use std::path::PathBuf;

use rai_common::build_spec::{BUILD_FILE_NAME, find_build_file};

use crate::cli::GlobalArgs;
use crate::exit;

/// Checks the build file; with `strict`, a warning fails the check as an error would (exit 2).
pub fn run(global: &GlobalArgs, file: Option<PathBuf>, strict: bool) -> anyhow::Result<u8> {
    let path = file.unwrap_or_else(|| {
        let dir = global.path.clone().unwrap_or_else(|| ".".into());
        find_build_file(&dir).unwrap_or_else(|| dir.join(BUILD_FILE_NAME))
    });
    let (spec, warnings) = match crate::context::load_build_spec(&path) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("{e}");
            return Ok(exit::USAGE);
        }
    };
    let kind = if strict { "error" } else { "warning" };
    for w in &warnings {
        eprintln!("{kind}: {w}");
    }
    if strict && !warnings.is_empty() {
        eprintln!(
            "{} is not valid with --strict: {} warning{} above (without --strict, rai runs it as the original did)",
            path.display(),
            warnings.len(),
            if warnings.len() == 1 { "" } else { "s" }
        );
        return Ok(exit::USAGE);
    }
    let limits = spec.limits();
    match warnings.len() {
        0 => println!("{} is valid", path.display()),
        n => println!(
            "{} is valid, with {n} warning{} (on stderr)",
            path.display(),
            if n == 1 { "" } else { "s" }
        ),
    }
    match &spec.commands.build_image {
        Some(b) => println!(
            "  image:    built from {}{} (commands.build_image; the course must allow it)",
            b.dockerfile(),
            b.image_name
                .as_deref()
                .map(|n| format!(" as {n}"))
                .unwrap_or_default()
        ),
        None => println!("  image:    {}", spec.rai.image),
    }
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
    let inferred = spec
        .inferred_queue()
        .map(|q| format!("{q} (from resources.cpu.architecture)"));
    if let Some(q) = global.queue.as_ref().or(spec.rai.queue.as_ref()) {
        println!("  queue:    {q}");
    } else if let Some(q) = inferred {
        println!("  queue:    {q}");
    }
    println!("  commands: {}", spec.commands.build.len());
    for (i, c) in spec.commands.build.iter().enumerate() {
        println!("    {}. {c}", i + 1);
    }
    Ok(exit::OK)
}
