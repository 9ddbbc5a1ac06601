//! The build file, `rai_build.yml`: what image a job runs in, what it may use, and which commands it runs.
//!
//! The shape is the 2017 one, so old projects run unchanged (including `resources.network`, the old spelling of
//! `resources.limits.network`); the reading is strict, because a typo that silently drops a limit or a command costs a
//! student a queue slot and an evening. Every error names the file, line and column, and says what was expected.
//! A worker re-checks the spec against its own policy; this module only checks that the file means something.

use serde::{Deserialize, Serialize};

use crate::units::{Bytes, Span};
use crate::yaml::{self, Limits, Node, YamlError};

/// The conventional file name.
pub const BUILD_FILE_NAME: &str = "rai_build.yml";

/// The names a build file may have, in the order they are looked for: the conventional one, its `.yaml` spelling,
/// and the 2016 name.
pub const BUILD_FILE_NAMES: [&str; 3] = [BUILD_FILE_NAME, "rai_build.yaml", "rai-build.yml"];

/// The build file of a project directory: the first of [`BUILD_FILE_NAMES`] there, if any.
pub fn find_build_file(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    BUILD_FILE_NAMES
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

/// Versions of the build file format this build understands.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.1", "0.2", "0.3"];

/// The least memory a job may ask for: Docker refuses to start a container with less than 6 MiB, and reads 0 as
/// "no limit" (never allowed).
pub const MIN_MEMORY: u64 = 6 << 20;

/// The least CPU share a job may ask for: Docker's smallest `--cpus` is 0.01, and `NanoCpus` 0 means "no limit".
pub const MIN_CPUS: f64 = 0.01;

/// A rule of the build file that a spec breaks: the key, where it is, and what is wrong.
struct Violation {
    /// The key's path in the file, to point at its node.
    path: &'static [&'static str],
    /// The item of a list at `path`, when the rule is about one item.
    item: Option<usize>,
    key: String,
    message: String,
}

impl Violation {
    fn new(path: &'static [&'static str], key: &str, message: impl Into<String>) -> Violation {
        Violation {
            path,
            item: None,
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// Build files are small; anything larger is a mistake or an attack.
const BUILD_FILE_LIMITS: Limits = Limits {
    max_bytes: 64 * 1024,
    max_depth: 16,
    max_nodes: 5_000,
};

/// A parsed and checked build file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSpec {
    pub rai: RaiSection,
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    pub commands: Commands,
}

/// The `rai:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaiSection {
    #[serde(default = "default_version")]
    pub version: String,
    pub image: String,
    /// The queue to submit to; `--queue` on the command line wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
}

fn default_version() -> String {
    "0.2".to_string()
}

/// The `resources:` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsRequest>,
    /// The 2017 spelling of `limits.network`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<bool>,
}

impl Resources {
    fn is_empty(&self) -> bool {
        *self == Resources::default()
    }
}

/// CPU architectures a job may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    Amd64,
    Arm64,
    Ppc64le,
}

/// `resources.cpu`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<Architecture>,
}

/// `resources.gpu`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuRequest {
    #[serde(default)]
    pub count: u32,
    /// A GPU architecture name (the 2017 files said `pascal`); informational, matched by workers that know theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
}

/// `resources.limits`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<bool>,
}

/// `commands:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commands {
    pub build: Vec<String>,
}

/// A build file that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BuildSpecError(pub YamlError);

impl BuildSpecError {
    /// The line and column the error points at, if any.
    pub fn position(&self) -> Option<(usize, usize)> {
        self.0.mark.map(|m| (m.line, m.col))
    }
}

impl BuildSpec {
    /// Reads and checks a build file's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<BuildSpec, BuildSpecError> {
        Self::parse_bytes(text.as_bytes(), file)
    }

    /// Reads and checks a build file's bytes (which must be UTF-8).
    pub fn parse_bytes(bytes: &[u8], file: &str) -> Result<BuildSpec, BuildSpecError> {
        let fail = |e: YamlError| BuildSpecError(e.in_source(file));
        let Some(root) = yaml::parse_bytes(bytes, &BUILD_FILE_LIMITS).map_err(fail)? else {
            return Err(fail(YamlError {
                source_name: String::new(),
                mark: None,
                path: String::new(),
                message: "the file is empty; it needs at least rai.image and commands.build \
                          (run `rai init` for a commented example)"
                    .into(),
            }));
        };
        let spec: BuildSpec = yaml::from_node(&root).map_err(fail)?;
        spec.check(&root).map_err(fail)?;
        Ok(spec)
    }

    /// Reads a build file from disk.
    pub fn load(path: &std::path::Path) -> Result<BuildSpec, BuildSpecError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| {
            BuildSpecError(YamlError {
                source_name: name.clone(),
                mark: None,
                path: String::new(),
                message: format!("cannot read the build file: {e}"),
            })
        })?;
        Self::parse_bytes(&bytes, &name)
    }

    // Long (about 100 lines) on purpose: one block per rule of the build file, in the order docs/build-file.md
    // lists them, each pointing at its own node.
    /// The checks a type cannot express, each naming the key concerned. The worker runs them again on the spec
    /// a signed job carries: a request made by hand (JSON, not YAML) must not skip them.
    fn rule_broken(&self) -> Result<(), Violation> {
        if !SUPPORTED_VERSIONS.contains(&self.rai.version.as_str()) {
            return Err(Violation::new(
                &["rai", "version"],
                "rai.version",
                format!(
                    "unsupported version \"{}\"; this rai reads versions {}",
                    self.rai.version,
                    SUPPORTED_VERSIONS.join(", ")
                ),
            ));
        }
        let image = self.rai.image.trim();
        if image.is_empty() {
            return Err(Violation::new(
                &["rai", "image"],
                "rai.image",
                "the image is empty; name a Docker image such as nvidia/cuda:12.4.1-devel-ubuntu22.04",
            ));
        }
        if image.starts_with('-') || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Violation::new(
                &["rai", "image"],
                "rai.image",
                format!(
                    "\"{image}\" is not a Docker image reference (no spaces, must not start with '-')"
                ),
            ));
        }
        if let Some(q) = &self.rai.queue
            && (q.is_empty()
                || !q
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c)))
        {
            return Err(Violation::new(
                &["rai", "queue"],
                "rai.queue",
                format!("\"{q}\" is not a queue name (letters, digits, - _ . : / only)"),
            ));
        }
        if self.commands.build.is_empty() {
            return Err(Violation::new(
                &["commands", "build"],
                "commands.build",
                "the command list is empty; list at least one command to run",
            ));
        }
        if let Some(i) = self.commands.build.iter().position(|c| c.trim().is_empty()) {
            return Err(Violation {
                path: &["commands", "build"],
                item: Some(i),
                key: format!("commands.build[{i}]"),
                message: "the command is empty; remove it or write a command".into(),
            });
        }
        let limits = self.resources.limits.clone().unwrap_or_default();
        if let (Some(a), Some(b)) = (self.resources.network, limits.network)
            && a != b
        {
            return Err(Violation::new(
                &["resources", "limits", "network"],
                "resources.limits.network",
                format!(
                    "contradicts resources.network ({a} vs {b}); keep one of the two spellings"
                ),
            ));
        }
        if let Some(t) = limits.time
            && t.0.is_zero()
        {
            return Err(Violation::new(
                &["resources", "limits", "time"],
                "resources.limits.time",
                "the time limit is zero; give a positive duration such as 10m",
            ));
        }
        if let Some(m) = limits.memory
            && m.0 < MIN_MEMORY
        {
            return Err(Violation::new(
                &["resources", "limits", "memory"],
                "resources.limits.memory",
                format!(
                    "{m} is too little memory to start a container; ask for at least {}",
                    Bytes(MIN_MEMORY)
                ),
            ));
        }
        if let Some(c) = limits.cpus
            && !(c.is_finite() && c >= MIN_CPUS)
        {
            return Err(Violation::new(
                &["resources", "limits", "cpus"],
                "resources.limits.cpus",
                format!(
                    "{c} CPUs is too little; ask for at least {MIN_CPUS} (a hundredth of a CPU)"
                ),
            ));
        }
        Ok(())
    }

    /// Checks a spec that did not come from a file (a signed job's JSON): the same rules as [`BuildSpec::parse`],
    /// the error naming the key (`resources.limits.memory: ...`).
    pub fn validate(&self) -> Result<(), String> {
        self.rule_broken()
            .map_err(|v| format!("{}: {}", v.key, v.message))
    }

    /// [`BuildSpec::rule_broken`], pointing at the node concerned.
    fn check(&self, root: &Node) -> Result<(), YamlError> {
        self.rule_broken().map_err(|v| {
            let mut node = root.at_path(v.path).unwrap_or(root);
            if let (Some(i), yaml::Value::Seq(items)) = (v.item, &node.value) {
                node = items.get(i).unwrap_or(node);
            }
            YamlError::at(node, &v.key, v.message)
        })
    }

    /// Whether the job asks for network access (default: no).
    pub fn wants_network(&self) -> bool {
        self.resources
            .limits
            .as_ref()
            .and_then(|l| l.network)
            .or(self.resources.network)
            .unwrap_or(false)
    }

    /// How many GPUs the job asks for (default: none).
    pub fn gpu_count(&self) -> u32 {
        self.resources.gpu.as_ref().map_or(0, |g| g.count)
    }

    /// The limits the job asks for (each unset one falls to the worker's default).
    pub fn limits(&self) -> LimitsRequest {
        self.resources.limits.clone().unwrap_or_default()
    }
}

/// A commented build file for `rai init`.
pub const TEMPLATE: &str = r#"# rai_build.yml: how rai builds and runs this project on a GPU worker.
# Every key is described in docs/build-file.md.
rai:
  version: 0.2
  # The Docker image the commands run in; it must be on your course's allow-list.
  image: nvidia/cuda:12.4.1-devel-ubuntu22.04
resources:
  gpu:
    count: 1
  limits:
    time: 10m        # the job is stopped after this long
    memory: 4g       # memory for the whole container
    network: false   # no network unless your course allows it
commands:
  # Each command runs in turn with /bin/sh -c, in /build (writable); your project is in /src (read-only).
  # The first command that fails ends the job with its exit code. /build is kept for `rai download`.
  build:
    - nvcc -o /build/vadd /src/vadd.cu
    - /build/vadd
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_example_reads() {
        let text = "rai:\n  version: 0.2\n  image: nvidia/cuda:12.4.1-devel-ubuntu22.04\nresources:\n  cpu: { architecture: amd64 }\n  gpu: { count: 1 }\n  limits: { time: 10m, memory: 4g, network: false }\ncommands:\n  build:\n    - nvcc -o /build/vadd /src/vadd.cu\n    - /build/vadd\n";
        let spec = BuildSpec::parse(text, BUILD_FILE_NAME).unwrap();
        assert_eq!(spec.rai.image, "nvidia/cuda:12.4.1-devel-ubuntu22.04");
        assert_eq!(spec.gpu_count(), 1);
        assert_eq!(spec.limits().time, Some(Span::from_secs(600)));
        assert_eq!(spec.limits().memory, Some(Bytes(4 << 30)));
        assert!(!spec.wants_network());
        assert_eq!(spec.commands.build.len(), 2);
    }

    #[test]
    fn the_2017_shape_reads() {
        let text = "rai:\n  version: 0.2\n  image: webgpu/rai:root\nresources:\n  cpu:\n    architecture: amd64\n  gpu:\n    architecture: pascal\n    count: 1\n  network: false\ncommands:\n  build:\n    - echo \"Building project\"\n    - cmake /src\n    - make\n";
        let spec = BuildSpec::parse(text, BUILD_FILE_NAME).unwrap();
        assert_eq!(spec.resources.network, Some(false));
        assert_eq!(
            spec.resources.gpu.as_ref().unwrap().architecture.as_deref(),
            Some("pascal")
        );
    }

    #[test]
    fn other_build_file_names_are_found_after_the_conventional_one() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(find_build_file(dir.path()), None);
        std::fs::write(dir.path().join("rai-build.yml"), TEMPLATE).unwrap();
        assert_eq!(
            find_build_file(dir.path()),
            Some(dir.path().join("rai-build.yml"))
        );
        std::fs::write(dir.path().join("rai_build.yaml"), TEMPLATE).unwrap();
        assert_eq!(
            find_build_file(dir.path()),
            Some(dir.path().join("rai_build.yaml"))
        );
        std::fs::write(dir.path().join(BUILD_FILE_NAME), TEMPLATE).unwrap();
        assert_eq!(
            find_build_file(dir.path()),
            Some(dir.path().join(BUILD_FILE_NAME))
        );
    }

    #[test]
    fn template_is_valid() {
        BuildSpec::parse(TEMPLATE, BUILD_FILE_NAME).unwrap();
    }

    #[test]
    fn json_round_trip_is_stable() {
        let spec = BuildSpec::parse(TEMPLATE, BUILD_FILE_NAME).unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        let back: BuildSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec);
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }
}
