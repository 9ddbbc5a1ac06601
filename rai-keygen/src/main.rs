//! `rai-keygen`: the instructor's tool for rai accounts. See the library for what each command does.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::Utc;
use clap::{Parser, Subcommand};
use rai_common::account::Role;
use rai_keygen::{
    ImportOptions, NewAccount, RegistryStore, import_roster, issue_account, revoke,
    write_gateway_key, write_profile,
};

#[derive(Parser)]
#[command(
    name = "rai-keygen",
    version,
    about = "Issue, import, revoke and list rai accounts"
)]
struct Cli {
    /// The account registry to change or read.
    #[arg(
        long,
        global = true,
        env = "RAI_REGISTRY",
        default_value = "rai_registry.yml"
    )]
    registry: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make one account: a key pair, a profile for the user, and an entry in the registry.
    New {
        #[arg(short = 'u', long)]
        username: String,
        #[arg(short = 'e', long)]
        email: String,
        #[arg(short = 'f', long, default_value = "")]
        firstname: String,
        #[arg(short = 'l', long, default_value = "")]
        lastname: String,
        #[arg(short = 't', long, default_value = "")]
        team: String,
        /// student, ta, instructor or admin.
        #[arg(short = 'r', long, default_value = "student")]
        role: Role,
        #[arg(short = 'a', long, default_value = "")]
        affiliation: String,
        /// Where to write the profile (default: ./<username>.rai_profile).
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// Replace the key of a user that already exists.
        #[arg(long)]
        rotate: bool,
    },
    /// Make accounts for every row of a roster CSV (lastname, firstname, username, email, role, affiliation[, team]).
    Import {
        roster: PathBuf,
        /// Where to write the profiles, one <username>.rai_profile each.
        #[arg(long, default_value = "profiles")]
        out_dir: PathBuf,
        /// Issue new keys for users already in the registry.
        #[arg(long)]
        rotate: bool,
        /// Import the good rows even when some rows are bad.
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Revoke a user: gateways refuse its next request; workers refuse its queued jobs.
    Revoke { username: String },
    /// List the registry's users.
    List,
    /// Show one user.
    Show { username: String },
    /// Make a gateway's attestation key (gateway.attestation_key) and print its public key for raid.gateway_keys.
    GatewayKey {
        /// Where to write the private key (mode 0600; an existing file is never replaced).
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
}

// Long (about 120 lines) on purpose: one arm per subcommand, each a few lines over the library.
fn run(cli: Cli) -> Result<()> {
    let store = RegistryStore::new(&cli.registry);
    match cli.command {
        Command::New {
            username,
            email,
            firstname,
            lastname,
            team,
            role,
            affiliation,
            output,
            rotate,
        } => {
            let new = NewAccount {
                username,
                email,
                firstname,
                lastname,
                team,
                role,
                affiliation,
            };
            let mut locked = store.lock()?;
            let profile = issue_account(&mut locked.registry, &new, rotate, Utc::now())?;
            let out =
                output.unwrap_or_else(|| PathBuf::from(format!("{}.rai_profile", new.username)));
            write_profile(&out, &profile)?;
            locked.save()?;
            println!(
                "made account \"{}\" ({}); profile: {} (give it to the user as ~/.rai_profile); registry: {}",
                new.username,
                new.role,
                out.display(),
                cli.registry.display()
            );
        }
        Command::Import {
            roster,
            out_dir,
            rotate,
            skip_invalid,
        } => {
            let report = import_roster(
                &roster,
                &store,
                &ImportOptions {
                    out_dir: out_dir.clone(),
                    rotate,
                    skip_invalid,
                },
            )?;
            for row in &report.skipped {
                eprintln!("skipped {}: {row}", roster.display());
            }
            println!(
                "{} created, {} rotated, {} already present (unchanged), {} skipped; profiles in {}; registry: {}",
                report.created.len(),
                report.rotated.len(),
                report.kept.len(),
                report.skipped.len(),
                out_dir.display(),
                cli.registry.display()
            );
        }
        Command::Revoke { username } => {
            let mut locked = store.lock()?;
            revoke(&mut locked.registry, &username, Utc::now())?;
            locked.save()?;
            println!(
                "revoked \"{username}\"; gateways refuse its next request and workers its queued jobs"
            );
        }
        Command::GatewayKey { out } => {
            let public = write_gateway_key(&out)?;
            println!(
                "made gateway key {} (set gateway.attestation_key to it; keep it readable by raid only)",
                out.display()
            );
            println!("public key (add to raid.gateway_keys of every worker): {public}");
        }
        Command::List => {
            let reg = store.read()?;
            println!(
                "{:<24} {:<11} {:<16} {:<32} {:<10} STATUS",
                "USERNAME", "ROLE", "TEAM", "EMAIL", "CREATED"
            );
            for a in &reg.users {
                let status = a.revoked.map_or_else(
                    || "active".to_string(),
                    |t| format!("revoked {}", t.format("%Y-%m-%d")),
                );
                println!(
                    "{:<24} {:<11} {:<16} {:<32} {:<10} {status}",
                    a.username,
                    a.role.as_str(),
                    a.team,
                    a.email,
                    a.created.format("%Y-%m-%d").to_string(),
                );
            }
            println!("{} user(s)", reg.users.len());
        }
        Command::Show { username } => {
            let reg = store.read()?;
            let a = reg
                .get(&username)
                .with_context(|| format!("no user \"{username}\" in {}", cli.registry.display()))?;
            println!("username:   {}", a.username);
            println!("email:      {}", a.email);
            println!("team:       {}", a.team);
            println!("role:       {}", a.role);
            println!("public key: {}", a.public_key);
            println!("created:    {}", a.created.to_rfc3339());
            println!(
                "status:     {}",
                a.revoked.map_or_else(
                    || "active".to_string(),
                    |t| format!("revoked {}", t.to_rfc3339())
                )
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rai-keygen: {e:#}");
            ExitCode::FAILURE
        }
    }
}
