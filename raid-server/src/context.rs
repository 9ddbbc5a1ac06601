//! What every job on this worker shares: its name and configuration, the Docker engine, the queues it serves, the
//! store, the event bus, the account registry and the GPUs. Built once by [`crate::setup`].

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bollard::Docker;
use rai_backends::events::EventBus;
use rai_backends::queue::JobQueue;
use rai_backends::store::ObjectStore;
use rai_common::Config;
use rai_common::account::{Registry, VerifyingKey};
use tokio::sync::RwLock;

use crate::gpu::GpuPool;

/// Everything jobs share on this worker.
pub struct WorkerContext {
    pub name: String,
    pub config: Config,
    pub docker: Docker,
    /// The queues this worker serves; a job is acked, extended or released on the queue it came from.
    pub queues: Vec<Arc<dyn JobQueue>>,
    pub store: Arc<dyn ObjectStore>,
    pub bus: EventBus,
    /// The gateways whose attested jobs this worker runs: `raid.gateway_keys`, and the embedded gateway's own.
    pub gateway_keys: Vec<VerifyingKey>,
    /// Reloaded when its file changes or on SIGHUP.
    pub registry: Arc<RwLock<Registry>>,
    pub gpus: GpuPool,
    /// Samples the GPUs while jobs use them (`raid.gpu.sample_every`).
    pub sampler: crate::gpu::sampler::GpuSampler,
    /// Jobs this worker finished (any status), for its log line at exit.
    pub completed: AtomicU64,
    /// The ids of the jobs running here now, for the heartbeat (`rai workers`).
    pub running_jobs: std::sync::Mutex<Vec<String>>,
    /// The ids of the jobs this worker holds, each with the id of the queue message it came in, from just before it
    /// claims one to when its container and directory are gone: a container of this worker's whose job is not among
    /// them is a stray (see [`crate::worker`]'s sweep).
    pub held_jobs: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Chunks and files of chunked uploads kept between jobs (`raid.cache_bytes`).
    pub cache: Arc<crate::cache::ContentCache>,
}

impl WorkerContext {
    /// Where this worker makes its job directories: a folder of its own under `raid.work_dir`, so that what a
    /// crashed run left behind can be removed at the next start without touching another worker's jobs on the same
    /// machine.
    pub fn jobs_dir(&self) -> PathBuf {
        jobs_dir(&self.config.raid.work_dir, &self.name)
    }

    /// Where this worker keeps its [`crate::cache::ContentCache`]: beside its job directories (the same file system,
    /// so files can be hard-linked), not in them (those are emptied at start).
    pub fn cache_dir(config: &Config, name: &str) -> PathBuf {
        let mut dir = jobs_dir(&config.raid.work_dir, name).into_os_string();
        dir.push(".cache");
        PathBuf::from(dir)
    }
}

/// `raid.work_dir/<name>`, with the name's odd characters made `_`.
fn jobs_dir(work_dir: &std::path::Path, name: &str) -> PathBuf {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    work_dir.join(name)
}
