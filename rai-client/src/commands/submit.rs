//! `rai submit` (and the 2017 form `rai -p DIR`): check, send the project ([`crate::project`]), sign, queue, and
//! follow the job; this file says each step's `✱` line and draws the progress bars.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use rai_common::account::{Profile, SigningKey};
use rai_common::api::ErrorCode;
use rai_common::archive::PackOptions;
use rai_common::build_spec::{BUILD_FILE_NAME, find_build_file};
use rai_common::job::{JobId, JobRequest};
use rai_common::{BuildSpec, Config};

use crate::Client;
use crate::cli::GlobalArgs;
use crate::context;
use crate::project::{self, ProjectDir, SendError, SendProgress, Sent};
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
    pub(super) project: ProjectDir,
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
    let uploaded = match upload(&client, args.json, job, &project, &datasets, chunked).await? {
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
        input: uploaded.input,
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
    let project = match ProjectDir::scan(dir, opts).await {
        Ok(project) => project,
        Err(e) if e.is_the_projects() => {
            eprintln!("rai: {e}");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Some(Checked {
        spec,
        config,
        profile,
        key,
        queue_name,
        queue_inferred,
        project,
    }))
}

/// Sends the project as job `job`'s input, showing how far it got, and says what went wrong: `Err` is the exit
/// code, once the student has been told why.
pub(super) async fn upload(
    client: &Client,
    json: bool,
    job: JobId,
    project: &ProjectDir,
    datasets: &[String],
    chunked: bool,
) -> anyhow::Result<Result<Sent, u8>> {
    let shown = Arc::new(Shown::new(json));
    let sent = project::send(client, job, project, datasets, chunked, shown.clone()).await;
    shown.done();
    match sent {
        Ok(sent) => Ok(Ok(sent)),
        Err(SendError::Gateway(e)) => Ok(Err(refused("cannot upload the project", &e))),
        Err(e) if e.is_the_projects() => {
            eprintln!("rai: {e}");
            Ok(Err(exit::USAGE))
        }
        Err(e) => Err(e.into()),
    }
}

/// How a send is shown: on a terminal, a spinner while the project is read and a bar while it is packed and
/// uploaded; elsewhere a `✱ Packed` line every 2 s. `--json` shows nothing.
struct Shown {
    json: bool,
    terminal: bool,
    reading: OnceLock<indicatif::ProgressBar>,
    bar: Option<indicatif::ProgressBar>,
    last_packed: Mutex<Instant>,
}

impl Shown {
    fn new(json: bool) -> Shown {
        let terminal = !json && std::io::stderr().is_terminal();
        Shown {
            json,
            terminal,
            reading: OnceLock::new(),
            bar: terminal.then(progress_bar),
            last_packed: Mutex::new(Instant::now()),
        }
    }

    fn done(&self) {
        if let Some(bar) = self.reading.get() {
            bar.finish_and_clear();
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl SendProgress for Shown {
    fn read(&self, n: u64) {
        // Reading a large project for the first time takes a while: say how far it got.
        if self.terminal {
            self.reading.get_or_init(reading_bar).inc(n);
        }
    }

    fn packed(&self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
            return;
        }
        let mut last = self.last_packed.lock().expect("not poisoned");
        if !self.json && total > 0 && last.elapsed() > Duration::from_secs(2) {
            *last = Instant::now();
            eprintln!("✱ Packed {done} of {total} bytes.");
        }
    }

    fn uploading(&self, total: Option<u64>) {
        if let Some(bar) = self.reading.get() {
            bar.finish_and_clear();
        }
        say(self.json, "Uploading your project directory...");
        if let (Some(bar), Some(total)) = (&self.bar, total) {
            bar.set_length(total);
            bar.set_position(0);
        }
    }

    fn sent(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }
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

/// A spinner with the bytes read so far while the project is described.
fn reading_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} reading your project: {bytes} ({bytes_per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}
