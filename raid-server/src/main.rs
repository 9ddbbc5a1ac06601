//! `raid`: the worker daemon. This build loads and checks its configuration; the job loop is being built
//! (see the issues), so it refuses to start rather than pretend to serve.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rai_common::config::ConfigSources;
use rai_common::{Config, paths};
use rai_crypto::AppSecret;

#[derive(Parser)]
#[command(name = "raid", version, about = "The rai worker daemon")]
struct Cli {
    /// The app secret that decrypts encrypted configuration values.
    #[arg(
        short = 's',
        long = "secret",
        env = "RAI_SECRET",
        hide_env_values = true
    )]
    secret: Option<String>,
    /// A configuration file layered over /etc/rai/config.yml and ~/.rai_config.yml.
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let load = || -> anyhow::Result<Config> {
        let secret = AppSecret::resolve(
            cli.secret.as_deref(),
            |k| std::env::var(k).ok(),
            paths::home_dir().as_deref(),
        )?;
        Ok(Config::load(&ConfigSources::standard(
            cli.config.clone(),
            secret,
        ))?)
    };
    match load() {
        Ok(config) => {
            eprintln!(
                "raid: configuration is valid (queues {:?}, store {:?}); the job loop is not in this build yet",
                config.raid.queues, config.store.backend
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("raid: {e:#}");
            ExitCode::FAILURE
        }
    }
}
