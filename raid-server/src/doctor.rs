//! `raid doctor`: checks everything a worker depends on and says what is wrong, as a pass/fail table.
//!
//! Over 450 lines: one check per dependency, in the order the table prints them, with their tests.

use std::time::Duration;

use bollard::Docker;
use rai_backends::connect::{open_queue, open_store};
use rai_backends::events::EventBus;
use rai_common::Config;
use rai_common::account::Registry;
use rai_common::config::{GpuProfiling, QueueBackend};

use crate::gpu::{GpuInventory, GpuPool};
use crate::sandbox::{Sandbox, SandboxSpec};

/// One line of the report.
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// Passes, but the admin should look: printed as `warn`.
    pub warning: bool,
    pub detail: String,
}

fn pass(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        ok: true,
        warning: false,
        detail: detail.into(),
    }
}

fn warn(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        warning: true,
        ..pass(name, detail)
    }
}

fn fail(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        ok: false,
        warning: false,
        detail: detail.into(),
    }
}

// Long (about 90 lines) on purpose: one block per check, in the order the table prints them.
/// Runs every check.
pub async fn run(config: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    let docker = match crate::sandbox::connect(config.raid.docker.as_deref()) {
        Ok(d) => d.negotiate_version().await.ok(),
        Err(_) => None,
    };
    match &docker {
        Some(d) => match d.version().await {
            Ok(v) => out.push(pass(
                "docker",
                format!("engine {}", v.version.unwrap_or_default()),
            )),
            Err(e) => out.push(fail("docker", format!("the engine does not answer: {e}"))),
        },
        None => out.push(fail(
            "docker",
            "cannot reach the Docker engine; is it running, and may raid use its socket?",
        )),
    }
    let info = match &docker {
        Some(d) => d.info().await.ok(),
        None => None,
    };
    if let Some(default) = info.as_ref().and_then(|i| i.default_runtime.as_deref()) {
        out.push(default_runtime_check(default));
    }
    if let (Some(_), Some(runtime)) = (&docker, &config.raid.runtime) {
        let known = info
            .as_ref()
            .and_then(|i| i.runtimes.as_ref())
            .map(|r| r.contains_key(runtime))
            .unwrap_or(false);
        out.push(if known {
            pass("runtime", runtime.clone())
        } else {
            fail(
                "runtime",
                format!("Docker does not know the runtime \"{runtime}\" (see docs/admin.md)"),
            )
        });
    }
    let gpus = GpuPool::detect(config.raid.gpus.as_ref(), &config.raid.gpu.nvidia_smi);
    out.push(gpu_check(
        config.raid.gpus.as_ref(),
        GpuInventory::probe(&config.raid.gpu.nvidia_smi),
    ));
    if gpus.count() > 0 {
        let gpu = &config.raid.gpu;
        out.push(profiling_check(
            gpu.profiling,
            &gpu.driver_params,
            std::fs::read_to_string(&gpu.driver_params),
            &config.raid.user,
        ));
    }
    if let Some(d) = &docker {
        out.push(container_check(d, config, None).await);
        if gpus.count() > 0 {
            let gpu = gpus.acquire(1).await.ids[0].clone();
            out.push(container_check(d, config, Some(gpu)).await);
        }
        let builds_online = config.raid.build_images.allowed && config.raid.build_images.network;
        if config.raid.limits.network || builds_online {
            out.push(network_check(d, config).await);
        }
    }
    match open_queue(
        config,
        config.raid.queues.first().map_or("rai", String::as_str),
        None,
    )
    .await
    {
        Ok(q) => out.push(pass(
            "queue",
            format!("{} ({:?})", q.name(), config.queue.backend),
        )),
        Err(e) => out.push(fail("queue", e.to_string())),
    }
    match open_store(config, None, true).await {
        Ok(s) => out.push(pass("store", s.describe())),
        Err(e) => out.push(fail("store", e.to_string())),
    }
    out.push(redis_check(config).await);
    out.push(redis_memory_check(config).await);
    match Registry::load(&config.raid.registry) {
        _ if !config.raid.registry.exists() => out.push(fail(
            "registry",
            format!(
                "{} does not exist; install the registry rai-keygen wrote (raid.registry)",
                config.raid.registry.display()
            ),
        )),
        Ok(r) if r.users.is_empty() => out.push(fail(
            "registry",
            format!(
                "{} has no users; every job would be refused",
                config.raid.registry.display()
            ),
        )),
        Ok(r) => out.push(pass("registry", format!("{} users", r.users.len()))),
        Err(e) => out.push(fail("registry", e.to_string())),
    }
    out.push(gateway_check(config));
    out.push(disk_check(config));
    out.extend(dataset_checks(config));
    out
}

/// Each of `raid.datasets`: a folder raid can list and the jobs' user can read; and each dataset the course offers
/// in the same config (`gateway.datasets`, the embedded setup) is one of them.
fn dataset_checks(config: &Config) -> Vec<Check> {
    let mut out: Vec<Check> = config
        .raid
        .datasets
        .iter()
        .map(|(name, dir)| dataset_check(name, dir, &config.raid.user))
        .collect();
    for name in config.gateway.datasets.keys() {
        if !config.raid.datasets.contains_key(name) {
            out.push(fail(
                "dataset",
                format!(
                    "{name}: the course offers it (gateway.datasets) but this worker has no folder for it; add \
                     it to raid.datasets"
                ),
            ));
        }
    }
    out
}

/// Whether the dataset `name` at `dir` can be mounted for jobs running as `user` (`uid:gid`).
pub fn dataset_check(name: &str, dir: &std::path::Path, user: &str) -> Check {
    use std::os::unix::fs::MetadataExt;
    if !rai_common::build_spec::is_dataset_name(name) {
        return fail(
            "dataset",
            format!(
                "\"{name}\" is not a dataset name (lower-case letters, digits, - _ . only): jobs could not ask \
                 for it"
            ),
        );
    }
    let place = format!("{name} ({})", dir.display());
    if !dir.is_absolute() {
        return fail(
            "dataset",
            format!("{place}: give the folder as an absolute path"),
        );
    }
    let meta = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => return fail("dataset", format!("{place} is not a folder")),
        Err(e) => return fail("dataset", format!("{place} cannot be read: {e}")),
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries.count(),
        Err(e) => return fail("dataset", format!("{place} cannot be listed: {e}")),
    };
    let (uid, gid) = user
        .split_once(':')
        .and_then(|(u, g)| Some((u.parse::<u32>().ok()?, g.parse::<u32>().ok()?)))
        .unwrap_or((u32::MAX, u32::MAX));
    let mode = meta.mode();
    let readable = if meta.uid() == uid {
        mode & 0o500 == 0o500
    } else if meta.gid() == gid {
        mode & 0o050 == 0o050
    } else {
        mode & 0o005 == 0o005
    };
    if !readable {
        return fail(
            "dataset",
            format!(
                "{place}: jobs run as {user} and cannot read the folder (mode {:o}); make it readable by them, \
                 for example chmod -R o+rX",
                mode & 0o7777
            ),
        );
    }
    pass(
        "dataset",
        format!("{place}: {entries} entries, mounted read-only at /data/{name}"),
    )
}

/// Whether profilers (nvprof, nsys, ncu) will work in GPU jobs, by `raid.gpu.profiling` and the driver's setting.
pub fn profiling_check(
    profiling: GpuProfiling,
    params_path: &std::path::Path,
    params: std::io::Result<String>,
    user: &str,
) -> Check {
    const NAME: &str = "profiling";
    match profiling {
        GpuProfiling::Off => pass(
            NAME,
            "off (raid.gpu.profiling): jobs' profilers are refused the GPU's counters, and told so",
        ),
        GpuProfiling::Capability if matches!(user, "0" | "root") || user.starts_with("0:") => pass(
            NAME,
            "by capability: GPU jobs' containers get CAP_SYS_ADMIN (they run as root)",
        ),
        GpuProfiling::Capability => fail(
            NAME,
            format!(
                "raid.gpu.profiling is capability, but Docker gives added capabilities to root only and jobs run as \
                 {user}: profilers would still fail. Use driver (docs/admin.md, \"GPUs\")"
            ),
        ),
        GpuProfiling::Driver => match params.map(|p| crate::gpu::driver_allows_profiling(&p)) {
            Ok(Some(true)) => pass(
                NAME,
                "the NVIDIA driver lets every user read the GPU's counters (RestrictProfilingToAdminUsers: 0): \
                 nvprof, nsys and ncu work in jobs",
            ),
            Ok(Some(false)) => warn(
                NAME,
                "the NVIDIA driver keeps the GPU's performance counters to admins (RestrictProfilingToAdminUsers: 1), \
                 so nvprof, nsys and ncu fail in jobs with ERR_NVGPUCTRPERM: put `options nvidia \
                 NVreg_RestrictProfilingToAdminUsers=0` in /etc/modprobe.d/nvidia-profiling.conf and reload the \
                 driver (or reboot); or set raid.gpu.profiling: off so students are told",
            ),
            Ok(None) => warn(
                NAME,
                format!(
                    "{} does not show RestrictProfilingToAdminUsers: cannot tell whether profilers will work",
                    params_path.display()
                ),
            ),
            Err(e) => warn(
                NAME,
                format!(
                    "cannot read {} ({e}): is the NVIDIA driver loaded? Profilers in jobs may fail",
                    params_path.display()
                ),
            ),
        },
    }
}

/// A host whose Docker runs every container with the nvidia runtime gives GPUs to containers that asked for none
/// (the image's `NVIDIA_VISIBLE_DEVICES` decides); raid pins every job with `NVIDIA_VISIBLE_DEVICES`, but anything
/// else on the host is exposed.
pub fn default_runtime_check(default: &str) -> Check {
    if default.contains("nvidia") {
        warn(
            "runtime",
            format!(
                "Docker's default runtime is \"{default}\": every container on this host may see every GPU. raid pins \
                 its jobs (NVIDIA_VISIBLE_DEVICES), but set \"default-runtime\": \"runc\" in /etc/docker/daemon.json \
                 unless something else needs it (docs/admin.md)"
            ),
        )
    } else {
        pass("runtime", format!("default {default}"))
    }
}

/// The GPUs jobs get: those configured, or what `nvidia-smi -L` lists (MIG instances one by one), with any GPU in
/// error named.
pub fn gpu_check(
    configured: Option<&Vec<String>>,
    probed: Result<GpuInventory, crate::gpu::ProbeError>,
) -> Check {
    if let Some(ids) = configured {
        return pass(
            "gpus",
            format!("{} configured in raid.gpus: {}", ids.len(), ids.join(", ")),
        );
    }
    match probed {
        Err(why) => pass(
            "gpus",
            format!("none (jobs asking for GPUs are refused): {why}"),
        ),
        Ok(inventory) => {
            let listed: Vec<String> = inventory
                .devices
                .iter()
                .map(|d| format!("{} {}", d.id, d.name))
                .collect();
            let summary = if listed.is_empty() {
                "none (jobs asking for GPUs are refused)".to_string()
            } else {
                format!("{}: {}", listed.len(), listed.join("; "))
            };
            if inventory.unusable.is_empty() {
                pass("gpus", summary)
            } else {
                warn(
                    "gpus",
                    format!(
                        "{summary}; left out, in error: {}",
                        inventory.unusable.join("; ")
                    ),
                )
            }
        }
    }
}

/// Jobs (or image builds) may use the network here: the job network and its firewall rules must be in place.
async fn network_check(docker: &Docker, config: &Config) -> Check {
    let network = match crate::sandbox::network::JobNetwork::new(&config.raid.job_network) {
        Ok(n) => n,
        Err(e) => return fail("network", e.to_string()),
    };
    if docker.inspect_network(&network.name, None).await.is_err() {
        return fail(
            "network",
            format!(
                "the job network {} does not exist yet; raid makes it at start (it needs CAP_NET_ADMIN for its rules)",
                network.name
            ),
        );
    }
    let missing = network.missing_rules();
    if missing.is_empty() {
        pass(
            "network",
            format!(
                "jobs on {} ({}) cannot reach this host or {}",
                network.name,
                network.bridge,
                config.raid.job_network.deny.join(", ")
            ),
        )
    } else {
        fail(
            "network",
            format!(
                "firewall rules missing: iptables {}",
                missing.join("; iptables ")
            ),
        )
    }
}

/// Which gateways this worker trusts: without one, every job is refused.
fn gateway_check(config: &Config) -> Check {
    match crate::setup::trusted_gateways(config) {
        Ok(keys) if keys.is_empty() && config.raid.accept_unattested => pass(
            "gateways",
            "none trusted, but raid.accept_unattested runs 2025 clients' jobs (turn it off once they are gone)",
        ),
        Ok(keys) if keys.is_empty() => fail(
            "gateways",
            "no gateway is trusted, so every job is refused: add each gateway's public key to raid.gateway_keys \
             (printed by `rai-keygen gateway-key`), or run the gateway here with gateway.listen",
        ),
        Ok(keys) => pass("gateways", format!("{} trusted", keys.len())),
        Err(e) => fail("gateways", format!("{e:#}")),
    }
}

// Long (about 80 lines): the probe container's setup, run and teardown in one place.
/// A sandboxed container of an allowed image runs (`container`); with `gpu`, one given that GPU through Docker's
/// nvidia device driver sees it and nothing else (`gpu engine`): the driver is there, and the hook gave the
/// container the driver's tools.
async fn container_check(docker: &Docker, config: &Config, gpu: Option<String>) -> Check {
    let name = if gpu.is_some() {
        "gpu engine"
    } else {
        "container"
    };
    let images = docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .unwrap_or_default();
    let allowed: Vec<String> = images
        .iter()
        .flat_map(|i| i.repo_tags.iter().cloned())
        .filter(|tag| crate::policy::image_allowed(&config.raid.images, tag).unwrap_or(false))
        .collect();
    let Some(image) = allowed.first() else {
        return fail(
            name,
            "no allowed image is present on this machine; pull one of raid.images",
        );
    };
    let tag = if gpu.is_some() { "gpu" } else { "plain" };
    let dir = std::env::temp_dir().join(format!("raid-doctor-{}-{tag}", std::process::id()));
    let _ = std::fs::create_dir_all(dir.join("src"));
    let _ = std::fs::create_dir_all(dir.join("build"));
    let spec = SandboxSpec {
        name: format!("raid-doctor-{}-{tag}", std::process::id()),
        image: image.clone(),
        src_dir: dir.join("src"),
        build_dir: dir.join("build"),
        user: config.raid.user.clone(),
        shell: config.raid.shell.clone(),
        memory_bytes: 256 << 20,
        cpus: 1.0,
        pids: 64,
        nofile: 1024,
        network: None,
        tmp_bytes: 16 << 20,
        gpus: gpu.iter().cloned().collect(),
        runtime: config.raid.runtime.clone(),
        env: vec![],
        labels: Default::default(),
        gate_dir: None,
        cap_add: crate::gpu::capabilities(config.raid.gpu.profiling, gpu.is_some()),
        datasets: vec![],
    };
    // The driver's tools are where the NVIDIA hook puts them, whatever the image's PATH.
    let cmd = if gpu.is_some() {
        "PATH=\"$PATH:/usr/bin:/usr/local/nvidia/bin\" nvidia-smi -L"
    } else {
        "true"
    };
    let result = match Sandbox::start(docker, &spec).await {
        Ok(sandbox) => {
            let (tx, mut rx) = tokio::sync::mpsc::channel(8);
            let code = tokio::time::timeout(Duration::from_secs(60), sandbox.run(cmd, tx)).await;
            let mut seen = String::new();
            while let Ok((_, b)) = rx.try_recv() {
                seen.push_str(&String::from_utf8_lossy(&b));
            }
            sandbox.remove().await;
            container_verdict(
                name,
                image,
                gpu.as_deref(),
                code.ok().and_then(Result::ok).flatten(),
                &seen,
            )
        }
        Err(e) => {
            let text = e.to_string();
            if gpu.is_some() && text.contains("could not select device driver") {
                fail(
                    name,
                    "Docker has no nvidia device driver, so every GPU job would fail to start: install the NVIDIA \
                     Container Toolkit (it puts nvidia-container-runtime-hook on dockerd's PATH) and restart \
                     Docker (docs/admin.md, \"GPUs\")",
                )
            } else {
                fail(name, text)
            }
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// What a doctor container's run says: `code` is its exit code (`None`: it did not finish), `seen` its output.
pub fn container_verdict(
    name: &'static str,
    image: &str,
    gpu: Option<&str>,
    code: Option<i64>,
    seen: &str,
) -> Check {
    let listed = seen.trim();
    match (gpu, code) {
        (None, Some(0)) => pass(name, format!("a sandboxed {image} runs")),
        (Some(gpu), Some(0)) if listed.contains(gpu) => pass(
            name,
            format!(
                "Docker's nvidia device driver is present: a container given {gpu} sees {listed}"
            ),
        ),
        (Some(gpu), Some(0)) => fail(
            name,
            format!(
                "a container given {gpu} lists other devices ({listed}): jobs would not get the GPUs raid gives them"
            ),
        ),
        (Some(gpu), Some(127)) => fail(
            name,
            format!(
                "a container given {gpu} has no nvidia-smi: Docker's nvidia hook did not give it the driver; \
                 check the NVIDIA Container Toolkit's install (nvidia-ctk) and the host's driver"
            ),
        ),
        (_, code) => fail(
            name,
            format!(
                "a sandboxed {image} did not run: {} {listed}",
                code.map_or("no exit code".to_string(), |c| format!("exit code {c}"))
            ),
        ),
    }
}

/// Redis's memory: used, against `maxmemory`, and the largest job logs in it.
async fn redis_memory_check(config: &Config) -> Check {
    let target = rai_backends::redis_link::RedisTarget::events(config);
    let report = match EventBus::connect(&target, Duration::from_secs(60)).await {
        Ok(bus) => bus.memory_report(3).await,
        Err(e) => return fail("redis mem", e.to_string()),
    };
    match report {
        Ok(r) => memory_verdict(&r),
        Err(e) => fail("redis mem", e.to_string()),
    }
}

/// How a memory report reads: a warning at 80% of `maxmemory`, or with none set.
pub fn memory_verdict(r: &rai_backends::events::archive::MemoryReport) -> Check {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let largest: Vec<String> = r
        .largest_logs
        .iter()
        .map(|(job, b)| format!("{job} {:.1} MiB", mib(*b)))
        .collect();
    let logs = if largest.is_empty() {
        format!("{} job logs live", r.live_logs)
    } else {
        format!(
            "{} job logs live, largest {}",
            r.live_logs,
            largest.join(", ")
        )
    };
    if r.max_bytes == 0 {
        return warn(
            "redis mem",
            format!(
                "{:.1} MiB used, no maxmemory set (set one: docs/admin.md, \"Sizing Redis\"); {logs}",
                mib(r.used_bytes)
            ),
        );
    }
    let used = format!(
        "{:.1} MiB of {:.1} MiB maxmemory ({:.0}%); {logs}",
        mib(r.used_bytes),
        mib(r.max_bytes),
        r.used_bytes as f64 * 100.0 / r.max_bytes as f64
    );
    if r.used_bytes * 10 >= r.max_bytes * 8 {
        warn(
            "redis mem",
            format!("{used}: near the limit; see docs/admin.md, \"Sizing Redis\""),
        )
    } else {
        pass("redis mem", used)
    }
}

async fn redis_check(config: &Config) -> Check {
    let target = rai_backends::redis_link::RedisTarget::events(config);
    let bus = match EventBus::connect(&target, Duration::from_secs(60)).await {
        Ok(b) => b,
        Err(e) => return fail("redis", e.to_string()),
    };
    let client = match target.client() {
        Ok(c) => c,
        Err(e) => return fail("redis", e.to_string()),
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return fail("redis", format!("cannot connect to {}", bus.endpoint()));
    };
    let get = async |conn: &mut redis::aio::MultiplexedConnection, key: &str| -> Option<String> {
        let v: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(key)
            .query_async(conn)
            .await
            .ok()?;
        v.get(1).cloned()
    };
    let aof = get(&mut conn, "appendonly").await;
    let policy = get(&mut conn, "maxmemory-policy").await;
    let holds_queue = config.queue.backend == QueueBackend::Redis;
    if holds_queue && aof.as_deref() != Some("yes") {
        return fail(
            "redis",
            format!(
                "{} holds the job queue but does not persist it (appendonly {}); set appendonly yes or a restart loses queued jobs",
                bus.endpoint(),
                aof.unwrap_or_else(|| "unknown".into())
            ),
        );
    }
    if holds_queue && policy.as_deref().is_some_and(|p| p != "noeviction") {
        return fail(
            "redis",
            format!(
                "maxmemory-policy is {}; set noeviction or Redis may evict queued jobs",
                policy.unwrap_or_default()
            ),
        );
    }
    let how = redis_link_description(config, &target);
    let text = format!(
        "{} {how} (appendonly {}, maxmemory-policy {})",
        bus.endpoint(),
        aof.unwrap_or_else(|| "?".into()),
        policy.unwrap_or_else(|| "?".into())
    );
    if !target.is_tls() && !target.is_local() {
        return warn(
            "redis",
            format!(
                "{text}: reached without TLS across the network, so its password and every job's output cross it \
                 in clear; use rediss:// (docs/admin.md, \"Redis over TLS\")"
            ),
        );
    }
    if target.user() == "default" {
        return warn(
            "redis",
            format!(
                "{text}: logged in as Redis's default user; give each part its own ACL user (deploy/redis/users.acl)"
            ),
        );
    }
    pass("redis", text)
}

/// How this process reaches Redis, as `raid doctor` says it: `over TLS (CA ca.pem, client certificate) as user
/// raid`, or `in plain text as user default`.
fn redis_link_description(
    config: &Config,
    target: &rai_backends::redis_link::RedisTarget,
) -> String {
    let e = &config.events;
    let tls = if target.is_tls() {
        let ca = e.ca_file.as_ref().map_or_else(
            || "the system's CAs".to_string(),
            |p| format!("CA {}", p.display()),
        );
        let client = if e.client_cert.is_some() {
            ", client certificate"
        } else {
            ""
        };
        format!("over TLS ({ca}{client})")
    } else {
        "in plain text".to_string()
    };
    format!("{tls} as user {}", target.user())
}

fn disk_check(config: &Config) -> Check {
    let dir = &config.raid.work_dir;
    let probe = if dir.exists() {
        dir.clone()
    } else {
        dir.parent().map(|p| p.to_path_buf()).unwrap_or_default()
    };
    match rustix::fs::statvfs(&probe) {
        Ok(s) => {
            let free = s.f_bavail * s.f_frsize;
            let gib = free as f64 / (1u64 << 30) as f64;
            if free < 2 << 30 {
                fail(
                    "disk",
                    format!(
                        "{:.1} GiB free under {}; jobs need room to unpack and build",
                        gib,
                        probe.display()
                    ),
                )
            } else {
                pass(
                    "disk",
                    format!("{:.1} GiB free under {}", gib, probe.display()),
                )
            }
        }
        Err(e) => fail("disk", format!("cannot check {}: {e}", probe.display())),
    }
}

/// Prints the table; returns whether everything passed.
pub fn print(checks: &[Check]) -> bool {
    println!("{:<10} {:<6} DETAIL", "CHECK", "RESULT");
    for c in checks {
        println!(
            "{:<10} {:<6} {}",
            c.name,
            match (c.ok, c.warning) {
                (false, _) => "FAIL",
                (true, true) => "warn",
                (true, false) => "pass",
            },
            c.detail
        );
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    let warned = checks.iter().filter(|c| c.warning).count();
    if failed == 0 && warned > 0 {
        println!(
            "all {} checks passed, {warned} with a warning",
            checks.len()
        );
    } else if failed == 0 {
        println!("all {} checks passed", checks.len());
    } else {
        println!("{failed} of {} checks failed", checks.len());
    }
    failed == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dataset_must_be_a_folder_the_jobs_can_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("labels.txt"), "cat\n").unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let ok = dataset_check("imagenet-mini", dir.path(), "54321:54321");
        assert!(ok.ok && ok.detail.contains("1 entries"), "{}", ok.detail);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let closed = dataset_check("imagenet-mini", dir.path(), "54321:54321");
        assert!(
            !closed.ok && closed.detail.contains("cannot read the folder"),
            "{}",
            closed.detail
        );
        let missing = dataset_check("gone", &dir.path().join("gone"), "54321:54321");
        assert!(
            !missing.ok && missing.detail.contains("cannot be read"),
            "{}",
            missing.detail
        );
        let bad = dataset_check("Big Data", dir.path(), "54321:54321");
        assert!(!bad.ok && bad.detail.contains("not a dataset name"));
        let relative = dataset_check("rel", std::path::Path::new("data/rel"), "1000:1000");
        assert!(!relative.ok && relative.detail.contains("absolute"));
    }

    #[test]
    fn redis_memory_is_judged_against_maxmemory() {
        use rai_backends::events::archive::MemoryReport;
        let mib = 1 << 20;
        let r = MemoryReport {
            used_bytes: 10 * mib,
            max_bytes: 100 * mib,
            live_logs: 3,
            largest_logs: vec![("01JOB".into(), 2 * mib)],
        };
        let c = memory_verdict(&r);
        assert!(c.ok && !c.warning, "{}", c.detail);
        assert!(c.detail.contains(
            "10.0 MiB of 100.0 MiB maxmemory (10%); 3 job logs live, largest 01JOB 2.0 MiB"
        ));
        let near = memory_verdict(&MemoryReport {
            used_bytes: 85 * mib,
            ..r.clone()
        });
        assert!(near.ok && near.warning, "{}", near.detail);
        let unbounded = memory_verdict(&MemoryReport { max_bytes: 0, ..r });
        assert!(unbounded.warning && unbounded.detail.contains("no maxmemory set"));
    }

    #[test]
    fn a_default_nvidia_runtime_is_warned_about() {
        let c = default_runtime_check("nvidia");
        assert!(c.ok && c.warning, "{}", c.detail);
        assert!(c.detail.contains("default-runtime"), "{}", c.detail);
        let c = default_runtime_check("runc");
        assert!(c.ok && !c.warning);
    }

    #[test]
    fn the_gpu_probe_names_devices_and_gpus_in_error() {
        let text = "GPU 0: NVIDIA GeForce RTX 3090 (UUID: GPU-1)\nUnable to determine the device handle for GPU 0000:3B:00.0: GPU is lost.\n";
        let c = gpu_check(None, Ok(GpuInventory::parse(text)));
        assert!(c.ok && c.warning);
        assert!(
            c.detail
                .starts_with("1: 0 NVIDIA GeForce RTX 3090; left out, in error: Unable"),
            "{}",
            c.detail
        );
        let missing =
            || crate::gpu::ProbeError::Run(std::io::Error::from(std::io::ErrorKind::NotFound));
        let c = gpu_check(None, Err(missing()));
        assert!(
            c.ok && !c.warning
                && c.detail.contains("none")
                && c.detail.contains("cannot run nvidia-smi"),
            "{}",
            c.detail
        );
        let c = gpu_check(Some(&vec!["0".into()]), Err(missing()));
        assert_eq!(c.detail, "1 configured in raid.gpus: 0");
    }
}
