//! The command line. `rai -p DIR` (the 2017 form) means `rai submit -p DIR`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "rai",
    version,
    about = "Run your project on the course's GPU workers",
    args_conflicts_with_subcommands = false
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every command takes.
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// The project directory (holds rai_build.yml).
    #[arg(short = 'p', long = "path", global = true, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// The profile to use instead of ~/.rai_profile.
    #[arg(long, global = true, env = "RAI_PROFILE", value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// The app secret for encrypted configuration values (normally built in).
    #[arg(short = 's', long = "secret", global = true, hide = true)]
    pub secret: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a build file and say what it asks for.
    Validate {
        /// The build file (default: rai_build.yml in the project directory).
        file: Option<PathBuf>,
    },
    /// Write a commented rai_build.yml into the project directory.
    Init {
        /// Replace an existing rai_build.yml.
        #[arg(long)]
        force: bool,
    },
    /// Show who your profile says you are.
    Whoami,
    /// Print rai's version.
    Version,
}
