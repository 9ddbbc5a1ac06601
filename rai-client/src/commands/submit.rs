//! `rai submit` (and the 2017 form `rai -p DIR`): check, pack, upload, sign, queue, and follow the job.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use rai_common::account::{Profile, SigningKey};
use rai_common::api::ErrorCode;
use rai_common::archive::{PackOptions, PackProgress, PackSummary, ScannedEntry, SkippedEntry};
use rai_common::build_spec::{BUILD_FILE_NAME, find_build_file};
use rai_common::digest::HashingWriter;
use rai_common::job::{InputObject, JobId, JobRequest};
use rai_common::objects::upload_key;
use rai_common::{BuildSpec, Config};

use crate::Client;
use crate::cli::GlobalArgs;
use crate::client::project::ProjectUpload;
use crate::client::upload::Archive;
use crate::context;
use crate::{exit, follow};

/// What `rai submit` was asked.
#[derive(Debug, Clone, Default)]
pub struct SubmitArgs {
    pub queue: Option<String>,
    /// The assignment this is a graded submission for (`--submit NAME`).
    pub assignment: Option<String>,
    pub detach: bool,
    pub json: bool,
    pub timeout: Option<Duration>,
    /// The build file named with `-f/--build`, instead of the project's.
    pub build: Option<PathBuf>,
}

pub(super) fn say(json: bool, line: &str) {
    if !json {
        eprintln!("✱ {line}");
    }
}

/// Everything checked before anything goes over the network.
pub(super) struct Checked {
    pub(super) spec: BuildSpec,
    pub(super) config: Config,
    pub(super) profile: Profile,
    pub(super) key: SigningKey,
    pub(super) queue_name: String,
    /// The queue came from resources.cpu.architecture, not from the student.
    pub(super) queue_inferred: bool,
    pub(super) project: Project,
}

/// The project directory as scanned, ready to pack.
#[derive(Clone)]
pub(super) struct Project {
    dir: PathBuf,
    scanned: (Vec<ScannedEntry>, Vec<SkippedEntry>),
    opts: PackOptions,
}

/// What was uploaded.
pub(super) struct Uploaded {
    pub(super) key: String,
    pub(super) size: u64,
    /// What `✱ Job ...` says the project is: the archive's size, or the files' for a chunked upload.
    pub(super) shown_size: u64,
    pub(super) sha256: String,
    pub(super) summary: PackSummary,
}

/// The steps of a submit, in the order the student sees their `✱` lines. A step that returns `None` has said
/// what is wrong with the student's project (exit code 2).
pub async fn run(global: &GlobalArgs, args: SubmitArgs) -> anyhow::Result<u8> {
    let Some(checked) = check(global, &args).await? else {
        return Ok(exit::USAGE);
    };
    if !checked.spec.matrix.is_empty() {
        return super::sweep::run(&args, checked).await;
    }
    let Checked {
        spec,
        config,
        profile,
        key,
        queue_name,
        queue_inferred,
        project,
    } = checked;
    let client = Client::new(&config.client, &profile.username, key.clone())?;
    let job = JobId::new();
    let chunked = config.client.chunked_uploads;
    let datasets: Vec<String> = spec.datasets().into_iter().map(String::from).collect();
    let uploaded = match upload(&client, args.json, job, project, &datasets, chunked).await? {
        Ok(uploaded) => uploaded,
        Err(code) => return Ok(code),
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
            size: uploaded.size,
            sha256: uploaded.sha256,
        },
        assignment: args.assignment.clone(),
        sweep: None,
    };
    let accepted = match client.submit(&request.sign(&key)).await {
        Ok(accepted) => accepted,
        Err(e) => {
            let code = refused("the job was not queued", &e);
            if queue_inferred && e.code() == Some(ErrorCode::NoSuchQueue) {
                eprintln!(
                    "rai: the queue {queue_name} was inferred from resources.cpu.architecture, as the 2017 client \
                     did; name one of the course's queues with -q QUEUE (or rai.queue in the build file)"
                );
            }
            return Ok(code);
        }
    };
    say(args.json, "Your job request has been posted to the queue.");
    if let Some(note) = &accepted.note {
        say(args.json, note);
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "job": job.to_string(),
                "queue": accepted.queue,
                "accepted_at": accepted.accepted_at,
            })
        );
    } else {
        eprintln!(
            "✱ Job {job} ({} files, {}).",
            uploaded.summary.files,
            rai_common::units::Bytes(uploaded.shown_size).human()
        );
    }
    if args.detach {
        say(
            args.json,
            &format!("Follow it with `rai logs -f {job}`; stop it with `rai cancel {job}`."),
        );
        return Ok(exit::OK);
    }
    let followed = follow::follow(&client, job, 0, args.json, args.timeout).await;
    Ok(follow::after(&job, followed))
}

/// The build file, the configuration, the profile and its key, and the directory against the caps: an over-cap
/// project fails here, naming its largest files, with nothing uploaded.
async fn check(global: &GlobalArgs, args: &SubmitArgs) -> anyhow::Result<Option<Checked>> {
    let dir = global.path.clone().unwrap_or_else(|| ".".into());
    if let Some(named) = &args.build
        && !named.is_file()
    {
        eprintln!(
            "rai: the build file {} (-f/--build) does not exist; name a file, or leave -f out to use the project's \
             {BUILD_FILE_NAME}",
            named.display()
        );
        return Ok(None);
    }
    let Some(build_path) = args.build.clone().or_else(|| find_build_file(&dir)) else {
        eprintln!(
            "rai: no {BUILD_FILE_NAME} in {}; create one with `rai init` (see docs/build-file.md)",
            dir.display()
        );
        return Ok(None);
    };
    if args.build.is_none() && build_path.file_name() != Some(std::ffi::OsStr::new(BUILD_FILE_NAME))
    {
        say(
            args.json,
            &format!(
                "Using {} (there is no {BUILD_FILE_NAME}; rename it to silence this note).",
                build_path.display()
            ),
        );
    }
    let Some(spec) = context::build_spec_to_run(&build_path) else {
        return Ok(None);
    };
    let config = context::load_config(global)?;
    say(args.json, "Checking your authentication credentials.");
    let profile = context::load_profile(global, Some(&config))?;
    let key = profile.signing_key(
        &context::profile_path(global, Some(&config))
            .display()
            .to_string(),
    )?;
    let named = args
        .queue
        .clone()
        .or_else(|| global.queue.clone())
        .or_else(|| spec.rai.queue.clone());
    // As the 2017-2018 clients did: with no queue named, resources.cpu.architecture picks `rai_<architecture>`.
    let inferred = spec.inferred_queue();
    let queue_inferred = named.is_none() && inferred.is_some();
    let queue_name = named
        .or(inferred)
        .unwrap_or_else(|| config.queue.name.clone());
    if queue_inferred {
        say(
            args.json,
            &format!(
                "Using the queue {queue_name}, from resources.cpu.architecture (as the 2017 client did); \
                 name another with -q QUEUE or rai.queue."
            ),
        );
    }
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
        queue_inferred,
        project: Project { dir, scanned, opts },
    }))
}

/// Packs the scanned directory into a temporary file (its size and SHA-256 computed on the way), then uploads it
/// through the gateway, with a progress bar on a terminal. The file lets the upload be sent in parallel parts and
/// its digest be declared before the first byte goes out.
pub(super) async fn upload(
    client: &Client,
    json: bool,
    job: JobId,
    project: Project,
    datasets: &[String],
    chunked: bool,
) -> anyhow::Result<Result<Uploaded, u8>> {
    let project = if chunked {
        match send_chunks(client, json, job, project, datasets).await? {
            Chunked::Sent(done) => return Ok(done),
            Chunked::Unsupported(project) => project,
        }
    } else {
        project
    };
    let bar = progress_bar(json);
    let file =
        tempfile::NamedTempFile::new().context("cannot make a temporary file for the archive")?;
    let packed = {
        let Project { dir, scanned, opts } = project;
        let bar = bar.clone();
        let writer = HashingWriter::new(
            file.reopen()
                .context("cannot reopen the temporary archive")?,
        );
        tokio::task::spawn_blocking(move || {
            let mut writer = std::io::BufWriter::with_capacity(1 << 20, writer);
            let mut last = std::time::Instant::now();
            let summary = rai_common::archive::pack_scanned(
                &dir,
                scanned,
                &mut writer,
                &opts,
                |p: PackProgress| {
                    if let Some(bar) = &bar {
                        bar.set_length(p.bytes_total);
                        bar.set_position(p.bytes_done);
                    } else if last.elapsed() > Duration::from_secs(2) && p.bytes_total > 0 {
                        last = std::time::Instant::now();
                        eprintln!("✱ Packed {} of {} bytes.", p.bytes_done, p.bytes_total);
                    }
                },
            );
            let hashed = writer.into_inner().map_err(|e| e.into_error())?.finish()?;
            Ok::<_, std::io::Error>(summary.map(|s| (s, hashed)))
        })
        .await
        .context("the packer failed")?
        .context("cannot write the temporary archive")?
    };
    let (summary, (size, sha256)) = match packed {
        Ok(done) => done,
        Err(e) => {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            eprintln!("rai: {e}");
            return Ok(Err(exit::USAGE));
        }
    };
    say(json, "Uploading your project directory...");
    if let Some(bar) = &bar {
        bar.set_length(size);
        bar.set_position(0);
    }
    let progress: crate::client::upload::Progress = {
        let bar = bar.clone();
        std::sync::Arc::new(move |n| {
            if let Some(bar) = &bar {
                bar.inc(n);
            }
        })
    };
    let archive = Archive {
        path: file.path(),
        size,
        sha256: sha256.clone(),
    };
    let sent = client.upload(&job, &archive, datasets, progress).await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if let Err(e) = sent {
        return Ok(Err(refused("cannot upload the project", &e)));
    }
    Ok(Ok(Uploaded {
        key: upload_key(client.user(), &job),
        shown_size: size,
        size,
        sha256,
        summary,
    }))
}

/// What came of sending the project as chunks.
enum Chunked {
    Sent(Result<Uploaded, u8>),
    /// The gateway is older: the project goes as an archive.
    Unsupported(Project),
}

/// Describes the project as a manifest (reading only the files its index does not know as they are), declares it,
/// and sends the chunks the gateway lacks.
async fn send_chunks(
    client: &Client,
    json: bool,
    job: JobId,
    project: Project,
    datasets: &[String],
) -> anyhow::Result<Chunked> {
    let index_path = index_path(&project.dir);
    // What is read now is sealed now, into a temporary file, so a first submit reads each file once.
    let spool = std::sync::Arc::new(
        rai_common::project::Spool::new()
            .context("cannot make a temporary file for the project's chunks")?,
    );
    // Reading a large project for the first time takes a while: say how far it got.
    let reading = reading_bar(json);
    let described = {
        let (dir, scanned) = (project.dir.clone(), project.scanned.0.clone());
        let (spool, reading) = (spool.clone(), reading.clone());
        tokio::task::spawn_blocking(move || {
            let mut index = rai_common::project::LocalIndex::load(&index_path);
            let progress = |n| {
                if let Some(bar) = &reading {
                    bar.inc(n);
                }
            };
            let described = rai_common::project::describe_sealing(
                &dir,
                &scanned,
                &mut index,
                Some(&spool),
                &progress,
            )?;
            // Only a faster next submit is lost if the index cannot be written.
            if let Err(e) = index.save(&index_path) {
                tracing::debug!(error = %e, "cannot write the project's index");
            }
            Ok::<_, rai_common::errors::ProjectError>(described)
        })
        .await
        .context("the project reader failed")?
    };
    if let Some(bar) = &reading {
        bar.finish_and_clear();
    }
    let described = match described {
        Ok(d) => d,
        Err(e) => {
            eprintln!("rai: {e}");
            return Ok(Chunked::Sent(Err(exit::USAGE)));
        }
    };
    say(json, "Uploading your project directory...");
    let bar = progress_bar(json);
    let progress: crate::client::upload::Progress = {
        let bar = bar.clone();
        std::sync::Arc::new(move |n| {
            if let Some(bar) = &bar {
                bar.inc(n);
            }
        })
    };
    let sent = client
        .send_project(
            &job,
            &project.dir,
            &described.manifest,
            datasets,
            Some(spool),
            progress,
        )
        .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let m = &described.manifest;
    let count = |f: fn(&rai_common::project::EntryKind) -> bool| {
        m.entries.iter().filter(|e| f(&e.kind)).count() as u64
    };
    match sent {
        Ok(ProjectUpload::Sent {
            input,
            chunks_sent,
            bytes_sent,
        }) => {
            tracing::debug!(chunks_sent, bytes_sent, "sent the project's missing chunks");
            let summary = PackSummary {
                files: count(|k| matches!(k, rai_common::project::EntryKind::File { .. })),
                dirs: count(|k| matches!(k, rai_common::project::EntryKind::Dir)),
                links: count(|k| matches!(k, rai_common::project::EntryKind::Link { .. })),
                bytes: m.files().map(|(_, size, _)| size).sum(),
                skipped: project.scanned.1.clone(),
            };
            Ok(Chunked::Sent(Ok(Uploaded {
                shown_size: summary.bytes,
                key: input.key,
                size: input.size,
                sha256: input.sha256,
                summary,
            })))
        }
        Ok(ProjectUpload::Unsupported) => Ok(Chunked::Unsupported(project)),
        Err(e) => Ok(Chunked::Sent(Err(refused("cannot upload the project", &e)))),
    }
}

/// Where the index of the project in `dir` is kept: the user's cache, one file per project folder.
fn index_path(dir: &std::path::Path) -> PathBuf {
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let name = rai_common::project::ChunkId::of(canonical.as_os_str().as_encoded_bytes());
    rai_common::paths::cache_dir()
        .join("index")
        .join(format!("{name}.json"))
}

/// Says why the gateway did not take the job and returns the exit code: a refusal (the account, the course's
/// policy, the rate) is [`exit::REJECTED`], as when a worker refuses; anything else (no gateway reachable) is
/// [`exit::USAGE`].
pub(super) fn refused(what: &str, e: &crate::ClientError) -> u8 {
    match e.status() {
        Some(status) if status.is_client_error() => {
            eprintln!("✱ Job rejected: {e}");
            exit::REJECTED
        }
        _ => {
            eprintln!("rai: {what}: {e}");
            exit::USAGE
        }
    }
}

/// A spinner with the bytes read so far while the project is described, on a terminal.
fn reading_bar(json: bool) -> Option<indicatif::ProgressBar> {
    if json || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} reading your project: {bytes} ({bytes_per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(bar)
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
