//! `rai`: the thin binary over the `rai_client` library.

use std::process::ExitCode;

use clap::Parser;
use rai_client::cli::{Cli, Command};
use rai_client::commands::submit::SubmitArgs;
use rai_client::{commands, exit};

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let g = &cli.global;
    match cli.command {
        Some(Command::Validate { file, strict }) => {
            commands::validate::run(g, file.or(cli.build), strict)
        }
        Some(Command::Init { force }) => commands::init::run(g, force),
        Some(Command::Whoami) => commands::whoami::run(g),
        Some(Command::Version) => commands::version::run(),
        Some(Command::Buildtime) => commands::version::build_time(),
        Some(Command::Env) => commands::env::run(),
        Some(Command::License) => commands::license::run(),
        Some(Command::Completions { shell }) => commands::completions::run(shell),
        Some(Command::Submit {
            detach,
            json,
            timeout,
            build,
        }) => {
            commands::submit::run(
                g,
                SubmitArgs {
                    queue: None,
                    assignment: g.assignment.clone(),
                    detach,
                    json,
                    timeout,
                    build: build.or(cli.build),
                },
            )
            .await
        }
        Some(Command::Run {
            local: _,
            gpus,
            datasets,
            output,
            build,
            json,
        }) => {
            let args = commands::run::RunArgs {
                gpus,
                datasets,
                output,
                build: build.or(cli.build),
                json,
            };
            commands::run::run(g, args).await
        }
        // The 2017 form: `rai -p DIR` submits.
        None => {
            let args = SubmitArgs {
                assignment: g.assignment.clone(),
                build: cli.build,
                ..SubmitArgs::default()
            };
            commands::submit::run(g, args).await
        }
        Some(Command::Submitted { assignment, json }) => {
            commands::submitted::run(g, assignment.as_deref(), json).await
        }
        Some(Command::Ranking {
            assignment,
            n,
            json,
        }) => commands::ranking::run(g, &assignment, n, json).await,
        Some(Command::Dashboard { print }) => commands::dashboard::run(g, print).await,
        Some(Command::Workers { json }) => commands::workers::run(g, json).await,
        Some(Command::Datasets { json }) => commands::datasets::run(g, json).await,
        Some(Command::Logs { follow, json, id }) => commands::logs::run(g, &id, follow, json).await,
        Some(Command::Status { json, id }) => commands::status::run(g, &id, json).await,
        Some(Command::Results { json, id }) => commands::results::run(g, id.as_deref(), json).await,
        Some(Command::Cancel { ids }) => commands::cancel::run(g, &ids).await,
        Some(Command::History {
            n,
            json,
            user,
            team,
            all,
        }) => {
            use rai_client::client::Whose;
            let whose = match (&user, &team, all) {
                (_, _, true) => Whose::All,
                (Some(u), _, _) => Whose::User(u),
                (_, Some(t), _) => Whose::Team(t),
                _ => Whose::Me,
            };
            commands::history::run(g, whose, n, json).await
        }
        Some(Command::Submissions {
            assignment,
            csv,
            every,
            canvas,
        }) => match canvas {
            Some(roster) => commands::submissions::canvas(g, &assignment, &roster).await,
            None => commands::submissions::run(g, &assignment, csv, every).await,
        },
        Some(Command::Usage {
            by,
            since,
            csv,
            json,
        }) => commands::usage::run(g, &by, since.as_deref(), csv, json).await,
        Some(Command::Regrade {
            assignment,
            teams,
            all_submissions,
            detach,
        }) => commands::regrade::run(g, &assignment, teams, all_submissions, detach).await,
        Some(Command::Deadletters {
            requeue,
            drop,
            json,
        }) => commands::deadletters::run(g, requeue.as_deref(), drop.as_deref(), json).await,
        Some(Command::Extensions { assignment, json }) => {
            commands::extensions::run(g, &assignment, json).await
        }
        Some(Command::Download { id, output, force }) => {
            commands::download::run(g, &id, output, force).await
        }
    }
}

fn main() -> ExitCode {
    rai_client::memory::tune_allocator();
    let cli = Cli::parse();
    rai_client::terminal::set_color(cli.global.color());
    if cli.global.ratelimit.is_some() {
        eprintln!(
            "rai: note: --ratelimit has no effect: the course's gateway limits how often each student submits"
        );
    }
    if let Some(level) = cli.global.log_level() {
        // -v / -d, as in the 2017 client: rai's own log on stderr.
        tracing_subscriber::fmt()
            .with_env_filter(format!("rai_client={level},rai_common={level}"))
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rai: cannot start: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("rai: {e:#}");
            ExitCode::from(exit::USAGE)
        }
    }
}
