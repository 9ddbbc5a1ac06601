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
    version = rai_common::LONG_VERSION,
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
    /// A configuration file (for `mail`: the `mail:` section) layered over /etc/rai/config.yml and ~/.rai_config.yml.
    #[arg(short = 'c', long = "config", global = true)]
    config: Option<PathBuf>,
    /// The app secret that decrypts encrypted configuration values (mail.password).
    #[arg(
        short = 's',
        long = "secret",
        env = "RAI_SECRET",
        hide_env_values = true,
        global = true
    )]
    secret: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// How `mail`, and `import --mail`, send.
#[derive(clap::Args, Clone, Default)]
struct MailArgs {
    /// The letter's template (default: mail.template, or the built-in letter).
    #[arg(long)]
    template: Option<PathBuf>,
    /// Compose every letter and report it; connect to no server, send nothing.
    #[arg(long)]
    dry_run: bool,
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
        /// Mail each new or rotated account its profile (the `mail:` section of the config).
        #[arg(long)]
        mail: bool,
        #[command(flatten)]
        mail_args: MailArgs,
    },
    /// Email students their profiles as an attachment over SMTP (the config's `mail:` section), one report line each.
    Mail {
        /// Who (default: every active user of the registry).
        users: Vec<String>,
        /// Where the profiles are, one <username>.rai_profile each (as `import` writes them).
        #[arg(long, default_value = "profiles")]
        profiles: PathBuf,
        #[command(flatten)]
        mail_args: MailArgs,
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

/// `mail`: composes and sends (or, dry, only composes) each letter; prints one line per user; fails if any failed.
fn mail(
    config: &Option<PathBuf>,
    secret: Option<&str>,
    registry: &rai_common::account::Registry,
    users: &[String],
    profiles: &std::path::Path,
    args: &MailArgs,
) -> Result<()> {
    use rai_keygen::mail::{Mailer, Outcome, Template, mail_profiles};
    let secret = rai_crypto::AppSecret::resolve(
        secret,
        |k| std::env::var(k).ok(),
        rai_common::paths::home_dir().as_deref(),
    )?;
    let config = rai_common::Config::load(&rai_common::config::ConfigSources::standard(
        config.clone(),
        secret,
    ))?;
    let settings = &config.mail;
    let template = Template::load(args.template.as_deref().or(settings.template.as_deref()))?;
    let mailer = if args.dry_run {
        None
    } else {
        Some(Mailer::new(settings)?)
    };
    let report = mail_profiles(
        registry,
        users,
        profiles,
        &template,
        settings,
        config.client.gateway.as_deref(),
        mailer.as_ref(),
    );
    for line in &report {
        println!("{line}");
    }
    let failed = report
        .iter()
        .filter(|m| matches!(m.outcome, Outcome::Failed(_)))
        .count();
    let done = report.len() - failed;
    println!(
        "{done} {}, {failed} not sent",
        if args.dry_run {
            "composed (dry run: nothing sent)"
        } else {
            "sent"
        }
    );
    if failed > 0 {
        anyhow::bail!("{failed} letter(s) were not sent; see the lines marked NOT SENT");
    }
    Ok(())
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
        Command::Mail {
            users,
            profiles,
            mail_args,
        } => {
            let reg = store.read()?;
            mail(
                &cli.config,
                cli.secret.as_deref(),
                &reg,
                &users,
                &profiles,
                &mail_args,
            )?;
        }
        Command::Import {
            roster,
            out_dir,
            rotate,
            skip_invalid,
            mail: send,
            mail_args,
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
            if send {
                let who: Vec<String> = report
                    .created
                    .iter()
                    .chain(&report.rotated)
                    .cloned()
                    .collect();
                if !who.is_empty() {
                    let reg = store.read()?;
                    mail(
                        &cli.config,
                        cli.secret.as_deref(),
                        &reg,
                        &who,
                        &out_dir,
                        &mail_args,
                    )?;
                }
            }
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
