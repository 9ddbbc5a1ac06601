//! Configuration: the schema every binary reads, and its layered loading.
//!
//! Every key and its default are in `defaults.yml` beside this file; the schema types below mirror it. Loading
//! (in [`load`]) merges the layers, checks each against the schema on its own (so an error names the file that
//! caused it), applies `RAI_*` environment variables and flags, and decrypts `enc:v1:`/`==AES32==` values with the
//! app secret.
//!
//! Over 450 lines: the schema mirrors defaults.yml section by section; one file keeps the two comparable.

mod load;

use std::collections::BTreeMap;
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
    pub mail: MailConfig,
    pub gateway: GatewayConfig,
    pub raid: RaidConfig,
}

/// How `rai-keygen mail` reaches the course's SMTP server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    pub server: Option<String>,
    pub port: u16,
    pub security: MailSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub from: Option<String>,
    pub reply_to: Option<String>,
    pub template: Option<PathBuf>,
    pub course: Option<String>,
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailSecurity {
    /// Plain text upgraded with STARTTLS (port 587); refused if the server does not offer it.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// Plain text: only to a server on a loopback address.
    None,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    pub redis_url: String,
    /// The CA certificate (PEM) a `rediss://` Redis's certificate is checked against; `None`: the system's.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and key (PEM) for Redis's mutual TLS (`tls-auth-clients yes`).
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub retention: Span,
    /// How long Redis keeps a finished job's events once its log is in the store.
    pub live_retention: Span,
}

/// Whether `host` (a name or an address, as a URL or a config gives it) is this machine's loopback, where plain
/// text crosses no network: `localhost`, 127.0.0.0/8 or ::1.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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
    /// Fair share lends free slots to a user's next jobs only once no other user has sent one for this long
    /// (Redis Streams; see `rai_backends::queue::RedisQueue::with_borrow_quiet`).
    pub borrow_quiet: Span,
}

/// Who takes turns in a queue: `user` (each user's jobs a group of their own), `team` (a team's jobs one group, a
/// student without a team a team of one), or `off`. `true` and `false`, the setting's first form, mean `user` and
/// `off`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FairShare {
    Off,
    #[default]
    User,
    Team,
}

impl<'de> Deserialize<'de> for FairShare {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = FairShare;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("user, team or off")
            }
            fn visit_bool<E: serde::de::Error>(self, on: bool) -> Result<FairShare, E> {
                Ok(if on { FairShare::User } else { FairShare::Off })
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<FairShare, E> {
                match text {
                    "user" | "true" | "on" | "yes" => Ok(FairShare::User),
                    "team" => Ok(FairShare::Team),
                    "off" | "false" | "no" => Ok(FairShare::Off),
                    other => Err(E::custom(format!(
                        "\"{other}\" is not a fair share; write user, team or off"
                    ))),
                }
            }
        }
        d.deserialize_any(Text)
    }
}

impl FairShare {
    /// The queue group a job of `user` in `team` (empty: none) goes in; `None`: no group.
    pub fn group(self, user: &str, team: &str) -> Option<String> {
        match self {
            FairShare::Off => None,
            FairShare::User => Some(user.to_string()),
            // Prefixed so that a team and a user of the same name are two groups.
            FairShare::Team if team.is_empty() => Some(user.to_string()),
            FairShare::Team => Some(format!("team:{team}")),
        }
    }
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
    pub retention: Retention,
}

/// How long the store keeps each kind of object (docs/admin.md, "Retention"); zero keeps it for ever. A graded
/// submission's objects are kept until the course file's `keep_submissions_until`, or for ever when it says nothing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub uploads: Span,
    pub outputs: Span,
    pub logs: Span,
    /// How often a gateway sweeps the store (one gateway of a course at a time).
    pub sweep_every: Span,
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
    /// Send the project as a manifest and the chunks the gateway lacks (issue 30); false: an archive, as before.
    pub chunked_uploads: bool,
}

/// The gateway: the authenticated HTTP API students talk to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub listen: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// How often the certificate files are looked at for a renewal.
    pub tls_check_every: Span,
    pub attestation_key: Option<PathBuf>,
    pub queues: Vec<String>,
    pub clock_skew: Span,
    pub link_lifetime: Span,
    pub max_body: Bytes,
    pub submits_per_minute: u32,
    /// The most jobs one sweep may make.
    pub max_sweep: u32,
    /// The course file (assignments and deadlines, docs/instructor.md); `None`: no graded submissions.
    pub course: Option<PathBuf>,
    /// Who takes turns in the queue (docs/instructor.md, "Fair share"): each user, each team as one, or nobody
    /// (first come, first served).
    pub fair_share: FairShare,
    pub quotas: Quotas,
    pub uploads: UploadLimits,
    /// Live event streams (`rai logs -f`, the dashboard) one user may hold open at once.
    pub max_followers: u32,
    /// Where the gateway unpacks an upload to check an assignment's `required_files`; ~ means the system's
    /// temporary directory.
    pub scratch: Option<PathBuf>,
    /// The datasets the course offers (name -> what it is), which every worker of its queues must have
    /// (`raid.datasets`); a job asking for another is refused before its upload.
    pub datasets: BTreeMap<String, String>,
}

/// Per-user limits on project uploads (docs/admin.md); a zero turns one off.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadLimits {
    /// Uploads declared and not yet submitted.
    pub max_pending: u32,
    /// Bytes declared per UTC day.
    pub bytes_per_day: Bytes,
    /// Upload bodies streaming to the gateway at once (fs store).
    pub max_streaming: u32,
    /// Batches of a chunked upload's chunks one user may send through the gateway at once (fs store). Each is about
    /// 2 MiB (at most 6 MiB) and checked as it arrives; apart from archives' bodies so that each can be tuned on its
    /// own.
    pub max_chunks_at_once: u32,
    /// An upload body that sends nothing for this long is dropped.
    pub idle_timeout: Span,
    /// An upload declared and never submitted is deleted after this.
    pub expire: Span,
}
/// Per-user quotas the gateway enforces (docs/instructor.md); a zero turns one off.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Jobs of one user waiting to start.
    pub max_queued: u32,
    /// Jobs of one user waiting or running.
    pub max_active: u32,
    /// The least time between two submissions of one user.
    pub min_interval: Span,
    /// GPU time (seconds times GPUs) one user's jobs may use per `gpu_time_window`.
    pub gpu_time: Span,
    pub gpu_time_window: GpuTimeWindow,
    /// Whether course staff are exempt.
    pub staff_exempt: bool,
}

/// The window a GPU-time budget is counted over (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuTimeWindow {
    Day,
    Week,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaidConfig {
    /// Read-only folders this worker mounts at `/data/NAME` for jobs that ask (name -> host folder).
    pub datasets: BTreeMap<String, PathBuf>,
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
    /// The Docker engine jobs run on (`unix:///path/docker.sock`, `tcp://host:2375`); `None`: `DOCKER_HOST`, else
    /// `/var/run/docker.sock`.
    pub docker: Option<String>,
    /// How jobs use this worker's GPUs beyond having them: profilers, and the sampling of each GPU's use.
    pub gpu: GpuConfig,
    pub shell: String,
    pub user: String,
    pub shutdown_grace: Span,
    /// The EC2 Auto Scaling group this worker's instance is in, if any (deploy/aws).
    pub fleet: FleetConfig,
    pub cancel_grace: Span,
    pub max_job_age: Span,
    pub fetch_timeout: Span,
    /// The most bytes of project chunks and files a worker keeps between jobs (issue 30), least recently used first
    /// to go.
    pub cache_bytes: Bytes,
    /// Whether a job is leased and made ready while the slot it will run on is still busy.
    pub prepare_next: bool,
    /// The longest a prepared job waits for its slot before it goes back to the queue.
    pub prepared_wait: Span,
    pub metrics_address: Option<String>,
    pub job_network: JobNetworkConfig,
    /// Refuse build files whose reading warned (unknown or repeated keys, keys with no effect) instead of running
    /// them as the original rai would.
    pub strict_build_files: bool,
    pub build_images: BuildImagesConfig,
    pub limits: RaidLimits,
    pub defaults: JobDefaults,
}

/// A worker in an EC2 Auto Scaling group: raid protects its instance from scale-in while jobs run, and drains
/// before the group terminates it (the group's termination lifecycle hook waits for it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// The group's name; `None`: not in a group.
    pub group: Option<String>,
    /// The group's lifecycle hook on `autoscaling:EC2_INSTANCE_TERMINATING` that waits for the drain.
    pub drain_hook: String,
    /// This instance's id; `None`: asked of the instance metadata service.
    pub instance_id: Option<String>,
    /// How often raid asks the group whether it is taking this instance away (and, while it drains, tells the
    /// hook to keep waiting).
    pub check_every: Span,
}

/// How jobs use this worker's GPUs beyond having them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuConfig {
    /// Whether and how jobs may read the GPU's performance counters (nvprof, nsys, ncu).
    pub profiling: GpuProfiling,
    /// How often each GPU's use is sampled while jobs run (`0s`: never); kept per job as its GPU use.
    pub sample_every: Span,
    /// The program that samples the GPUs and lists them (`nvidia-smi`, looked up on the PATH).
    pub nvidia_smi: PathBuf,
    /// Where the NVIDIA driver shows its settings (`raid doctor` reads the profiling one there).
    pub driver_params: PathBuf,
}

/// Whether jobs may read the GPU's performance counters, which NVIDIA's driver keeps to admins by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuProfiling {
    /// No: a job's profiler fails with ERR_NVGPUCTRPERM, and the job is told so.
    Off,
    /// Yes, because the host's driver allows every user (`NVreg_RestrictProfilingToAdminUsers=0`); `raid doctor`
    /// checks the setting. The recommended way: containers keep every capability dropped.
    Driver,
    /// Yes, by giving GPU jobs' containers `CAP_SYS_ADMIN`: for hosts whose driver setting cannot be changed. It
    /// widens what a job's root-less process may do inside its container.
    Capability,
}

/// The Docker network of jobs allowed the network, and what they may never reach.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobNetworkConfig {
    pub name: String,
    pub bridge: String,
    pub deny: Vec<String>,
    /// Addresses inside `deny` that jobs may reach after all (a campus package mirror, a DNS server).
    pub allow: Vec<String>,
}

/// `commands.build_image`: whether and how this worker builds a job's image from its Dockerfile.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildImagesConfig {
    pub allowed: bool,
    /// The longest one build may take.
    pub time: Span,
    /// The largest image a build may make.
    pub max_size: Bytes,
    /// Whether `RUN` steps may use the network (off: only base images already allowed and present are used).
    pub network: bool,
    /// Built images unused for longer than this are removed.
    pub keep: Span,
    /// The most disk built images may take together; the oldest go first.
    pub max_total: Bytes,
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

impl RaidConfig {
    /// The first of the worker's limits or defaults that is below its floor (or a default above its maximum), as
    /// its key path and why. Docker reads a zero memory, CPU or pids limit as "no limit", so a worker never starts
    /// with one, whatever a config file says.
    pub fn floor_broken(&self) -> Option<(&'static [&'static str], String)> {
        use crate::build_spec::{MIN_CPUS, MIN_MEMORY};
        let (l, d) = (&self.limits, &self.defaults);
        let memory = |b: Bytes| b.0 < MIN_MEMORY;
        let cpus = |c: f64| !(c.is_finite() && c >= MIN_CPUS);
        let checks: [(bool, &'static [&'static str], String); 13] = [
            (l.time.0.is_zero(), &["raid", "limits", "time"], "must be longer than zero".into()),
            (d.time.0.is_zero(), &["raid", "defaults", "time"], "must be longer than zero".into()),
            (memory(l.memory), &["raid", "limits", "memory"], format!("must be at least {}", Bytes(MIN_MEMORY))),
            (memory(d.memory), &["raid", "defaults", "memory"], format!("must be at least {}", Bytes(MIN_MEMORY))),
            (cpus(l.cpus), &["raid", "limits", "cpus"], format!("must be at least {MIN_CPUS}")),
            (cpus(d.cpus), &["raid", "defaults", "cpus"], format!("must be at least {MIN_CPUS}")),
            (l.pids < MIN_PIDS, &["raid", "limits", "pids"], format!("must be at least {MIN_PIDS} (0 would mean no limit)")),
            (l.nofile < MIN_NOFILE, &["raid", "limits", "nofile"], format!("must be at least {MIN_NOFILE}")),
            (l.log_bytes.0 < MIN_OUTPUT, &["raid", "limits", "log_bytes"], format!("must be at least {}", Bytes(MIN_OUTPUT))),
            (l.upload_bytes.0 < MIN_OUTPUT, &["raid", "limits", "upload_bytes"], format!("must be at least {}", Bytes(MIN_OUTPUT))),
            (l.output_bytes.0 < MIN_OUTPUT, &["raid", "limits", "output_bytes"], format!("must be at least {}", Bytes(MIN_OUTPUT))),
            (d.time > l.time || d.memory > l.memory, &["raid", "defaults"],
                "asks for more time or memory than raid.limits allows: every job that names no limit would be refused".into()),
            (d.cpus > l.cpus, &["raid", "defaults", "cpus"], "is more than raid.limits.cpus allows".into()),
        ];
        checks
            .into_iter()
            .find(|(broken, _, _)| *broken)
            .map(|(_, path, why)| (path, why))
    }
}

/// The fewest processes a job may be limited to (a shell and a compiler need a few; 0 is "no limit" to Docker).
pub const MIN_PIDS: u32 = 16;
/// The fewest open files a job may be limited to.
pub const MIN_NOFILE: u32 = 64;
/// The least of each size limit (log, upload, `/build`): 0 would refuse or drop everything.
pub const MIN_OUTPUT: u64 = 1 << 10;

impl Config {
    /// The Redis URL of the queue (its own, or the events one).
    pub fn queue_redis_url(&self) -> &str {
        self.queue
            .redis_url
            .as_deref()
            .unwrap_or(&self.events.redis_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{Limits, from_str};

    #[test]
    fn fair_share_is_user_team_or_off_and_reads_its_first_form() {
        let read = |t: &str| from_str::<FairShare>(t, "config.yml", &Limits::SMALL);
        assert_eq!(read("user").unwrap(), FairShare::User);
        assert_eq!(read("team").unwrap(), FairShare::Team);
        assert_eq!(read("off").unwrap(), FairShare::Off);
        assert_eq!(read("true").unwrap(), FairShare::User);
        assert_eq!(read("false").unwrap(), FairShare::Off);
        assert!(
            read("teams")
                .unwrap_err()
                .to_string()
                .contains("write user, team or off")
        );
        assert_eq!(FairShare::Off.group("jdoe", "t7"), None);
        assert_eq!(FairShare::User.group("jdoe", "t7").as_deref(), Some("jdoe"));
        assert_eq!(
            FairShare::Team.group("jdoe", "t7").as_deref(),
            Some("team:t7")
        );
        // A student without a team is a team of one.
        assert_eq!(FairShare::Team.group("jdoe", "").as_deref(), Some("jdoe"));
    }
}
