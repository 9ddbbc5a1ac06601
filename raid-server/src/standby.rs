//! Standby containers: a started, idle container kept ready for the next job, so that a job on a free slot does not
//! wait for Docker to start one.
//!
//! Starting a job's container costs 150-250 ms on Docker's default runtime, and several times that when a few start
//! at once on a busy machine: in a deadline rush it is most of a job's set-up and the part that depends on the
//! moment a job happens to land, not on whose it is (docs/performance.md). [`crate::job`]'s preparation hides it for
//! a job made ready while its slot is busy; a standby hides it for one leased onto a free slot.
//!
//! When a job's commands end, the worker makes a standby of that job's shape ([`SandboxSpec::shape`]: image,
//! limits, network, datasets, user; what Docker fixes when it makes a container) for the GPUs it held, in a
//! directory of its own under the jobs directory whose `src/`, `build/` and `gate/` it mounts. A job of the same
//! shape takes that directory as its job directory before its upload is fetched into it (a bind mount follows the
//! folder, not its path, so renaming the directory keeps it mounted), then, once its GPUs are known, the container:
//! renamed to the job's and given the job's environment through each exec ([`Sandbox::adopt`]). One made for other
//! GPUs is removed and the job starts its own, as without standbys. A course runs one image with one set of limits,
//! so nearly every job matches.
//!
//! At most one standby per slot is kept; a new shape replaces the oldest. A standby runs only its keep-alive: no
//! GPU use, next to no memory. Standbys carry the worker's label, so the start's clean-up removes those a crash
//! left, and [`STANDBY_LABEL`], so the stray sweep removes one that was still being made when its worker died.
//! `raid.standby: false` turns them off.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use rai_sandbox::{Sandbox, SandboxSpec};

use crate::context::WorkerContext;

/// The label of a standby container; its value is the worker's name.
pub const STANDBY_LABEL: &str = "rai.standby";
/// The longest a draining worker waits for standbys being made (each removes itself once made); one left past it
/// is removed at the worker's next start.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Why a standby could not be made (logged; the next job starts its own container).
#[derive(Debug, thiserror::Error)]
enum MakeError {
    #[error("cannot make its folders in {}: {source}", dir.display())]
    Folders {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Container(#[from] rai_sandbox::SandboxError),
}

/// A started, idle container and the directory it mounts, waiting for a job of its shape.
pub struct Standby {
    pub sandbox: Sandbox,
    /// Holds `src/`, `build/` and `gate/`, each mounted as a job's.
    pub dir: PathBuf,
    /// The GPUs it was made with.
    pub gpus: Vec<String>,
    shape: ContainerCreateBody,
}

/// This worker's standbys.
#[derive(Default)]
pub struct StandbyPool {
    state: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    /// How many may be kept (the worker's slots); 0 until the worker serves, and again once it drains.
    max: usize,
    ready: VecDeque<Standby>,
    /// Being made now.
    making: usize,
    /// The names of the standbys made and not yet taken or removed, ready or being made: the stray sweep leaves
    /// these alone.
    known: HashSet<String>,
}

impl StandbyPool {
    /// Keeps up to `max` standbys from now on (0: none).
    pub fn open(&self, max: usize) {
        self.lock().max = max;
    }

    /// Keeps none from now on and removes those kept, waiting (up to [`CLOSE_WAIT`]) for those being made, which
    /// remove themselves (the worker drains).
    pub async fn close(&self, docker: &Docker) {
        let ready: Vec<Standby> = {
            let mut state = self.lock();
            state.max = 0;
            state.ready.drain(..).collect()
        };
        for standby in ready {
            self.discard(docker, standby).await;
        }
        let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
        while self.lock().making > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Takes a standby of `spec`'s shape, if one is kept. The caller owns it: it adopts or discards it.
    pub fn take(&self, spec: &SandboxSpec) -> Option<Standby> {
        let shape = spec.shape();
        let mut state = self.lock();
        let at = state.ready.iter().position(|s| s.shape == shape)?;
        state.ready.remove(at)
    }

    /// Forgets a taken standby that now bears a job's name (the job's own hold keeps it from the sweep).
    pub fn adopted(&self, standby_name: &str) {
        self.lock().known.remove(standby_name);
    }

    /// Removes a standby's container and directory.
    pub async fn discard(&self, docker: &Docker, standby: Standby) {
        crate::sandbox::remove_container(docker, &standby.sandbox.name).await;
        self.lock().known.remove(&standby.sandbox.name);
        remove_dir(&standby.dir).await;
    }

    /// The names of the standbys kept ready now.
    pub fn ready(&self) -> Vec<String> {
        self.lock()
            .ready
            .iter()
            .map(|s| s.sandbox.name.clone())
            .collect()
    }

    /// Whether a standby container named `name` belongs to this pool (ready or being made).
    pub fn knows(&self, name: &str) -> bool {
        self.lock().known.contains(name)
    }

    /// Makes a standby like `spec` (a job's, whose commands just ended), unless the pool is full of standbys of its
    /// shape or closed. A failure is logged and costs nothing but the next job's set-up.
    pub async fn refill(&self, ctx: &WorkerContext, spec: &SandboxSpec) {
        let shape = spec.shape();
        let evicted = {
            let mut state = self.lock();
            if state.max == 0 {
                return;
            }
            let mut evicted = None;
            if state.ready.len() + state.making >= state.max {
                // Full: a standby of another shape makes room (the oldest), one of this shape means nothing to do.
                match state.ready.iter().position(|s| s.shape != shape) {
                    Some(at) => evicted = state.ready.remove(at),
                    None => return,
                }
            }
            state.making += 1;
            evicted
        };
        if let Some(old) = evicted {
            self.discard(&ctx.docker, old).await;
        }
        let made = self.make(ctx, spec).await;
        let closed = {
            let mut state = self.lock();
            match made {
                Ok(standby) if state.max > 0 => {
                    state.ready.push_back(standby);
                    None
                }
                Ok(standby) => Some(standby),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot make a standby container");
                    None
                }
            }
        };
        if let Some(standby) = closed {
            // Closed while it was made.
            self.discard(&ctx.docker, standby).await;
        }
        self.lock().making -= 1;
    }

    async fn make(&self, ctx: &WorkerContext, like: &SandboxSpec) -> Result<Standby, MakeError> {
        let id = rai_common::JobId::new();
        let name = format!("rai-standby-{id}");
        let dir = ctx.jobs_dir().join(format!("standby-{id}"));
        let folders = (dir.join("src"), dir.join("build"), dir.join("gate"));
        if let Err(source) = make_folders(&folders.0, &folders.1, &folders.2) {
            remove_dir(&dir).await;
            return Err(MakeError::Folders { dir, source });
        }
        let spec = SandboxSpec {
            name: name.clone(),
            src_dir: folders.0,
            build_dir: folders.1,
            gate_dir: Some(folders.2),
            env: Vec::new(),
            labels: [
                ("rai.worker".to_string(), ctx.name.clone()),
                (STANDBY_LABEL.to_string(), ctx.name.clone()),
            ]
            .into(),
            ..like.clone()
        };
        self.lock().known.insert(name.clone());
        match Sandbox::start(&ctx.docker, &spec).await {
            Ok(sandbox) => Ok(Standby {
                sandbox,
                dir,
                gpus: spec.gpus.clone(),
                shape: spec.shape(),
            }),
            Err(e) => {
                self.lock().known.remove(&name);
                remove_dir(&dir).await;
                Err(e.into())
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().expect("never poisoned")
    }
}

/// The folders a standby mounts, as a job's are made: `/build` writable by the job's user, the gate readable.
fn make_folders(src: &Path, build: &Path, gate: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(src)?;
    std::fs::create_dir_all(build)?;
    std::fs::set_permissions(build, std::fs::Permissions::from_mode(0o777))?;
    std::fs::create_dir_all(gate)?;
    std::fs::set_permissions(gate, std::fs::Permissions::from_mode(0o755))
}

async fn remove_dir(dir: &Path) {
    if let Err(e) = tokio::fs::remove_dir_all(dir).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %e, "could not remove a standby directory");
    }
}

/// Removes this worker's standby containers that are neither kept nor a held job's (one whose worker died while
/// Docker made it appears after the start's clean-up). `held` says whether a job id is held here.
pub async fn remove_strays(ctx: &Arc<WorkerContext>, held: impl Fn(&str) -> bool) -> usize {
    let label = format!("{STANDBY_LABEL}={}", ctx.name);
    let mut removed = 0;
    for c in rai_sandbox::container::labelled(&ctx.docker, &label).await {
        let Some(name) = c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_string())
        else {
            continue;
        };
        let kept = match name.strip_prefix("rai-job-") {
            Some(job) => held(job),
            None => ctx.standbys.knows(&name),
        };
        if kept {
            continue;
        }
        tracing::warn!(container = %name, "removing a standby container no job or standby of this worker holds");
        crate::sandbox::remove_container(&ctx.docker, &name).await;
        removed += 1;
    }
    removed
}
