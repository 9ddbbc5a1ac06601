//! `rai run --local`: the project's build file run in this machine's Docker engine, in the workers' sandbox, its
//! lines printed as a queued job's are and its exit code the same ([`crate::local`] runs it; this only renders).

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::Utc;
use rai_common::JobId;
use rai_common::build_spec::{BUILD_FILE_NAME, find_build_file};
use rai_common::event::Event;
use tokio_util::sync::CancellationToken;

use crate::cli::GlobalArgs;
use crate::local::LocalRun;
use crate::{context, exit, follow};

/// What `rai run --local` was asked.
#[derive(Debug, Clone, Default)]
pub struct RunArgs {
    pub gpus: Option<u32>,
    /// `NAME=DIR` each.
    pub datasets: Vec<String>,
    pub output: Option<PathBuf>,
    pub build: Option<PathBuf>,
    pub json: bool,
}

pub async fn run(global: &GlobalArgs, args: RunArgs) -> anyhow::Result<u8> {
    let project = global.path.clone().unwrap_or_else(|| ".".into());
    let Some(build_path) = args.build.clone().or_else(|| find_build_file(&project)) else {
        eprintln!(
            "rai: no {BUILD_FILE_NAME} in {}; create one with `rai init` (see docs/build-file.md)",
            project.display()
        );
        return Ok(exit::USAGE);
    };
    let Some(spec) = context::build_spec_to_run(&build_path) else {
        return Ok(exit::USAGE);
    };
    let mut datasets = BTreeMap::new();
    for named in &args.datasets {
        let Some((name, dir)) = named.split_once('=') else {
            eprintln!(
                "rai: --dataset {named}: name a dataset and its local copy as NAME=DIR (--dataset imagenet-mini=~/data/imagenet-mini)"
            );
            return Ok(exit::USAGE);
        };
        let dir = std::path::absolute(dir)?;
        if !dir.is_dir() {
            eprintln!("rai: --dataset {name}: {} is not a folder", dir.display());
            return Ok(exit::USAGE);
        }
        datasets.insert(name.to_string(), dir);
    }
    let job = JobId::new();
    let output = std::path::absolute(
        args.output
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("build-{job}"))),
    )?;
    let local = LocalRun {
        project,
        spec,
        config: context::load_config(global)?,
        gpus: args.gpus,
        datasets,
        output,
        docker_host: None,
        job,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let stop = CancellationToken::new();
    let running = tokio::spawn({
        let stop = stop.clone();
        async move { local.run(tx, stop).await }
    });
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut seq = 0;
    loop {
        tokio::select! {
            // One Ctrl-C stops the job as `rai cancel` would (SIGTERM, then a kill after the grace period); rai
            // waits to print its end.
            _ = &mut ctrl_c, if !stop.is_cancelled() => stop.cancel(),
            body = rx.recv() => match body {
                Some(body) => {
                    seq += 1;
                    follow::print(&Event { seq, ts: Utc::now(), body }, &job, args.json);
                }
                None => break,
            },
        }
    }
    match running.await? {
        Ok(end) => Ok(exit::for_end(end.status, end.exit_code)),
        Err(e) => {
            eprintln!("rai: {e}");
            Ok(match e {
                crate::local::LocalError::Sandbox(_) => exit::WORKER_ERROR,
                _ => exit::USAGE,
            })
        }
    }
}
