//! `rai-crypto`: encrypt and decrypt configuration values, and make app secrets. See the library for the formats.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use rai_crypto::AppSecret;

#[derive(Parser)]
#[command(
    name = "rai-crypto",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("RAI_COMMIT"), ")"),
    about = "Encrypt rai configuration values and make app secrets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Encrypt VALUE (or standard input, with `-`) as an enc:v1 value.
    Encrypt {
        /// The app secret (else RAI_SECRET, ~/.rai_secret, or the built-in one).
        #[arg(short = 's', long = "secret")]
        secret: Option<String>,
        /// The value to encrypt; `-` reads standard input (one trailing newline is dropped).
        value: String,
    },
    /// Decrypt an enc:v1 value or a legacy ==AES32== value (or standard input, with `-`).
    Decrypt {
        /// The app secret (else RAI_SECRET, ~/.rai_secret, or the built-in one).
        #[arg(short = 's', long = "secret")]
        secret: Option<String>,
        /// The value to decrypt; `-` reads standard input.
        value: String,
    },
    /// Print a new strong app secret (256 random bits, base64url).
    GenSecret,
}

fn read_value(value: String) -> Result<String> {
    if value != "-" {
        return Ok(value);
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read the value from standard input")?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

fn secret(flag: Option<String>) -> Result<AppSecret> {
    let home = directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf());
    match AppSecret::resolve(flag.as_deref(), |k| std::env::var(k).ok(), home.as_deref())? {
        Some(s) => Ok(s),
        None => {
            bail!("no app secret: pass -s SECRET, set RAI_SECRET, or write it to ~/.rai_secret")
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Encrypt { secret: s, value } => {
            let secret = secret(s)?;
            println!("{}", rai_crypto::encrypt(&secret, &read_value(value)?)?);
        }
        Command::Decrypt { secret: s, value } => {
            let secret = secret(s)?;
            let value = read_value(value)?;
            let plain = rai_crypto::decrypt(&secret, &value)
                .with_context(|| format!("cannot decrypt (app secret from {})", secret.source()))?;
            println!("{plain}");
        }
        Command::GenSecret => println!("{}", rai_crypto::secret::generate_secret()?),
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rai-crypto: {e:#}");
            ExitCode::FAILURE
        }
    }
}
