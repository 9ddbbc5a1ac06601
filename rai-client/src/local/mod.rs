//! `rai run --local`: a project's build file run in the Docker engine of the student's own machine, in the sandbox
//! the course's workers use, before it spends a place in the queue.
//!
//! The sandbox is the workers' own library ([`rai_sandbox`]): the same policy turns the build file's requests into
//! limits (the course defaults this `rai` was built with), the same container body locks the job down, `/src` is
//! made by packing and unpacking the project with the same rules as an upload, and the same words end a job. The
//! run speaks in job events ([`EventBody`]), which `rai` prints as it prints a queued job's, so the student reads
//! the same lines and gets the same exit code. What differs is said: the image allow-list is the course's to judge
//! (any local image runs), a dataset is a local copy named with `--dataset NAME=DIR`, a job allowed the network gets
//! Docker's default bridge, and `/build` is left in a folder instead of stored.
//!
//! # Layout
//! - this file: [`LocalRun`], the steps before the first command, and the job's end.
//! - [`source`]: `/src`, made from the project as a worker makes it from the upload.
//! - [`commands`]: the command loop: output, time limit, Ctrl-C, `/build` quota, out of memory.

mod commands;
mod source;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use rai_common::event::{EventBody, JobStatus};
use rai_common::{BuildSpec, Config, JobId};
use rai_sandbox::{Docker, DockerError, JobFolders, JobSandbox, Sandbox, SandboxError};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One local run of a project.
#[derive(Debug, Clone)]
pub struct LocalRun {
    /// The project directory (mounted, as packed, at `/src`).
    pub project: PathBuf,
    /// Its build file, read and checked.
    pub spec: BuildSpec,
    /// The configuration: its `raid` section holds the course's default limits.
    pub config: Config,
    /// GPUs to give the job; `None`: as many as the build file asks for.
    pub gpus: Option<u32>,
    /// Local copies of course datasets, by name.
    pub datasets: BTreeMap<String, PathBuf>,
    /// The folder mounted at `/build` and left there: new or empty.
    pub output: PathBuf,
    /// The Docker engine (`unix:///...`, `tcp://...`); `None`: `DOCKER_HOST`, else the usual socket.
    pub docker_host: Option<String>,
    /// The job's id, shown in its lines and set as `RAI_JOB_ID`.
    pub job: JobId,
}

/// Why a local run could not run the job at all (a job that ran and failed ends with its own status instead).
#[derive(Debug, Error)]
pub enum LocalError {
    #[error(
        "cannot reach a Docker engine ({source}). rai run --local runs your project in Docker on this machine: \
         install Docker (https://docs.docker.com/engine/install/, or Docker Desktop) and start it, and make sure \
         you may use it (on Linux: be in the docker group); DOCKER_HOST names another engine"
    )]
    NoDocker {
        #[source]
        source: DockerError,
    },
    #[error(
        "this machine's Docker engine cannot give containers GPUs ({source}); install the NVIDIA Container Toolkit \
         (nvidia-container-toolkit) and restart Docker, or run without GPUs with --gpus 0"
    )]
    NoGpuRuntime {
        #[source]
        source: SandboxError,
    },
    #[error(
        "{} is not empty; rai run --local leaves /build in a new or empty folder: choose another with -o DIR",
        .0.display()
    )]
    OutputNotEmpty(PathBuf),
    #[error("cannot make the folder {}: {source}", path.display())]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Source(#[from] source::SourceError),
    #[error(
        "commands.build_image is built only by the course's workers; build the image here with \
         `docker build -t NAME -f {0} .` and name it in rai.image to run locally"
    )]
    BuildImage(String),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The build file asks for what the policy does not allow: the job's own fault, so the job ends `rejected`
    /// with this reason, as a worker would end it, rather than as an error of rai's.
    #[error(transparent)]
    Refused(#[from] rai_sandbox::policy::PolicyError),
    #[error("the job's events could not be shown: rai stopped reading them")]
    Closed,
}

/// How the job ended.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalEnd {
    pub status: JobStatus,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
}

/// Where the job's events go.
pub(crate) struct Events(mpsc::Sender<EventBody>);

impl Events {
    async fn send(&self, body: EventBody) -> Result<(), LocalError> {
        self.0.send(body).await.map_err(|_| LocalError::Closed)
    }

    /// One of rai's own lines, as a worker writes them.
    async fn system(&self, line: &str) -> Result<(), LocalError> {
        self.send(EventBody::System {
            data: format!("✱ {line}"),
        })
        .await
    }
}

impl LocalRun {
    /// Runs the job, sending its events to `events` as they come, the last its `End`; `stop` cancelled is the
    /// student's Ctrl-C. `Err` when the job could not run at all (no Docker, a broken project, a refused policy).
    pub async fn run(
        &self,
        events: mpsc::Sender<EventBody>,
        stop: CancellationToken,
    ) -> Result<LocalEnd, LocalError> {
        let events = Events(events);
        let end = match self.prepare_and_run(&events, &stop).await {
            Ok(end) => end,
            Err(LocalError::Refused(reason)) => LocalEnd {
                status: JobStatus::Rejected,
                exit_code: None,
                reason: Some(reason.to_string()),
            },
            Err(e) => return Err(e),
        };
        events
            .send(EventBody::End {
                status: end.status,
                exit_code: end.exit_code,
                reason: end.reason.clone(),
            })
            .await?;
        Ok(end)
    }

    async fn prepare_and_run(
        &self,
        events: &Events,
        stop: &CancellationToken,
    ) -> Result<LocalEnd, LocalError> {
        let docker = rai_sandbox::container::connect(self.docker_host.as_deref())
            .map_err(|source| LocalError::NoDocker { source })?;
        docker
            .ping()
            .await
            .map_err(|source| LocalError::NoDocker { source })?;
        if let Some(build) = &self.spec.commands.build_image {
            return Err(LocalError::BuildImage(build.dockerfile().to_string()));
        }
        let asked = self.spec.gpu_count();
        let gpus = self.gpus.unwrap_or(asked);
        let mut raid = self.config.raid.clone();
        // The course's allow-list is the gateway's to judge; any image on this machine runs here.
        raid.images = vec!["**".into()];
        raid.datasets = self.datasets.clone().into_iter().collect();
        // A sweep runs here as its first combination; `rai submit` runs them all.
        let combination = self.spec.matrix.combinations().into_iter().next();
        if let Some(c) = combination
            .as_ref()
            .filter(|_| !self.spec.matrix.is_empty())
        {
            events
                .system(&format!(
                    "The build file has a matrix of {} combinations; rai run --local runs the first ({c}), \
                     rai submit runs them all.",
                    self.spec.matrix.size()
                ))
                .await?;
        }
        let mut limits = rai_sandbox::policy::resolve(&self.spec, &raid, gpus.max(asked))?;
        if gpus != asked {
            events
                .system(&format!(
                    "Running with {gpus} GPU{} (--gpus); the build file asks for {asked}.",
                    if gpus == 1 { "" } else { "s" }
                ))
                .await?;
        }
        limits.gpus = gpus;
        for note in &limits.notes {
            events.system(note).await?;
        }
        let user = make_output(&self.output, &raid.user)?;
        let source = source::SourceDir::make(&self.project, &self.config).await?;
        let image = self.spec.rai.image.clone();
        ensure_image(&docker, &image, events).await?;
        let gpu_ids: Vec<String> = (0..gpus).map(|i| i.to_string()).collect();
        let mut spec = JobSandbox {
            raid: &raid,
            limits: &limits,
            job: self.job.to_string(),
            name: format!("rai-local-{}", self.job),
            folders: JobFolders {
                src: source.path().to_path_buf(),
                build: self.output.clone(),
                gate: None,
            },
            labels: [("rai.local".to_string(), "1".to_string())].into(),
            // Docker's default network: this machine has no course network to keep jobs off.
            network: "bridge".into(),
            env: combination.map(|c| c.env()).unwrap_or_default(),
        }
        .spec(image, gpu_ids.clone());
        spec.user = user;
        let sandbox = match Sandbox::start(&docker, &spec).await {
            Ok(sandbox) => sandbox,
            Err(e @ SandboxError::Start(_)) | Err(e @ SandboxError::Create(_))
                if !gpu_ids.is_empty() && lacks_gpu_driver(&e) =>
            {
                return Err(LocalError::NoGpuRuntime { source: e });
            }
            Err(e) => return Err(e.into()),
        };
        let ran = async {
            events
                .send(EventBody::Status {
                    status: JobStatus::Running,
                    worker: Some("this machine (rai run --local)".into()),
                    detail: rai_sandbox::gpu::running_on(&gpu_ids),
                })
                .await?;
            commands::Commands {
                spec: &self.spec,
                limits: &limits,
                sandbox: &sandbox,
                build_dir: &self.output,
                cancel_grace: raid.cancel_grace.as_duration(),
            }
            .run(events, stop)
            .await
        }
        .await;
        // Whatever happened once it started, the container goes.
        sandbox.remove().await;
        drop(source);
        let end = ran?;
        events
            .system(&format!(
                "Your /build folder is in {}.",
                self.output.display()
            ))
            .await?;
        Ok(end)
    }
}

/// Makes sure `image` is on this engine, pulling it when missing, its progress as `✱` lines.
async fn ensure_image(docker: &Docker, image: &str, events: &Events) -> Result<(), LocalError> {
    let mut lines = std::pin::pin!(rai_sandbox::image::ensure(docker, image));
    while let Some(line) = lines.next().await {
        events.system(&line?).await?;
    }
    Ok(())
}

/// Whether starting a GPU container failed because the engine has no NVIDIA device driver.
fn lacks_gpu_driver(e: &SandboxError) -> bool {
    let text = e.to_string();
    text.contains("could not select device driver") || text.contains("nvidia")
}

/// Makes the `/build` folder (new or empty) and returns the `uid:gid` the job runs as: the student's own, so what the
/// job leaves is theirs; run as root, the course's job user (`fallback`), the folder writable by it as on a worker.
fn make_output(dir: &Path, fallback: &str) -> Result<String, LocalError> {
    let folder = |source| LocalError::Folder {
        path: dir.to_path_buf(),
        source,
    };
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(LocalError::OutputNotEmpty(dir.to_path_buf()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(folder)?;
        }
        Err(e) => return Err(folder(e)),
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // The folder was made by this process (or is the student's own), so its owner is who runs rai.
        let meta = std::fs::metadata(dir).map_err(folder)?;
        if meta.uid() != 0 {
            return Ok(format!("{}:{}", meta.uid(), meta.gid()));
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).map_err(folder)?;
    }
    Ok(fallback.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_is_left_only_in_a_new_or_empty_folder() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("build-x");
        let user = make_output(&out, "1000:1000").unwrap();
        assert!(out.is_dir());
        assert!(user.contains(':'), "{user}");
        // Empty still: fine again.
        make_output(&out, "1000:1000").unwrap();
        std::fs::write(out.join("a"), b"x").unwrap();
        let e = make_output(&out, "1000:1000").unwrap_err();
        assert!(matches!(e, LocalError::OutputNotEmpty(_)));
        assert!(e.to_string().contains("-o DIR"), "{e}");
    }
}
