//! What every request handler shares ([`Gateway`]): the backends, the registry and course file as last read, the
//! per-user limits, the clock deadlines are judged by; and how all of it is connected from the configuration.
//! Handlers take it as `State<Arc<Gateway>>`; nothing else is global.

use std::collections::HashMap;
use std::sync::Arc;

use rai_backends::connect::{open_queue, open_store};
use rai_backends::events::{EventBus, EventHub};
use rai_backends::queue::JobQueue;
use rai_backends::store::ObjectStore;
use rai_common::Config;
use rai_common::account::{SigningKey, load_gateway_key};

use crate::error::{ApiError, StartError};
use crate::{per_user, submissions, usage, watched};

/// What every request handler shares.
pub struct Gateway {
    pub config: Config,
    pub bus: EventBus,
    /// One Redis subscription for every event stream this gateway serves.
    pub hub: EventHub,
    pub store: Arc<dyn ObjectStore>,
    /// The queues students may submit to (`gateway.queues`).
    pub queues: HashMap<String, Arc<dyn JobQueue>>,
    /// The account registry, reread when its file changes: a revocation holds from the next request.
    pub registry: watched::RegistryFile,
    /// Signs every job this gateway queues.
    pub attestation_key: SigningKey,
    /// The course file, reread when it changes; `None` when the config names none.
    pub course: Option<watched::CourseFile>,
    /// The time deadlines are judged by: the system's, moved in tests only.
    pub clock: Clock,
    /// Each user's live event streams (`gateway.max_followers`).
    pub followers: per_user::UserSlots,
    /// Each user's upload bodies streaming now (`gateway.uploads.max_streaming`).
    pub streaming: per_user::UserSlots,
    /// Each user's batches of chunks being sent now (`gateway.uploads.max_chunks_at_once`).
    pub chunks: per_user::UserSlots,
    /// The store's name in Redis keys that belong to one store (pending uploads, the sweep's turn).
    pub store_scope: String,
    /// What checking an assignment's required files found in each upload, so an upload is unpacked once.
    pub unpacked: submissions::UnpackedUploads,
    /// What usage has read of each job record.
    pub usage: usage::UsageCache,
}

/// The gateway's clock: the system's, plus an offset that only tests set (to move a deadline past without moving
/// the machine's time).
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl Clock {
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
            + chrono::Duration::milliseconds(
                self.offset_ms.load(std::sync::atomic::Ordering::Relaxed),
            )
    }

    /// Moves this gateway's clock by `by` from the system's.
    pub fn set_offset(&self, by: chrono::Duration) {
        self.offset_ms
            .store(by.num_milliseconds(), std::sync::atomic::Ordering::Relaxed);
    }
}

/// A short name for the store `config` names: courses (or tests) sharing one Redis keep their pending uploads and
/// their sweep's turn apart.
fn store_scope(config: &rai_common::config::StoreConfig) -> String {
    use sha2::Digest;
    let location = match config.backend {
        rai_common::config::StoreBackend::Fs => format!("fs:{}", config.path.display()),
        rai_common::config::StoreBackend::S3 => {
            format!("s3:{}", config.bucket.as_deref().unwrap_or_default())
        }
    };
    hex::encode(&sha2::Sha256::digest(location.as_bytes())[..8])
}

impl Gateway {
    /// `job`'s state (`None`: never accepted, or expired), or a 503 when Redis cannot say.
    pub(crate) async fn job_state(
        &self,
        job: &rai_common::job::JobId,
    ) -> Result<Option<rai_common::state::JobState>, ApiError> {
        self.bus
            .state(job)
            .await
            .map_err(|e| ApiError::unavailable("look up the job", e))
    }

    /// Connects the gateway's backends as its config says.
    pub async fn connect(config: Config) -> Result<Gateway, StartError> {
        let key_path = config
            .gateway
            .attestation_key
            .clone()
            .ok_or(StartError::NoAttestationKey)?;
        let attestation_key = load_gateway_key(&key_path).map_err(StartError::AttestationKey)?;
        if config.gateway.queues.is_empty() {
            return Err(StartError::NoQueues);
        }
        let mut queues = HashMap::new();
        for name in &config.gateway.queues {
            let queue =
                open_queue(&config, name, None)
                    .await
                    .map_err(|source| StartError::Queue {
                        name: name.clone(),
                        source,
                    })?;
            queues.insert(name.clone(), queue);
        }
        let store = open_store(&config, None, true)
            .await
            .map_err(StartError::Store)?;
        let bus = EventBus::connect(
            rai_backends::redis_link::RedisTarget::events(&config),
            config.events.retention.as_duration(),
        )
        .await
        .map_err(StartError::Events)?;
        let registry = watched::RegistryFile::load(&config.raid.registry)?;
        let course = match &config.gateway.course {
            Some(path) => Some(watched::CourseFile::load(path)?),
            None => None,
        };
        let hub = EventHub::start(bus.clone());
        Ok(Gateway {
            hub,
            bus,
            store,
            queues,
            registry,
            attestation_key,
            followers: per_user::UserSlots::new("live event streams", config.gateway.max_followers),
            streaming: per_user::UserSlots::new(
                "uploads streaming",
                config.gateway.uploads.max_streaming,
            ),
            chunks: per_user::UserSlots::new(
                "chunk uploads",
                config.gateway.uploads.max_chunks_at_once,
            ),
            unpacked: submissions::UnpackedUploads::default(),
            usage: usage::UsageCache::default(),
            store_scope: store_scope(&config.store),
            config,
            course,
            clock: Clock::default(),
        })
    }
}
