//! The job container: one locked-down container per job, each build command run in it with `docker exec`.
//!
//! The container's own process only keeps it alive (it ignores SIGTERM, so a cancel's SIGTERM reaches the job's
//! processes and not the container). Commands run as exec processes because exec output is streamed straight to us
//! and never passes through Docker's log driver, the known bottleneck for noisy jobs; and one container per job
//! keeps `/tmp` and the environment the same from one command to the next, as in the 2017 RAI.
//!
//! The sandbox: `/src` read-only, `/build` writable and the working directory, read-only root with a small tmpfs
//! `/tmp`, no network unless allowed, every capability dropped, no-new-privileges, a non-root user, memory (swap
//! equal to memory), CPU, pids and open-file limits, an init process so signals behave, GPUs by device id through
//! device requests, and optionally another runtime (gVisor's runsc).
//!
//! Over 450 lines: the container's body and its lifecycle share the Docker client and the spec.

use std::collections::HashMap;
use std::path::PathBuf;

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, DeviceRequest, HostConfig, HostConfigLogConfig, Mount, MountType,
    ResourcesUlimits,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures::StreamExt;

use crate::error::SandboxError;
use crate::job::JOB_LABEL;

/// The Docker engine at `host` (`unix:///path/docker.sock`, `tcp://host:port`), or the usual one (`DOCKER_HOST`,
/// else `/var/run/docker.sock`).
pub fn connect(host: Option<&str>) -> Result<Docker, bollard::errors::Error> {
    match host {
        Some(host) => Docker::connect_with_host(host),
        None => Docker::connect_with_local_defaults(),
    }
}

/// Everything a job container is made from.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub name: String,
    pub image: String,
    pub src_dir: PathBuf,
    pub build_dir: PathBuf,
    /// `uid:gid`.
    pub user: String,
    pub shell: String,
    pub memory_bytes: u64,
    pub cpus: f64,
    pub pids: u32,
    pub nofile: u32,
    /// The Docker network of a job allowed one (see [`network`]); `None`: no network at all.
    pub network: Option<String>,
    pub tmp_bytes: u64,
    pub gpus: Vec<String>,
    pub runtime: Option<String>,
    pub env: Vec<String>,
    pub labels: HashMap<String, String>,
    /// A host folder holding the gate FIFO of a command started ahead ([`Sandbox::start_gated`]), mounted
    /// read-only at [`GATE_DIR`]; `None`: no command is started ahead.
    pub gate_dir: Option<PathBuf>,
    /// Capabilities given back after every one is dropped (`raid.gpu.profiling: capability`: `SYS_ADMIN`).
    pub cap_add: Vec<String>,
    /// Course datasets mounted read-only at `/data/NAME` (name, host folder).
    pub datasets: Vec<(String, PathBuf)>,
}

/// Where the gate folder is mounted in the container.
pub const GATE_DIR: &str = "/.rai-gate";
/// The gate FIFO's name in the gate folder.
pub const GATE_FIFO: &str = "go";

impl SandboxSpec {
    /// The limit that would reach Docker as a zero ("no limit"), if any: the last guard after the policy's floors.
    pub fn unbounded(&self) -> Option<&'static str> {
        let body = self.container_body();
        let host = body.host_config.as_ref()?;
        if host.memory.unwrap_or(0) <= 0 || host.memory_swap.unwrap_or(0) <= 0 {
            Some("memory")
        } else if host.nano_cpus.unwrap_or(0) <= 0 {
            Some("CPU")
        } else if host.pids_limit.unwrap_or(0) <= 0 {
            Some("process")
        } else if self.tmp_bytes == 0 {
            Some("/tmp size")
        } else {
            None
        }
    }

    /// The container body Docker is asked for.
    pub fn container_body(&self) -> ContainerCreateBody {
        let bind = |source: &PathBuf, target: &str, read_only: bool| Mount {
            target: Some(target.to_string()),
            source: Some(source.display().to_string()),
            typ: Some(MountType::BIND),
            read_only: Some(read_only),
            ..Default::default()
        };
        let device_requests = (!self.gpus.is_empty()).then(|| {
            vec![DeviceRequest {
                driver: Some("nvidia".into()),
                device_ids: Some(self.gpus.clone()),
                capabilities: Some(vec![vec!["gpu".into(), "compute".into(), "utility".into()]]),
                ..Default::default()
            }]
        });
        let host = HostConfig {
            mounts: Some(
                [
                    Some(bind(&self.src_dir, "/src", true)),
                    Some(bind(&self.build_dir, "/build", false)),
                    self.gate_dir.as_ref().map(|g| bind(g, GATE_DIR, true)),
                ]
                .into_iter()
                .flatten()
                .chain(
                    self.datasets
                        .iter()
                        .map(|(name, dir)| bind(dir, &format!("/data/{name}"), true)),
                )
                .collect(),
            ),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_string(),
                format!("rw,nosuid,nodev,size={},mode=1777", self.tmp_bytes),
            )])),
            readonly_rootfs: Some(true),
            network_mode: Some(self.network.clone().unwrap_or_else(|| "none".into())),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: (!self.cap_add.is_empty()).then(|| self.cap_add.clone()),
            security_opt: Some(vec!["no-new-privileges".into()]),
            memory: Some(self.memory_bytes as i64),
            memory_swap: Some(self.memory_bytes as i64),
            nano_cpus: Some((self.cpus * 1e9) as i64),
            pids_limit: Some(self.pids as i64),
            ulimits: Some(vec![ResourcesUlimits {
                name: Some("nofile".into()),
                soft: Some(self.nofile as i64),
                hard: Some(self.nofile as i64),
            }]),
            init: Some(true),
            runtime: self.runtime.clone(),
            device_requests,
            // Exec output never passes through the log driver; the keep-alive process prints nothing.
            log_config: Some(HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            auto_remove: Some(false),
            ..Default::default()
        };
        // Always set, last (Docker keeps the last of a repeated name): the job's own GPUs or `void`, whatever the
        // image or the host's default runtime would expose.
        let mut env = self.env.clone();
        env.retain(|e| !e.starts_with("NVIDIA_VISIBLE_DEVICES="));
        env.push(format!(
            "NVIDIA_VISIBLE_DEVICES={}",
            crate::gpu::visible_devices(&self.gpus)
        ));
        ContainerCreateBody {
            image: Some(self.image.clone()),
            user: Some(self.user.clone()),
            working_dir: Some("/build".into()),
            env: Some(env),
            // Keep the container alive, deaf to SIGTERM, so a cancel's SIGTERM goes to the job's processes only.
            cmd: Some(vec![
                self.shell.clone(),
                "-c".into(),
                "trap '' TERM; while :; do sleep 3600; done".into(),
            ]),
            labels: Some(self.labels.clone()),
            // Not only `network_mode: none`: without this, Docker sets the container's network namespace up through
            // a re-run of its own daemon binary (libnetwork's set-key hook) at every start, about 0.1 CPU-second
            // more per job for the same lone loopback (measured 2026-12-08: 0.11 against 0.21 s per start).
            network_disabled: Some(self.network.is_none()),
            host_config: Some(host),
            ..Default::default()
        }
    }
}

/// A running job container.
#[derive(Clone)]
pub struct Sandbox {
    docker: Docker,
    pub name: String,
    id: String,
    shell: String,
    user: String,
    memory_bytes: u64,
}

/// Which stream a piece of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// The output stream of an attached `docker exec`.
type ExecOutput = std::pin::Pin<
    Box<
        dyn futures::Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>>
            + Send,
    >,
>;

/// A started `docker exec` process, its output not yet read.
struct Exec {
    docker: Docker,
    id: String,
    output: Option<ExecOutput>,
}

impl Exec {
    /// Sends the output to `tx` until the process ends; returns its exit code.
    async fn pump(
        self,
        tx: tokio::sync::mpsc::Sender<(Stream, bytes::Bytes)>,
    ) -> Result<Option<i64>, SandboxError> {
        if let Some(mut output) = self.output {
            while let Some(chunk) = output.next().await {
                match chunk {
                    Ok(bollard::container::LogOutput::StdOut { message })
                    | Ok(bollard::container::LogOutput::Console { message }) => {
                        let _ = tx.send((Stream::Stdout, message)).await;
                    }
                    Ok(bollard::container::LogOutput::StdErr { message }) => {
                        let _ = tx.send((Stream::Stderr, message)).await;
                    }
                    Ok(_) => {}
                    // The stream ends with an error when the container is killed under it.
                    Err(_) => break,
                }
            }
        }
        let inspect = self
            .docker
            .inspect_exec(&self.id)
            .await
            .map_err(SandboxError::Exec)?;
        Ok(inspect.exit_code)
    }
}

/// A command started ahead and held at its gate ([`Sandbox::start_gated`]).
pub struct GatedCommand {
    exec: Exec,
    /// The gate FIFO, on the host.
    gate: PathBuf,
}

impl GatedCommand {
    /// Opens the gate and runs the command as [`Sandbox::run`] does.
    pub async fn run(
        self,
        tx: tokio::sync::mpsc::Sender<(Stream, bytes::Bytes)>,
    ) -> Result<Option<i64>, SandboxError> {
        // Read and write, so opening never blocks; held open until the command ends, so the line written stays in
        // the pipe even if the process has not opened its end yet.
        let gate = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.gate)
            .and_then(|mut f| {
                std::io::Write::write_all(&mut f, b"go\n")?;
                Ok(f)
            })
            .map_err(SandboxError::Gate)?;
        let ran = self.exec.pump(tx).await;
        drop(gate);
        ran
    }
}

/// Makes the gate FIFO `gate_dir/go` (readable by the job's user). Only a worker starts commands ahead, and workers
/// run on Linux; `rai run --local` (any system) never does.
#[cfg(unix)]
pub fn make_gate(gate_dir: &std::path::Path) -> std::io::Result<PathBuf> {
    use rustix::fs::{CWD, FileType, Mode};
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(gate_dir)?;
    std::fs::set_permissions(gate_dir, std::fs::Permissions::from_mode(0o755))?;
    let fifo = gate_dir.join(GATE_FIFO);
    rustix::fs::mknodat(CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o644), 0)?;
    // The mode is masked by the umask at creation.
    std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o644))?;
    Ok(fifo)
}

impl Sandbox {
    /// Creates and starts the container. A container that fails to start is removed before the error returns.
    pub async fn start(docker: &Docker, spec: &SandboxSpec) -> Result<Sandbox, SandboxError> {
        if let Some(limit) = spec.unbounded() {
            return Err(SandboxError::Unbounded(limit));
        }
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let created = match docker
            .create_container(Some(options.clone()), spec.container_body())
            .await
        {
            // The name is the job's own and the caller holds the job's claim, so a container already bearing it
            // is an earlier run's: one whose worker was killed while Docker was still making it, after that
            // worker's successor had cleared its leftovers. It holds nothing of this run; it goes.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => {
                tracing::warn!(container = %spec.name, "removing a container an earlier run of this job left behind");
                remove_container(docker, &spec.name).await;
                docker
                    .create_container(Some(options), spec.container_body())
                    .await
            }
            other => other,
        }
        .map_err(SandboxError::Create)?;
        let sandbox = Sandbox {
            docker: docker.clone(),
            name: spec.name.clone(),
            id: created.id,
            shell: spec.shell.clone(),
            user: spec.user.clone(),
            memory_bytes: spec.memory_bytes,
        };
        if let Err(e) = docker.start_container(&spec.name, None).await {
            sandbox.remove().await;
            return Err(SandboxError::Start(e));
        }
        Ok(sandbox)
    }

    /// Runs `command` with the shell, sending its output to `tx` as it comes; returns the exit code (`None` when
    /// the process was killed with the container). A full `tx` slows the command down instead of buffering.
    pub async fn run(
        &self,
        command: &str,
        tx: tokio::sync::mpsc::Sender<(Stream, bytes::Bytes)>,
    ) -> Result<Option<i64>, SandboxError> {
        let cmd = vec![self.shell.clone(), "-c".into(), command.to_string()];
        self.exec(cmd).await?.pump(tx).await
    }

    /// Starts `command` now, held at a gate until [`GatedCommand::run`] opens it: the `docker exec` (tens of
    /// milliseconds: runc starting a process in the container) is paid while the job waits for its slot, not after.
    /// The process waits reading the gate FIFO (the container's spec must carry `gate_dir`), then becomes the
    /// command, exactly as [`Sandbox::run`] would run it.
    pub async fn start_gated(
        &self,
        command: &str,
        gate: PathBuf,
    ) -> Result<GatedCommand, SandboxError> {
        // `sh -c SCRIPT SHELL COMMAND`: $0 is the shell, $1 the command; a closed gate runs nothing.
        let script =
            format!("read -r _ < {GATE_DIR}/{GATE_FIFO} || exit 125; exec \"$0\" -c \"$1\"");
        let cmd = vec![
            self.shell.clone(),
            "-c".into(),
            script,
            self.shell.clone(),
            command.to_string(),
        ];
        Ok(GatedCommand {
            exec: self.exec(cmd).await?,
            gate,
        })
    }

    async fn exec(&self, cmd: Vec<String>) -> Result<Exec, SandboxError> {
        let exec = self
            .docker
            .create_exec(
                &self.name,
                CreateExecOptions::<String> {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(false),
                    cmd: Some(cmd),
                    user: Some(self.user.clone()),
                    working_dir: Some("/build".into()),
                    ..Default::default()
                },
            )
            .await
            .map_err(SandboxError::Exec)?;
        let output = match self
            .docker
            .start_exec(&exec.id, None)
            .await
            .map_err(SandboxError::Exec)?
        {
            StartExecResults::Attached { output, .. } => Some(output),
            StartExecResults::Detached => None,
        };
        Ok(Exec {
            docker: self.docker.clone(),
            id: exec.id,
            output,
        })
    }

    /// Whether the kernel's OOM killer struck in this container. Docker marks `OOMKilled` only when the
    /// container's main process dies, not an exec'd one, so the memory cgroup's own counter is read first.
    pub async fn oom_killed(&self) -> bool {
        if let Some(n) = cgroup_oom_kills(&self.id) {
            return n > 0;
        }
        self.docker
            .inspect_container(&self.name, None)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.oom_killed)
            .unwrap_or(false)
    }

    /// The memory limit, for messages.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }

    /// Sends SIGTERM to every process of the job (not the container's keep-alive, which ignores it).
    pub async fn terminate_processes(&self) {
        let exec = self
            .docker
            .create_exec(
                &self.name,
                CreateExecOptions::<String> {
                    cmd: Some(vec![
                        self.shell.clone(),
                        "-c".into(),
                        "kill -TERM -1".into(),
                    ]),
                    user: Some(self.user.clone()),
                    ..Default::default()
                },
            )
            .await;
        if let Ok(exec) = exec {
            let _ = self
                .docker
                .start_exec(
                    &exec.id,
                    Some(bollard::exec::StartExecOptions {
                        detach: true,
                        ..Default::default()
                    }),
                )
                .await;
        }
    }

    /// Kills every process in the container at once.
    pub async fn kill(&self) {
        let _ = self
            .docker
            .kill_container(
                &self.name,
                Some(
                    KillContainerOptionsBuilder::default()
                        .signal("SIGKILL")
                        .build(),
                ),
            )
            .await;
    }

    /// Removes the container, killing it if needed. Never fails: a container that cannot be removed now is found
    /// by its label and removed at the worker's next start.
    pub async fn remove(&self) {
        remove_container(&self.docker, &self.name).await;
    }
}

/// The `oom_kill` count of a container's memory cgroup (cgroup v1 or v2, cgroupfs or systemd driver), if found.
fn cgroup_oom_kills(id: &str) -> Option<u64> {
    let candidates = [
        (
            format!("/sys/fs/cgroup/memory/docker/{id}/memory.oom_control"),
            "oom_kill ",
        ),
        (
            format!("/sys/fs/cgroup/memory/system.slice/docker-{id}.scope/memory.oom_control"),
            "oom_kill ",
        ),
        (
            format!("/sys/fs/cgroup/system.slice/docker-{id}.scope/memory.events"),
            "oom_kill ",
        ),
        (
            format!("/sys/fs/cgroup/docker/{id}/memory.events"),
            "oom_kill ",
        ),
    ];
    candidates.iter().find_map(|(path, key)| {
        let text = std::fs::read_to_string(path).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|n| n.trim().parse().ok())
    })
}

/// Every container carrying `label` (`key=value`), running or not; none when the engine cannot list them.
async fn labelled(docker: &Docker, label: &str) -> Vec<bollard::models::ContainerSummary> {
    use bollard::query_parameters::ListContainersOptionsBuilder;
    let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(options))
        .await
        .unwrap_or_default()
}

/// Removes every container carrying `label` (`key=value`), running or not; returns how many it removed.
pub async fn remove_labelled(docker: &Docker, label: &str) -> usize {
    let mut removed = 0;
    for id in labelled(docker, label)
        .await
        .into_iter()
        .filter_map(|c| c.id)
    {
        tracing::warn!(container = %id, %label, "removing a job container of an earlier run");
        remove_container(docker, &id).await;
        removed += 1;
    }
    removed
}

/// Removes the containers labelled `label` whose job (their [`JOB_LABEL`]) `held` says is no longer held, by id (a
/// new container of the same job, made since the listing, stays). Returns how many went.
pub async fn remove_strays(docker: &Docker, label: &str, held: impl Fn(&str) -> bool) -> usize {
    let mut removed = 0;
    for c in labelled(docker, label).await {
        let job = c.labels.as_ref().and_then(|l| l.get(JOB_LABEL)).cloned();
        let (Some(id), Some(job)) = (c.id, job) else {
            continue;
        };
        if held(&job) {
            continue;
        }
        tracing::warn!(container = %id, job = %job, "removing a job container no job of this worker holds");
        remove_container(docker, &id).await;
        removed += 1;
    }
    removed
}

/// Removes a container by name, forcefully.
pub async fn remove_container(docker: &Docker, name: &str) {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(name, Some(options)).await {
        Ok(()) => {}
        // Already gone: removal is idempotent.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(e) => tracing::warn!(container = name, error = %e, "could not remove a job container"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SandboxSpec {
        SandboxSpec {
            name: "rai-job-x".into(),
            image: "img".into(),
            src_dir: "/jobs/x/src".into(),
            build_dir: "/jobs/x/build".into(),
            user: "1000:1000".into(),
            shell: "/bin/sh".into(),
            memory_bytes: 64 << 20,
            cpus: 1.5,
            pids: 256,
            nofile: 1024,
            network: None,
            tmp_bytes: 64 << 20,
            gpus: vec![],
            runtime: None,
            env: vec!["RAI=1".into()],
            labels: HashMap::new(),
            gate_dir: None,
            cap_add: vec![],
            datasets: vec![],
        }
    }

    #[test]
    fn the_sandbox_is_locked_down() {
        let body = spec().container_body();
        assert_eq!(
            body.network_disabled,
            Some(true),
            "no network set-up at all"
        );
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges".to_string()])
        );
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(
            (host.memory, host.memory_swap),
            (Some(64 << 20), Some(64 << 20))
        );
        assert_eq!(host.nano_cpus, Some(1_500_000_000));
        assert_eq!(host.pids_limit, Some(256));
        assert_eq!(host.init, Some(true));
        assert!(
            host.device_requests.is_none(),
            "no GPUs asked, no device request"
        );
        let mounts = host.mounts.unwrap();
        assert_eq!(
            (mounts[0].target.as_deref(), mounts[0].read_only),
            (Some("/src"), Some(true))
        );
        assert_eq!(
            (mounts[1].target.as_deref(), mounts[1].read_only),
            (Some("/build"), Some(false))
        );
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        assert_eq!(body.working_dir.as_deref(), Some("/build"));
    }

    #[test]
    fn datasets_are_mounted_read_only_under_data() {
        let mut s = spec();
        s.datasets = vec![("imagenet-mini".into(), "/srv/data/imagenet-mini".into())];
        let mounts = s.container_body().host_config.unwrap().mounts.unwrap();
        let data = mounts.last().unwrap();
        assert_eq!(
            (
                data.source.as_deref(),
                data.target.as_deref(),
                data.read_only
            ),
            (
                Some("/srv/data/imagenet-mini"),
                Some("/data/imagenet-mini"),
                Some(true)
            )
        );
    }

    #[test]
    fn a_zero_limit_never_reaches_docker() {
        assert_eq!(spec().unbounded(), None);
        let mut s = spec();
        s.memory_bytes = 0;
        assert_eq!(s.unbounded(), Some("memory"));
        let mut s = spec();
        s.cpus = 0.000_000_000_1;
        assert_eq!(s.unbounded(), Some("CPU"));
        let mut s = spec();
        s.pids = 0;
        assert_eq!(s.unbounded(), Some("process"));
    }

    #[test]
    fn gpus_are_requested_by_device_id() {
        let mut s = spec();
        s.gpus = vec!["0".into(), "2".into()];
        s.runtime = Some("runsc".into());
        let host = s.container_body().host_config.unwrap();
        let req = &host.device_requests.unwrap()[0];
        assert_eq!(req.driver.as_deref(), Some("nvidia"));
        assert_eq!(req.device_ids, Some(vec!["0".to_string(), "2".to_string()]));
        assert_eq!(
            req.capabilities,
            Some(vec![vec![
                "gpu".to_string(),
                "compute".to_string(),
                "utility".to_string()
            ]])
        );
        assert_eq!(host.runtime.as_deref(), Some("runsc"));
    }
}
