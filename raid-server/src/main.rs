//! `raid`: the thin binary over the `raid` library. `raid -s SECRET [-c CONFIG] [-d] [-V] [--queue Q]`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use rai_common::config::ConfigSources;
use rai_common::{Config, paths};
use rai_crypto::AppSecret;

#[derive(Parser)]
#[command(
    name = "raid",
    about = "The rai worker daemon: runs students' jobs in sandboxed GPU containers"
)]
struct Cli {
    /// The app secret that decrypts encrypted configuration values.
    #[arg(
        short = 's',
        long = "secret",
        env = "RAI_SECRET",
        hide_env_values = true,
        global = true
    )]
    secret: Option<String>,
    /// A configuration file layered over /etc/rai/config.yml and ~/.rai_config.yml.
    #[arg(short = 'c', long = "config", global = true)]
    config: Option<PathBuf>,
    /// Debug logging.
    #[arg(short = 'd', long = "debug", global = true)]
    debug: bool,
    /// Verbose logging.
    #[arg(short = 'V', long = "verbose", global = true)]
    verbose: bool,
    /// The queue to serve (instead of raid.queues).
    #[arg(long = "queue", global = true)]
    queue: Vec<String>,
    /// Print the version (`-V` is verbose, as in the 2017 raid).
    #[arg(long = "version")]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Check Docker, GPUs, queue, store, Redis, registry and disk; print a table; exit non-zero on a failure.
    Doctor,
    /// Serve only the gateway (the authenticated API students talk to), on `gateway.listen`.
    Gateway,
    /// Sample this machine's GPUs for a while, as jobs' GPU use is sampled, and print each one's use.
    GpuUse {
        /// How long to sample, like 10s or 1m.
        #[arg(long = "for", default_value = "10s")]
        span: rai_common::units::Span,
    },
}

fn init_logs(cli: &Cli) {
    let default = if cli.debug {
        "raid=debug,raid_gateway=debug,raid_metrics=debug,rai_backends=debug,rai_common=debug,info"
    } else if cli.verbose {
        "raid=debug,raid_gateway=debug,info"
    } else {
        "info"
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("RAI_LOG").unwrap_or_else(|_| default.into());
    // Under systemd, journald adds time stamps; plain lines without colour read best there.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(!journald && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let secret = AppSecret::resolve(
        cli.secret.as_deref(),
        |k| std::env::var(k).ok(),
        paths::home_dir().as_deref(),
    )?;
    let mut config = Config::load(&ConfigSources::standard(cli.config.clone(), secret))?;
    if !cli.queue.is_empty() {
        config.raid.queues = cli.queue.clone();
    }
    if let Some(Command::Doctor) = cli.command {
        let checks = raid::doctor::run(&config).await;
        if raid::doctor::print(&checks) {
            return Ok(());
        }
        anyhow::bail!("some checks failed");
    }
    if let Some(Command::GpuUse { span }) = cli.command {
        let used = raid::gpu::sampler::sample_all(&config, span.as_duration()).await;
        if used.is_empty() {
            anyhow::bail!(
                "no GPU to sample: raid.gpus is empty and {} lists none",
                config.raid.gpu.nvidia_smi.display()
            );
        }
        for u in &used {
            println!("{}", u.describe());
        }
        if used.iter().all(|u| u.samples == 0) {
            anyhow::bail!(
                "no sample came from {} (see the log above)",
                config.raid.gpu.nvidia_smi.display()
            );
        }
        return Ok(());
    }
    let shutdown = raid::shutdown::Shutdown::new();
    shutdown.listen_for_signals();
    if let Some(Command::Gateway) = cli.command {
        let gateway = raid_gateway::Gateway::connect(config).await?;
        let stop = shutdown.clone();
        let listening =
            raid_gateway::serve(Arc::new(gateway), async move { stop.draining().await }).await?;
        raid::notify::ready();
        let _ = listening.task.await;
        raid::notify::stopping();
        return Ok(());
    }
    // The embedded gateway: the same API, in this worker's process, when its config says where to listen.
    let embedded = match config.gateway.listen {
        Some(_) => {
            let gateway = raid_gateway::Gateway::connect(config.clone()).await?;
            let stop = shutdown.clone();
            Some(
                raid_gateway::serve(Arc::new(gateway), async move { stop.draining().await })
                    .await?,
            )
        }
        None => None,
    };
    let ctx = raid::setup::context(config).await?;
    if let Some(address) = &ctx.config.raid.metrics_address {
        let stop = shutdown.clone();
        raid::metrics::serve_worker(address, ctx.queues.clone(), ctx.bus.clone(), async move {
            stop.draining().await
        })
        .await?;
    }
    let slots = raid::setup::slots(&ctx);
    // In an Auto Scaling group: protected while busy, drained before the group terminates the instance.
    let fleet = raid::fleet::Fleet::join(&ctx.config)
        .await
        .context("raid.fleet")?;
    let watch = fleet
        .clone()
        .map(|f| tokio::spawn(f.watch(shutdown.clone())));
    raid::notify::ready();
    raid::worker::serve(Arc::new(ctx), slots, shutdown).await;
    if let (Some(fleet), Some(watch)) = (fleet, watch) {
        watch.abort();
        fleet.finish().await;
    }
    if let Some(gateway) = embedded {
        let _ = gateway.task.await;
    }
    raid::notify::stopping();
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.version {
        println!("raid {}", rai_common::LONG_VERSION);
        return ExitCode::SUCCESS;
    }
    init_logs(&cli);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime");
    let result = runtime.and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raid: {e:#}");
            ExitCode::FAILURE
        }
    }
}
