//! Configuration: the schema every binary reads, and its layered loading.
//!
//! Every key and its default are in `defaults.yml` beside this file; the schema types below mirror it. Loading
//! (in [`load`]) merges the layers, checks each against the schema on its own (so an error names the file that
//! caused it), applies `RAI_*` environment variables and flags, and decrypts `enc:v1:`/`==AES32==` values with the
//! app secret.

mod load;

use std::path::PathBuf;

use serde::Deserialize;

pub use load::{ConfigSources, env_var_name, leaf_paths};

use crate::units::{Bytes, Span};

/// The built-in defaults, as YAML.
pub const DEFAULTS_YAML: &str = include_str!("defaults.yml");

/// A course configuration baked in at build time (`RAI_BUILD_CONFIG`), or empty.
pub const BAKED_YAML: &str = include_str!(concat!(env!("OUT_DIR"), "/baked_config.yml"));

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub profile: Option<PathBuf>,
    pub events: EventsConfig,
    pub queue: QueueConfig,
    pub store: StoreConfig,
    pub aws: AwsConfig,
    pub client: ClientConfig,
    pub gateway: GatewayConfig,
    pub raid: RaidConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    pub redis_url: String,
    pub retention: Span,
}

/// Where jobs wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueBackend {
    Redis,
    Sqs,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub backend: QueueBackend,
    pub name: String,
    pub redis_url: Option<String>,
    pub lease: Span,
    pub max_deliveries: u32,
}

/// Where uploads, outputs and records are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    Fs,
    S3,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    pub path: PathBuf,
    pub bucket: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    pub region: String,
    pub endpoint_url: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub role_arn: Option<String>,
    pub session_duration: Span,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub gateway: Option<String>,
    pub fallback_gateways: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub retry_for: Span,
    pub max_upload: Bytes,
    pub max_files: u64,
}

/// The gateway: the authenticated HTTP API students talk to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub listen: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub attestation_key: Option<PathBuf>,
    pub queues: Vec<String>,
    pub clock_skew: Span,
    pub link_lifetime: Span,
    pub max_body: Bytes,
    pub submits_per_minute: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaidConfig {
    pub gateway_keys: Vec<String>,
    pub accept_unattested: bool,
    pub name: Option<String>,
    pub queues: Vec<String>,
    pub concurrency: Option<u32>,
    pub gpus: Option<Vec<String>>,
    pub images: Vec<String>,
    pub registry: PathBuf,
    pub work_dir: PathBuf,
    pub runtime: Option<String>,
    pub shell: String,
    pub user: String,
    pub shutdown_grace: Span,
    pub cancel_grace: Span,
    pub max_job_age: Span,
    pub metrics_address: Option<String>,
    pub limits: RaidLimits,
    pub defaults: JobDefaults,
}

/// The most a job may ask for.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaidLimits {
    pub time: Span,
    pub memory: Bytes,
    pub cpus: f64,
    pub pids: u32,
    pub nofile: u32,
    pub log_bytes: Bytes,
    pub upload_bytes: Bytes,
    pub output_bytes: Bytes,
    pub network: bool,
}

/// What a job gets when its build file does not say.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobDefaults {
    pub time: Span,
    pub memory: Bytes,
    pub cpus: f64,
}

impl Config {
    /// The Redis URL of the queue (its own, or the events one).
    pub fn queue_redis_url(&self) -> &str {
        self.queue
            .redis_url
            .as_deref()
            .unwrap_or(&self.events.redis_url)
    }
}
