//! What commands share: the loaded configuration, the profile, the project directory, and connections to the
//! services (with short-lived AWS credentials when the course runs on AWS).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use rai_backends::events::EventBus;
use rai_backends::queue::JobQueue;
use rai_backends::store::ObjectStore;
use rai_common::account::Profile;
use rai_common::config::{ConfigSources, QueueBackend, StoreBackend};
use rai_common::{BuildSpec, Config, paths};
use rai_crypto::AppSecret;

use crate::cli::GlobalArgs;

/// The configuration as this student's machine layers it.
pub fn load_config(global: &GlobalArgs) -> anyhow::Result<Config> {
    let secret = AppSecret::resolve(
        global.secret.as_deref(),
        |k| std::env::var(k).ok(),
        paths::home_dir().as_deref(),
    )?;
    Ok(Config::load(&ConfigSources::standard(None, secret))?)
}

/// The profile path: `--profile`, else the config's `profile`, else `~/.rai_profile`.
pub fn profile_path(global: &GlobalArgs, config: Option<&Config>) -> PathBuf {
    global
        .profile
        .clone()
        .or_else(|| config.and_then(|c| c.profile.clone()))
        .map(|p| paths::expand_home(&p))
        .or_else(paths::default_profile)
        .unwrap_or_else(|| PathBuf::from(".rai_profile"))
}

/// Reads the profile.
pub fn load_profile(global: &GlobalArgs, config: Option<&Config>) -> anyhow::Result<Profile> {
    Ok(Profile::load(&profile_path(global, config))?)
}

/// The build file of a project directory, read and checked.
pub fn load_build_spec(path: &Path) -> Result<BuildSpec, rai_common::errors::BuildSpecError> {
    BuildSpec::load(path)
}

/// Connections to the services, for one user.
pub struct Services {
    pub config: Config,
    pub bus: EventBus,
    pub store: Arc<dyn ObjectStore>,
    sdk: Option<aws_types::SdkConfig>,
}

impl Services {
    /// Connects, trading the course's AWS credentials for the user's 15-minute ones when AWS is used.
    pub async fn connect(
        config: Config,
        user: &str,
        queues: &[String],
    ) -> anyhow::Result<Services> {
        let uses_aws =
            config.queue.backend == QueueBackend::Sqs || config.store.backend == StoreBackend::S3;
        let sdk = if uses_aws {
            let bucket = config.store.bucket.clone().unwrap_or_default();
            Some(
                rai_backends::aws::student_session(&config.aws, user, &bucket, queues)
                    .await?
                    .sdk,
            )
        } else {
            None
        };
        let bus = EventBus::connect(
            &config.events.redis_url,
            config.events.retention.as_duration(),
        )
        .await?;
        let store = rai_backends::connect::open_store(&config, sdk.as_ref(), false).await?;
        Ok(Services {
            config,
            bus,
            store,
            sdk,
        })
    }

    /// Opens a queue to submit to.
    pub async fn queue(&self, name: &str) -> anyhow::Result<Arc<dyn JobQueue>> {
        rai_backends::connect::open_queue(&self.config, name, self.sdk.as_ref())
            .await
            .with_context(|| format!("cannot open the job queue \"{name}\""))
    }
}
