//! Building a worker from its configuration: Docker, queue, store, events, registry, GPUs.

use std::sync::Arc;

use rai_backends::connect::{open_queue, open_store};
use rai_backends::events::EventBus;
use rai_common::Config;
use rai_common::account::{Registry, VerifyingKey, decode_public_key, load_gateway_key};
use tokio::sync::RwLock;

use crate::context::WorkerContext;
use crate::errors::SetupError;
use crate::gpu::GpuPool;

/// Connects everything a worker needs, with an error that says which part failed.
pub async fn context(config: Config) -> Result<WorkerContext, SetupError> {
    let docker = crate::sandbox::connect(config.raid.docker.as_deref())
        .map_err(SetupError::Docker)?
        .negotiate_version()
        .await
        .map_err(SetupError::DockerUnreachable)?;
    if config.raid.queues.is_empty() {
        return Err(SetupError::NoQueues);
    }
    let mut queues = Vec::new();
    for name in &config.raid.queues {
        let queue = open_queue(&config, name, None)
            .await
            .map_err(|source| SetupError::Queue {
                name: name.clone(),
                source,
            })?;
        queues.push(queue);
    }
    let store = open_store(&config, None, true)
        .await
        .map_err(SetupError::Store)?;
    let bus = EventBus::connect(
        rai_backends::redis_link::RedisTarget::events(&config),
        config.events.retention.as_duration(),
    )
    .await
    .map_err(SetupError::Events)?;
    let registry =
        Registry::load(&config.raid.registry).map_err(|source| SetupError::Registry {
            path: config.raid.registry.clone(),
            source: Box::new(source),
        })?;
    if registry.users.is_empty() {
        tracing::warn!(path = %config.raid.registry.display(), "the account registry is empty: every job will be refused");
    }
    std::fs::create_dir_all(&config.raid.work_dir).map_err(|source| SetupError::WorkDir {
        path: config.raid.work_dir.clone(),
        source,
    })?;
    let builds_online = config.raid.build_images.allowed && config.raid.build_images.network;
    if config.raid.limits.network || builds_online {
        // Jobs (or image builds) may use the network here: only behind the job network's rules (sandbox::network).
        let network = crate::sandbox::network::JobNetwork::new(&config.raid.job_network)
            .map_err(SetupError::Network)?;
        network.ensure(&docker).await.map_err(SetupError::Network)?;
    }
    let gateway_keys = trusted_gateways(&config)?;
    let gpus = GpuPool::detect(config.raid.gpus.as_ref(), &config.raid.gpu.nvidia_smi);
    let name = config
        .raid
        .name
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "raid".into());
    let sampler = crate::gpu::sampler::GpuSampler::new(
        config.raid.gpu.nvidia_smi.clone(),
        config.raid.gpu.sample_every.as_duration(),
    );
    let cache_dir = WorkerContext::cache_dir(&config, &name);
    let cache = crate::cache::ContentCache::open(&cache_dir, config.raid.cache_bytes.0).map_err(
        |source| SetupError::Cache {
            path: cache_dir.clone(),
            source,
        },
    )?;
    Ok(WorkerContext {
        cache: Arc::new(cache),
        name,
        config,
        docker,
        queues,
        store,
        bus,
        gateway_keys,
        registry: Arc::new(RwLock::new(registry)),
        gpus,
        sampler,
        completed: Default::default(),
        running_jobs: Default::default(),
        held_jobs: Default::default(),
    })
}

/// Slots: `raid.concurrency`, else one per GPU, else 1.
pub fn slots(ctx: &WorkerContext) -> usize {
    ctx.config
        .raid
        .concurrency
        .map(|c| c.max(1) as usize)
        .unwrap_or_else(|| (ctx.gpus.count() as usize).max(1))
}

/// The gateways whose attested jobs this worker runs: `raid.gateway_keys`, and its own embedded gateway's key.
pub fn trusted_gateways(config: &Config) -> Result<Vec<VerifyingKey>, SetupError> {
    let mut keys = Vec::new();
    for text in &config.raid.gateway_keys {
        keys.push(decode_public_key(text).ok_or_else(|| SetupError::GatewayKey(text.clone()))?);
    }
    if config.gateway.listen.is_some()
        && let Some(path) = &config.gateway.attestation_key
    {
        let key = load_gateway_key(path).map_err(|e| SetupError::AttestationKey(Box::new(e)))?;
        keys.push(key.verifying_key());
    }
    if keys.is_empty() && !config.raid.accept_unattested {
        tracing::warn!(
            "raid.gateway_keys is empty and no gateway runs here: every job will be refused"
        );
    }
    Ok(keys)
}
