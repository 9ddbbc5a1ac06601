//! What this worker allows: a build file's requests checked against `raid.limits` and the image allow-list.
//! A request beyond a limit is refused with the limit in the message ([`PolicyError`]); nothing is ever silently
//! reduced.

use std::time::Duration;

use crate::BuildSpec;
use crate::build_spec::Architecture;
use crate::config::RaidConfig;
use crate::errors::SpecRuleError;
use crate::units::{Bytes, Span};
use globset::{GlobBuilder, GlobSetBuilder};
use thiserror::Error;

/// Why a job may not run here, said to the student.
#[derive(Debug, Error)]
pub enum PolicyError {
    /// The spec (a signed job's JSON, which anyone with a key can write by hand) breaks a build-file rule.
    #[error(transparent)]
    Rule(#[from] SpecRuleError),
    #[error(
        "this course reads build files strictly (raid.strict_build_files), and reading yours warned: {}; fix them \
         (`rai validate --strict` lists them) and submit again",
        .warnings.join("; ")
    )]
    Strict { warnings: Vec<String> },
    #[error(
        "commands.build_image is not allowed on this queue (the policy raid.build_images.allowed is off): this \
         course's workers do not build images; remove commands.build_image and name a ready image in rai.image \
         instead (allowed images: {})",
        .allowed.join(", ")
    )]
    BuildImagesOff { allowed: Vec<String> },
    #[error("image \"{image}\" is not allowed on this worker (allowed: {})", .allowed.join(", "))]
    ImageNotAllowed { image: String, allowed: Vec<String> },
    #[error("the worker's image allow-list is broken ({pattern}: {source})")]
    BrokenPattern {
        pattern: String,
        #[source]
        source: globset::Error,
    },
    #[error("the worker's image allow-list is broken: {0}")]
    BrokenAllowList(#[source] globset::Error),
    #[error("the job asks for the {asked:?} architecture; this worker is {host}")]
    Architecture {
        asked: Architecture,
        host: &'static str,
    },
    #[error("time limit {asked} exceeds this worker's maximum of {max}")]
    Time { asked: Span, max: Span },
    #[error("memory limit {asked} exceeds this worker's maximum of {max}")]
    Memory { asked: Bytes, max: Bytes },
    #[error("{asked} CPUs exceed this worker's maximum of {max}")]
    Cpus { asked: f64, max: f64 },
    #[error("the job asks for network access, which this worker does not allow")]
    Network,
    #[error("the job asks for {asked} GPU{}; this worker has {has}", if *.asked == 1 { "" } else { "s" })]
    Gpus { asked: u32, has: u32 },
    #[error(
        "the job asks for dataset \"{name}\", which this worker does not have (it has: {offered}); the course's \
         workers should all offer the course's datasets: tell the course staff"
    )]
    Dataset { name: String, offered: String },
    /// The worker's own floors were checked when its config loaded; this guards a config built another way.
    #[error("this worker's policy is broken ({key}: {why})")]
    BrokenFloor { key: String, why: String },
}

/// The limits a job runs under: its requests, or the worker's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct JobLimits {
    pub time: Duration,
    pub memory: u64,
    pub cpus: f64,
    pub gpus: u32,
    pub network: bool,
    pub pids: u32,
    pub nofile: u32,
    pub log_bytes: u64,
    pub output_bytes: u64,
    /// Datasets to mount read-only at `/data/NAME`: name and host folder.
    pub datasets: Vec<(String, std::path::PathBuf)>,
    /// What the job asked for that it does not get, said to the student as a `✱` line (a 2017 data resource
    /// naming no dataset of this worker).
    pub notes: Vec<String>,
}

/// This machine's architecture in build-file words.
pub fn host_architecture() -> Option<Architecture> {
    match std::env::consts::ARCH {
        "x86_64" => Some(Architecture::Amd64),
        "aarch64" => Some(Architecture::Arm64),
        "powerpc64" => Some(Architecture::Ppc64le),
        _ => None,
    }
}

/// Checks a job against the worker's policy; `Err` is the reason given to the student.
pub fn resolve(
    spec: &BuildSpec,
    raid: &RaidConfig,
    worker_gpus: u32,
) -> Result<JobLimits, PolicyError> {
    check(spec, raid, Some(worker_gpus))
}

/// The gateway's check before it queues a job: the same policy, less what only the worker that leases it knows
/// (its GPUs and its architecture), so a job the course's workers would refuse is refused before it waits.
pub fn admit(spec: &BuildSpec, raid: &RaidConfig) -> Result<(), PolicyError> {
    check(spec, raid, None).map(|_| ())
}

/// Whether `image` matches one of the allow-list's `patterns` (`*` stops at `/`, `**` crosses it); `Err` names a
/// broken pattern.
pub fn image_allowed(patterns: &[String], image: &str) -> Result<bool, PolicyError> {
    let mut globs = GlobSetBuilder::new();
    for pattern in patterns {
        // `*` stops at `/` (`nvidia/*` must not allow `nvidia/cuda/evil`, another repository); `**` crosses it,
        // for an admin who means a whole registry or namespace.
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|source| PolicyError::BrokenPattern {
                pattern: pattern.clone(),
                source,
            })?;
        globs.add(glob);
    }
    let globs = globs.build().map_err(PolicyError::BrokenAllowList)?;
    Ok(globs.is_match(image))
}

fn check(
    spec: &BuildSpec,
    raid: &RaidConfig,
    worker_gpus: Option<u32>,
) -> Result<JobLimits, PolicyError> {
    // The spec in a signed job is JSON that anyone with a key can write by hand: the build file's rules run again
    // here, so a "memory": "0" (Docker: no limit) never reaches a container.
    spec.validate()?;
    if raid.strict_build_files && !spec.warnings.is_empty() {
        return Err(PolicyError::Strict {
            warnings: spec.warnings.clone(),
        });
    }
    if spec.commands.build_image.is_some() {
        if !raid.build_images.allowed {
            return Err(PolicyError::BuildImagesOff {
                allowed: raid.images.clone(),
            });
        }
    } else if !image_allowed(&raid.images, &spec.rai.image)? {
        return Err(PolicyError::ImageNotAllowed {
            image: spec.rai.image.clone(),
            allowed: raid.images.clone(),
        });
    }
    if let Some(arch) = spec.resources.cpu.as_ref().and_then(|c| c.architecture)
        && worker_gpus.is_some()
        && Some(arch) != host_architecture()
    {
        return Err(PolicyError::Architecture {
            asked: arch,
            host: std::env::consts::ARCH,
        });
    }
    let asked = spec.limits();
    let max = &raid.limits;
    let time = asked.time.unwrap_or(raid.defaults.time);
    if time > max.time {
        return Err(PolicyError::Time {
            asked: time,
            max: max.time,
        });
    }
    let memory = asked.memory.unwrap_or(raid.defaults.memory);
    if memory > max.memory {
        return Err(PolicyError::Memory {
            asked: memory,
            max: max.memory,
        });
    }
    let cpus = asked.cpus.unwrap_or(raid.defaults.cpus);
    if cpus > max.cpus {
        return Err(PolicyError::Cpus {
            asked: cpus,
            max: max.cpus,
        });
    }
    let network = spec.wants_network();
    if network && !max.network {
        return Err(PolicyError::Network);
    }
    let gpus = spec.gpu_count();
    let worker_gpus_known = worker_gpus.is_some();
    let worker_gpus = worker_gpus.unwrap_or(gpus);
    if gpus > worker_gpus {
        return Err(PolicyError::Gpus {
            asked: gpus,
            has: worker_gpus,
        });
    }
    let (datasets, notes) = if worker_gpus_known {
        datasets(spec, raid)?
    } else {
        // The gateway checks names against the course's datasets (`gateway.datasets`) itself.
        (Vec::new(), Vec::new())
    };
    // The worker's own floors were checked when its config loaded; this guards a config built another way.
    if let Some((path, why)) = raid.floor_broken() {
        return Err(PolicyError::BrokenFloor {
            key: path.join("."),
            why,
        });
    }
    Ok(JobLimits {
        time: time.as_duration(),
        memory: memory.0,
        cpus,
        gpus,
        network,
        pids: max.pids,
        nofile: max.nofile,
        log_bytes: max.log_bytes.0,
        output_bytes: max.output_bytes.0,
        datasets,
        notes,
    })
}

/// The datasets a job gets on this worker: each it names (`resources.datasets`), which this worker must have, and
/// each 2017 data resource whose mount names one it has; the others of those are notes.
#[allow(clippy::type_complexity)]
fn datasets(
    spec: &BuildSpec,
    raid: &RaidConfig,
) -> Result<(Vec<(String, std::path::PathBuf)>, Vec<String>), PolicyError> {
    let offered = || {
        if raid.datasets.is_empty() {
            "none".to_string()
        } else {
            raid.datasets.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    };
    let mut mounted: Vec<(String, std::path::PathBuf)> = Vec::new();
    for name in spec.datasets() {
        let Some(path) = raid.datasets.get(name) else {
            return Err(PolicyError::Dataset {
                name: name.to_string(),
                offered: offered(),
            });
        };
        mounted.push((name.to_string(), path.clone()));
    }
    let mut notes = Vec::new();
    for (i, resource) in spec.resources.dataresources.iter().enumerate() {
        match resource.dataset() {
            Some(name) if mounted.iter().any(|(n, _)| n == name) => {}
            Some(name) if raid.datasets.contains_key(name) => {
                mounted.push((name.to_string(), raid.datasets[name].clone()));
            }
            _ => notes.push(format!(
                "resources.dataresources[{i}] (mount {}) is not mounted: no dataset of this worker has that \
                 name, and data is not fetched from URLs. Datasets here: {}; ask for one with \
                 resources.datasets: [NAME]",
                resource.mount.as_deref().unwrap_or("none"),
                offered()
            )),
        }
    }
    Ok((mounted, notes))
}

/// How a time limit reads in messages ("5s", "10m").
pub fn span_text(d: Duration) -> String {
    Span(d).to_string()
}

/// How a memory limit reads in messages ("64m", "4g").
pub fn bytes_text(n: u64) -> String {
    Bytes(n).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn spec(extra: &str) -> BuildSpec {
        BuildSpec::parse(
            &format!("rai:\n  image: nvidia/cuda:12.4.1-devel-ubuntu22.04\n{extra}commands:\n  build: [make]\n"),
            "rai_build.yml",
        )
        .unwrap()
    }

    #[test]
    fn datasets_are_mounted_only_from_this_workers_folders() {
        let mut raid = Config::defaults().raid;
        raid.datasets
            .insert("imagenet-mini".into(), "/srv/data/imagenet-mini".into());
        let l = resolve(
            &spec("resources:\n  datasets: [imagenet-mini, imagenet-mini]\n"),
            &raid,
            0,
        )
        .unwrap();
        assert_eq!(
            l.datasets,
            vec![("imagenet-mini".into(), "/srv/data/imagenet-mini".into())]
        );
        let e = resolve(&spec("resources:\n  datasets: [coco]\n"), &raid, 0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dataset \"coco\"") && e.contains("it has: imagenet-mini"),
            "{e}"
        );
        // The gateway judges names against the course's list, not against its own raid section.
        assert!(admit(&spec("resources:\n  datasets: [coco]\n"), &raid).is_ok());
        // 2017 entries: honoured when the mount names a dataset here, a note otherwise.
        let old = spec(
            "resources:\n  dataresources:\n    - mount: /data/imagenet-mini\n      source: { url: http://x/a.tar }\n    - mount: /mnt/coco\n",
        );
        let l = resolve(&old, &raid, 0).unwrap();
        assert_eq!(l.datasets.len(), 1);
        assert_eq!(l.notes.len(), 1);
        assert!(
            l.notes[0].contains("dataresources[1] (mount /mnt/coco) is not mounted")
                && l.notes[0].contains("resources.datasets"),
            "{}",
            l.notes[0]
        );
    }

    #[test]
    fn defaults_fill_in_and_limits_refuse() {
        let raid = Config::defaults().raid;
        let l = resolve(&spec(""), &raid, 0).unwrap();
        assert_eq!(
            (l.time, l.memory, l.gpus, l.network),
            (Duration::from_secs(600), 2 << 30, 0, false)
        );
        let e = resolve(&spec("resources:\n  limits: { time: 2h }\n"), &raid, 0)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "time limit 2h exceeds this worker's maximum of 1h");
        let e = resolve(&spec("resources:\n  limits: { memory: 64g }\n"), &raid, 0)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "memory limit 64g exceeds this worker's maximum of 8g");
        let e = resolve(&spec("resources:\n  limits: { network: true }\n"), &raid, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("network access"), "{e}");
        let e = resolve(&spec("resources:\n  gpu: { count: 2 }\n"), &raid, 1)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "the job asks for 2 GPUs; this worker has 1");
        assert_eq!(
            resolve(&spec("resources:\n  gpu: { count: 1 }\n"), &raid, 1)
                .unwrap()
                .gpus,
            1
        );
    }

    /// A spec as a signed job's JSON may carry it, past the build file's parser.
    fn hand_made(limits: serde_json::Value) -> BuildSpec {
        serde_json::from_value(serde_json::json!({
            "rai": { "image": "nvidia/cuda:12.4.1-devel-ubuntu22.04" },
            "resources": { "limits": limits },
            "commands": { "build": ["make"] },
        }))
        .unwrap()
    }

    #[test]
    fn limits_that_docker_reads_as_unlimited_are_refused() {
        let raid = Config::defaults().raid;
        let e = resolve(&hand_made(serde_json::json!({ "memory": "0" })), &raid, 0)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "resources.limits.memory: 0 is too little memory to start a container; ask for at least 6m"
        );
        let e = resolve(
            &hand_made(serde_json::json!({ "cpus": 0.0000000001 })),
            &raid,
            0,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("resources.limits.cpus: 0.0000000001 CPUs is too little"),
            "{e}"
        );
        let e = resolve(&hand_made(serde_json::json!({ "time": "0s" })), &raid, 0)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("resources.limits.time: the time limit is zero"),
            "{e}"
        );
        // The same through a build file: cpus 1e-10 used to pass the YAML check.
        let e = BuildSpec::parse(
            "rai:\n  image: x\nresources:\n  limits: { cpus: 0.0000000001 }\ncommands:\n  build: [make]\n",
            "rai_build.yml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("resources.limits.cpus"), "{e}");
        // A worker policy built with a zero (not through Config::load) refuses rather than run unlimited.
        let mut broken = raid.clone();
        broken.limits.pids = 0;
        let e = resolve(&spec(""), &broken, 0).unwrap_err().to_string();
        assert!(e.contains("raid.limits.pids"), "{e}");
        // Every limit that reaches Docker is above zero.
        let l = resolve(
            &hand_made(serde_json::json!({ "cpus": 0.01, "memory": "6m" })),
            &raid,
            0,
        )
        .unwrap();
        assert!(l.memory >= 6 << 20 && (l.cpus * 1e9) as i64 >= 10_000_000 && l.pids > 0);
    }

    #[test]
    fn images_must_match_the_allow_list() {
        let mut raid = Config::defaults().raid;
        let e = resolve(
            &BuildSpec::parse("rai:\n  image: evil/miner\ncommands:\n  build: [x]\n", "f").unwrap(),
            &raid,
            0,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "image \"evil/miner\" is not allowed on this worker (allowed: nvidia/cuda:*)"
        );
        // `*` does not cross `/`; `**` does.
        raid.images = vec!["nvidia/*".into(), "course/**".into()];
        let allowed = |image: &str| {
            let text = format!("rai:\n  image: {image}\ncommands:\n  build: [x]\n");
            resolve(&BuildSpec::parse(&text, "f").unwrap(), &raid, 0).is_ok()
        };
        assert!(allowed("nvidia/cuda:12"));
        assert!(!allowed("nvidia/cuda/evil:1"), "* must stop at /");
        assert!(allowed("course/ece408/lab1:latest"));
        assert!(!allowed("evil/nvidia/cuda"));
        raid.images = vec!["**".into()];
        assert!(
            resolve(
                &BuildSpec::parse("rai:\n  image: evil/miner\ncommands:\n  build: [x]\n", "f")
                    .unwrap(),
                &raid,
                0
            )
            .is_ok()
        );
    }

    #[test]
    fn a_strict_policy_refuses_what_a_lenient_one_runs_with_warnings() {
        let mut raid = Config::defaults().raid;
        let warned = spec("resources:\n  cache: true\n");
        assert_eq!(warned.warnings.len(), 1);
        assert!(resolve(&warned, &raid, 0).is_ok());
        raid.strict_build_files = true;
        let e = resolve(&warned, &raid, 0).unwrap_err().to_string();
        assert!(
            e.starts_with("this course reads build files strictly (raid.strict_build_files)")
                && e.contains("resources.cache: has no effect here"),
            "{e}"
        );
        assert!(resolve(&spec(""), &raid, 0).is_ok());
    }

    #[test]
    fn build_image_needs_the_policy_and_names_what_to_do() {
        let mut raid = Config::defaults().raid;
        let built = BuildSpec::parse(
            "rai:\n  version: 0.2\ncommands:\n  build_image:\n    image_name: course/lab\n  build: [make]\n",
            "rai_build.yml",
        )
        .unwrap();
        let e = admit(&built, &raid).unwrap_err().to_string();
        assert!(
            e.contains("raid.build_images.allowed") && e.contains("rai.image"),
            "{e}"
        );
        raid.build_images.allowed = true;
        // The allow-list applies to the Dockerfile's base images, checked when the worker builds.
        assert!(admit(&built, &raid).is_ok());
    }
}
