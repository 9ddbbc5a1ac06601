//! `rai`: the thin binary over the `rai_client` library.

use std::process::ExitCode;

use clap::Parser;
use rai_client::cli::{Cli, Command};
use rai_client::{commands, exit};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Validate { file }) => commands::validate::run(&cli.global, file),
        Some(Command::Init { force }) => commands::init::run(&cli.global, force),
        Some(Command::Whoami) => commands::whoami::run(&cli.global),
        Some(Command::Version) => commands::version::run(),
        None => {
            eprintln!(
                "rai: submitting jobs is not available in this build yet; use `rai validate` to check a build file"
            );
            Ok(exit::USAGE)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("rai: {e:#}");
            ExitCode::from(exit::USAGE)
        }
    }
}
