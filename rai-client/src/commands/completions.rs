//! `rai completions SHELL`: prints a completion script for bash, zsh, fish, PowerShell or elvish, generated from
//! the same clap definition the binary parses with, so it can never fall out of date.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::exit;

/// Writes the script for `shell` to stdout.
pub fn run(shell: Shell) -> anyhow::Result<u8> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "rai", &mut std::io::stdout());
    Ok(exit::OK)
}
