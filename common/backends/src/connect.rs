//! Opening the configured backends: the job queue and the object store, as `queue.backend` and `store.backend`
//! say. The client and the worker both start here, so they can never disagree on where jobs go.

use std::sync::Arc;

use aws_types::SdkConfig;

use crate::errors::{QueueError, StoreError};
use crate::queue::{JobQueue, RedisQueue, SqsQueue};
use crate::store::{FsStore, ObjectStore, S3Store};
use rai_common::config::{Config, QueueBackend, StoreBackend};

/// Opens the queue `name`. `sdk` is the AWS configuration to use for SQS (a student session, or the worker's).
pub async fn open_queue(
    config: &Config,
    name: &str,
    sdk: Option<&SdkConfig>,
) -> Result<Arc<dyn JobQueue>, QueueError> {
    let lease = config.queue.lease.as_duration();
    match config.queue.backend {
        QueueBackend::Redis => Ok(Arc::new(
            RedisQueue::connect(
                crate::redis_link::RedisTarget::queue(config),
                name,
                lease,
                config.queue.max_deliveries,
            )
            .await?
            .with_borrow_quiet(config.queue.borrow_quiet.as_duration()),
        )),
        QueueBackend::Sqs => {
            let owned;
            let sdk = match sdk {
                Some(s) => s,
                None => {
                    owned = crate::aws::sdk_config(&config.aws).await;
                    &owned
                }
            };
            let endpoint = crate::aws::endpoint_name(sdk, "sqs");
            Ok(Arc::new(
                SqsQueue::open(crate::aws::sqs_client(sdk), endpoint, name, lease).await?,
            ))
        }
    }
}

/// Opens the object store. `check` asks S3 whether the bucket exists (workers do; students' narrow credentials
/// may not be allowed to).
pub async fn open_store(
    config: &Config,
    sdk: Option<&SdkConfig>,
    check: bool,
) -> Result<Arc<dyn ObjectStore>, StoreError> {
    match config.store.backend {
        StoreBackend::Fs => Ok(Arc::new(FsStore::open(&config.store.path)?)),
        StoreBackend::S3 => {
            let bucket = config
                .store
                .bucket
                .clone()
                .ok_or_else(|| StoreError::Missing {
                    store: "s3".into(),
                    what: "store.bucket is not set in the configuration".into(),
                })?;
            let sdk = sdk_or_config(config, sdk).await;
            let endpoint = crate::aws::endpoint_name(&sdk, "s3");
            let client = crate::aws::s3_client(&sdk);
            if check {
                Ok(Arc::new(S3Store::open(client, &bucket, endpoint).await?))
            } else {
                Ok(Arc::new(S3Store::unchecked(client, &bucket, endpoint)))
            }
        }
    }
}

/// The given AWS configuration, or the one the config describes.
async fn sdk_or_config(config: &Config, sdk: Option<&SdkConfig>) -> SdkConfig {
    match sdk {
        Some(s) => s.clone(),
        None => crate::aws::sdk_config(&config.aws).await,
    }
}
