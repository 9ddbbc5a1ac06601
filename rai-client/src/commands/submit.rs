//! `rai submit` (and the 2017 form `rai -p DIR`): check, pack, upload, sign, queue, and follow the job.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use rai_backends::store::PutResult;
use rai_common::account::{Profile, SigningKey};
use rai_common::archive::{PackOptions, PackProgress, PackSummary, ScannedEntry, SkippedEntry};
use rai_common::build_spec::BUILD_FILE_NAME;
use rai_common::event::JobStatus;
use rai_common::job::{InputObject, JobId, JobRequest};
use rai_common::objects::upload_key;
use rai_common::state::JobState;
use rai_common::{BuildSpec, Config};

use crate::cli::GlobalArgs;
use crate::context::{self, Services};
use crate::{exit, follow};

/// What `rai submit` was asked.
#[derive(Debug, Clone, Default)]
pub struct SubmitArgs {
    pub queue: Option<String>,
    pub detach: bool,
    pub json: bool,
    pub timeout: Option<Duration>,
}

fn say(json: bool, line: &str) {
    if !json {
        eprintln!("✱ {line}");
    }
}

/// Everything checked before anything goes over the network.
struct Checked {
    spec: BuildSpec,
    config: Config,
    profile: Profile,
    key: SigningKey,
    queue_name: String,
    project: Project,
}

/// The project directory as scanned, ready to pack.
struct Project {
    dir: PathBuf,
    scanned: (Vec<ScannedEntry>, Vec<SkippedEntry>),
    opts: PackOptions,
}

/// What was uploaded.
struct Uploaded {
    key: String,
    put: PutResult,
    summary: PackSummary,
}

/// The steps of a submit, in the order the student sees their `✱` lines. A step that returns `None` has said
/// what is wrong with the student's project (exit code 2).
pub async fn run(global: &GlobalArgs, args: SubmitArgs) -> anyhow::Result<u8> {
    let Some(Checked {
        spec,
        config,
        profile,
        key,
        queue_name,
        project,
    }) = check(global, &args).await?
    else {
        return Ok(exit::USAGE);
    };
    let services =
        Services::connect(config, &profile.username, std::slice::from_ref(&queue_name)).await?;
    let queue = services.queue(&queue_name).await?;
    let job = JobId::new();
    let upload_key = upload_key(&profile.username, &job);
    let Some(uploaded) = upload(&services, args.json, upload_key, project).await? else {
        return Ok(exit::USAGE);
    };
    for skipped in &uploaded.summary.skipped {
        say(
            args.json,
            &format!("Left out {}: {}.", skipped.path.display(), skipped.reason),
        );
    }
    let request = JobRequest {
        id: job,
        user: profile.username.clone(),
        team: profile.team.name.clone(),
        queue: queue_name.clone(),
        created_at: Utc::now(),
        client_version: rai_common::VERSION.into(),
        build: spec,
        input: InputObject {
            key: uploaded.key,
            size: uploaded.put.size,
            sha256: uploaded.put.sha256,
        },
    };
    let wire = String::from_utf8(request.sign(&key).to_bytes()).expect("JSON is UTF-8");
    let queued = JobState {
        status: Some(JobStatus::Queued),
        user: Some(profile.username.clone()),
        queue: Some(queue_name.clone()),
        submitted_at: Some(Utc::now()),
        ..JobState::default()
    };
    let _ = services.bus.update_state(&job, &queued).await;
    queue.send(&wire).await.context("cannot queue the job")?;
    say(args.json, "Your job request has been posted to the queue.");
    if args.json {
        println!(
            "{}",
            serde_json::json!({"job": job.to_string(), "queue": queue_name})
        );
    } else {
        eprintln!(
            "✱ Job {job} ({} files, {}).",
            uploaded.summary.files,
            rai_common::units::Bytes(uploaded.put.size).human()
        );
    }
    if args.detach {
        say(
            args.json,
            &format!("Follow it with `rai logs -f {job}`; stop it with `rai cancel {job}`."),
        );
        return Ok(exit::OK);
    }
    let followed = follow::follow(&services.bus, job, 0, args.json, args.timeout).await;
    Ok(follow::after(&job, followed))
}

/// The build file, the configuration, the profile and its key, and the directory against the caps: an over-cap
/// project fails here, naming its largest files, with nothing uploaded.
async fn check(global: &GlobalArgs, args: &SubmitArgs) -> anyhow::Result<Option<Checked>> {
    let dir = global.path.clone().unwrap_or_else(|| ".".into());
    let build_path = dir.join(BUILD_FILE_NAME);
    if !build_path.exists() {
        eprintln!(
            "rai: no {BUILD_FILE_NAME} in {}; create one with `rai init` (see docs/build-file.md)",
            dir.display()
        );
        return Ok(None);
    }
    let spec = match context::load_build_spec(&build_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(None);
        }
    };
    let config = context::load_config(global)?;
    say(args.json, "Checking your authentication credentials.");
    let profile = context::load_profile(global, Some(&config))?;
    let key = profile.signing_key(
        &context::profile_path(global, Some(&config))
            .display()
            .to_string(),
    )?;
    let queue_name = args
        .queue
        .clone()
        .or_else(|| spec.rai.queue.clone())
        .unwrap_or_else(|| config.queue.name.clone());
    let opts = PackOptions {
        max_bytes: config.client.max_upload.0,
        max_files: config.client.max_files,
        ..PackOptions::default()
    };
    say(args.json, "Preparing your project directory for upload.");
    let scanned = {
        let (dir, opts) = (dir.clone(), opts.clone());
        tokio::task::spawn_blocking(move || rai_common::archive::scan(&dir, &opts))
            .await
            .context("the directory scan failed")?
    };
    let scanned = match scanned {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rai: {e}");
            return Ok(None);
        }
    };
    Ok(Some(Checked {
        spec,
        config,
        profile,
        key,
        queue_name,
        project: Project { dir, scanned, opts },
    }))
}

/// Packs the scanned directory straight into the store's upload stream (no temporary file; size and SHA-256
/// computed on the way), with a progress bar on a terminal.
async fn upload(
    services: &Services,
    json: bool,
    key: String,
    project: Project,
) -> anyhow::Result<Option<Uploaded>> {
    let (reader, writer) = tokio::io::duplex(1 << 20);
    let bar = progress_bar(json);
    let packer = {
        let Project { dir, scanned, opts } = project;
        let bar = bar.clone();
        tokio::task::spawn_blocking(move || {
            let writer = tokio_util::io::SyncIoBridge::new(writer);
            let mut last = std::time::Instant::now();
            rai_common::archive::pack_scanned(&dir, scanned, writer, &opts, |p: PackProgress| {
                if let Some(bar) = &bar {
                    bar.set_length(p.bytes_total);
                    bar.set_position(p.bytes_done);
                } else if last.elapsed() > Duration::from_secs(2) && p.bytes_total > 0 {
                    last = std::time::Instant::now();
                    eprintln!("✱ Packed {} of {} bytes.", p.bytes_done, p.bytes_total);
                }
            })
        })
    };
    say(json, "Uploading your project directory...");
    let put = services.store.put(&key, Box::pin(reader)).await;
    let packed = packer.await.context("the packer failed")?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let summary = match packed {
        Ok(s) => s,
        Err(e) => {
            // The directory changed between the scan and the packing: drop what was uploaded of it.
            if put.is_ok() {
                let _ = services.store.delete(&key).await;
            }
            eprintln!("rai: {e}");
            return Ok(None);
        }
    };
    let put = put.context("cannot upload the project")?;
    Ok(Some(Uploaded { key, put, summary }))
}

fn progress_bar(json: bool) -> Option<indicatif::ProgressBar> {
    if json || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}
