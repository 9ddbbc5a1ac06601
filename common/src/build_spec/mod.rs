//! The build file, `rai_build.yml`: what image a job runs in, what it may use, and which commands it runs.
//!
//! The shape is the original RAI's (2016 to 2022), so old projects run unchanged. The reading is lenient where the
//! original was (unknown keys, repeated keys, keys that did nothing: [`lenient`] drops them) and says so: each
//! becomes a [`BuildWarning`] with file, line and column, which `rai validate --strict` (or a course's policy)
//! turns into errors. What cannot mean anything (a wrong type, no image, no commands, broken YAML) is an error
//! that names the file, line and column and says what was expected. A worker re-checks the spec against its own
//! policy; this module only checks that the file means something.
//!
//! Over 450 lines: the build file's types and its rules (rule_broken), with their tests.

use serde::{Deserialize, Serialize};

use crate::units::{Bytes, Span};
use crate::yaml::{self, Duplicates, Limits, Node, YamlError};

mod lenient;
pub mod matrix;
#[cfg(test)]
mod serde_fields;

pub use lenient::BuildWarning;
pub use matrix::{Combination, Matrix};

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
    /// The key whose absence breaks the rule, if that is what breaks it.
    missing: Option<&'static str>,
}

impl Violation {
    fn missing(mut self, key: &'static str) -> Violation {
        self.missing = Some(key);
        self
    }

    fn new(path: &'static [&'static str], key: &str, message: impl Into<String>) -> Violation {
        Violation {
            path,
            item: None,
            key: key.to_string(),
            message: message.into(),
            missing: None,
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
    /// A parameter sweep: one job per combination of values ([`matrix`]).
    #[serde(default, skip_serializing_if = "Matrix::is_empty")]
    pub matrix: Matrix,
    /// What the reading of the file warned about (each located, `rai_build.yml:3:5: ...`), carried with the job so
    /// a course whose policy reads build files strictly can refuse it (`raid.strict_build_files`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The `rai:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaiSection {
    #[serde(default = "default_version")]
    pub version: String,
    /// The image the commands run in; may be left out when `commands.build_image` builds one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
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
    /// Course datasets to mount read-only at `/data/NAME` (`rai datasets` lists them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<String>,
    /// The 2017 form: data fetched from a URL into a mount. Honoured where the mount names one of the worker's
    /// datasets (`/data/imagenet-mini`); nothing is fetched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dataresources: Vec<DataResource>,
}

impl Resources {
    fn is_empty(&self) -> bool {
        *self == Resources::default()
    }
}

/// One entry of the 2017 `resources.dataresources` list. Only `mount` means anything now; the other keys the
/// original knew (`source.url`, `source.extract`, `cache`) are read and kept so the file means what it says, and
/// anything else in an entry is ignored, as the original ignored it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<DataSource>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache: bool,
}

/// Where the original fetched a data resource from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub extract: bool,
}

impl DataResource {
    /// The dataset a 2017 entry's mount names: its last path component (`/data/imagenet-mini` names
    /// `imagenet-mini`), when that is a dataset name at all.
    pub fn dataset(&self) -> Option<&str> {
        mount_dataset(self.mount.as_deref()?)
    }
}

/// The dataset a mount path names: its last component, when that is a dataset name.
pub fn mount_dataset(mount: &str) -> Option<&str> {
    let name = mount.trim_end_matches('/').rsplit('/').next()?;
    is_dataset_name(name).then_some(name)
}

/// Whether `name` can name a dataset: 1 to 64 of lower-case letters, digits, `-`, `_` and `.`, starting with a
/// letter or digit (it becomes a folder name, `/data/NAME`).
pub fn is_dataset_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

/// CPU architectures a job may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    Amd64,
    Arm64,
    Ppc64le,
}

impl Architecture {
    /// The name a build file writes (`amd64`), as in the queue names `rai_amd64` of the 2017 client.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Amd64 => "amd64",
            Architecture::Arm64 => "arm64",
            Architecture::Ppc64le => "ppc64le",
        }
    }
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
    /// May be left out only beside `build_image` (the original then built the image and ran nothing).
    #[serde(default)]
    pub build: Vec<String>,
    /// An image to build from a Dockerfile in the project before the commands run in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_image: Option<BuildImage>,
}

/// `commands.build_image`: the original's way to run in an image of the student's own making.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildImage {
    /// The name the student gives the image: shown and kept as a label (the worker tags images by their content,
    /// never by a name a student chose). Names starting with `rai` are refused, as the original refused them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
    /// The Dockerfile's path inside the project (default `Dockerfile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// Build without the build cache, and without reusing an image already built from the same context.
    #[serde(default)]
    pub no_cache: bool,
}

impl BuildImage {
    /// The Dockerfile's path inside the project.
    pub fn dockerfile(&self) -> &str {
        self.dockerfile.as_deref().unwrap_or("Dockerfile")
    }
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

    /// Reads and checks a build file's bytes (which must be UTF-8); the warnings are kept in [`BuildSpec::warnings`].
    pub fn parse_bytes(bytes: &[u8], file: &str) -> Result<BuildSpec, BuildSpecError> {
        Self::read(bytes, file).map(|(spec, _)| spec)
    }

    /// Reads and checks a build file's bytes, returning the spec and what its reading warned about, in file order.
    pub fn read(
        bytes: &[u8],
        file: &str,
    ) -> Result<(BuildSpec, Vec<BuildWarning>), BuildSpecError> {
        let fail = |e: YamlError| BuildSpecError(e.in_source(file));
        let parsed = yaml::parse_bytes_with(bytes, &BUILD_FILE_LIMITS, Duplicates::LaterWins)
            .map_err(fail)?;
        let Some(mut root) = parsed.root else {
            return Err(fail(YamlError::new(
                "the file is empty; it needs at least rai.image and commands.build \
                 (run `rai init` for a commented example)",
            )));
        };
        let mut warnings: Vec<BuildWarning> =
            parsed.repeated.into_iter().map(BuildWarning).collect();
        warnings.extend(lenient::clean(&mut root));
        let hint = |e: YamlError| with_misspelling_hint(e, &warnings);
        let mut spec: BuildSpec = yaml::from_node(&root).map_err(hint).map_err(fail)?;
        spec.check(&root).map_err(hint).map_err(fail)?;
        if !lenient::version_known(&spec.rai.version) {
            let node = root.at_path(&["rai", "version"]).unwrap_or(&root);
            warnings.push(BuildWarning(YamlError::at(
                node,
                "rai.version",
                format!(
                    "\"{}\" is not a version the original rai wrote (0.x or 0.x.y); rai reads it \
                     like any other",
                    spec.rai.version
                ),
            )));
        }
        if spec.commands.build_image.is_some() && !spec.rai.image.trim().is_empty() {
            let node = root.at_path(&["rai", "image"]).unwrap_or(&root);
            warnings.push(BuildWarning(YamlError::at(
                node,
                "rai.image",
                "is not used: commands.build_image builds the image the commands run in (as the original did)",
            )));
        }
        warnings.sort_by_key(|w| w.0.mark.map(|m| (m.line, m.col)));
        let warnings: Vec<BuildWarning> = warnings
            .into_iter()
            .map(|w| BuildWarning(w.0.in_source(file)))
            .collect();
        spec.warnings = warnings.iter().map(ToString::to_string).collect();
        Ok((spec, warnings))
    }

    /// Reads a build file from disk.
    pub fn load(path: &std::path::Path) -> Result<BuildSpec, BuildSpecError> {
        Self::load_with_warnings(path).map(|(spec, _)| spec)
    }

    /// Reads a build file from disk, with its warnings.
    pub fn load_with_warnings(
        path: &std::path::Path,
    ) -> Result<(BuildSpec, Vec<BuildWarning>), BuildSpecError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| {
            BuildSpecError(
                YamlError::new(format!("cannot read the build file: {e}")).in_source(&name),
            )
        })?;
        Self::read(&bytes, &name)
    }

    // Long (about 100 lines) on purpose: one block per rule of the build file, in the order docs/build-file.md
    // lists them, each pointing at its own node.
    /// The checks a type cannot express, each naming the key concerned. The worker runs them again on the spec
    /// a signed job carries: a request made by hand (JSON, not YAML) must not skip them.
    fn rule_broken(&self) -> Result<(), Violation> {
        let image = self.rai.image.trim();
        if let Some(build) = &self.commands.build_image {
            build_image_broken(build)?;
        } else if image.is_empty() {
            return Err(Violation::new(
                &["rai"],
                "rai.image",
                "no image: name a Docker image such as nvidia/cuda:12.4.1-devel-ubuntu22.04, or build one from \
                 a Dockerfile in the project with commands.build_image",
            )
            .missing("image"));
        }
        if !image.is_empty()
            && (image.starts_with('-')
                || image.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
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
        if self.commands.build.is_empty() && self.commands.build_image.is_none() {
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
                missing: None,
            });
        }
        if let Some(i) = self
            .resources
            .datasets
            .iter()
            .position(|d| !is_dataset_name(d))
        {
            return Err(Violation {
                path: &["resources", "datasets"],
                item: Some(i),
                key: format!("resources.datasets[{i}]"),
                message: format!(
                    "\"{}\" is not a dataset name (lower-case letters, digits, - _ . only); `rai datasets` \
                     lists the course's",
                    self.resources.datasets[i]
                ),
                missing: None,
            });
        }
        if let Some((key, message)) = self.matrix.broken() {
            return Err(Violation {
                path: &["matrix"],
                item: None,
                key,
                message,
                missing: None,
            });
        }
        let limits = self.resources.limits.clone().unwrap_or_default();
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
    pub fn validate(&self) -> Result<(), crate::errors::SpecRuleError> {
        self.rule_broken()
            .map_err(|v| crate::errors::SpecRuleError {
                key: v.key,
                message: v.message,
            })
    }

    /// [`BuildSpec::rule_broken`], pointing at the node concerned.
    fn check(&self, root: &Node) -> Result<(), YamlError> {
        if self.commands.build_image.is_none() && root.at_path(&["commands", "build"]).is_none() {
            let node = root.at_path(&["commands"]).unwrap_or(root);
            return Err(YamlError::at(
                node,
                "commands",
                "missing key \"build\": list the commands to run (only a file with commands.build_image may leave \
                 them out, to build its image and run nothing)",
            )
            .missing_key("build"));
        }
        self.rule_broken().map_err(|v| {
            let mut node = root.at_path(v.path).unwrap_or(root);
            if let (Some(i), yaml::Value::Seq(items)) = (v.item, &node.value) {
                node = items.get(i).unwrap_or(node);
            }
            let e = YamlError::at(node, &v.key, v.message);
            match v.missing {
                Some(key) => e.missing_key(key),
                None => e,
            }
        })
    }

    /// Whether the job asks for network access (default: no).
    pub fn wants_network(&self) -> bool {
        self.resources
            .limits
            .as_ref()
            .and_then(|l| l.network)
            .unwrap_or(false)
    }

    /// The queue the 2017-2018 clients chose when none was named: `rai_<resources.cpu.architecture>`.
    pub fn inferred_queue(&self) -> Option<String> {
        let arch = self.resources.cpu.as_ref()?.architecture?;
        Some(format!("rai_{}", arch.name()))
    }

    /// The datasets the job asks for by name (`resources.datasets`), each once, in order.
    pub fn datasets(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for d in &self.resources.datasets {
            if !names.contains(&d.as_str()) {
                names.push(d);
            }
        }
        names
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

/// `commands.build_image`'s rules: a name Docker can tag that is not the service's own, a Dockerfile inside the
/// project.
fn build_image_broken(build: &BuildImage) -> Result<(), Violation> {
    if let Some(name) = &build.image_name {
        let ok_chars = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.:/".contains(c))
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric());
        if !ok_chars {
            return Err(Violation::new(
                &["commands", "build_image", "image_name"],
                "commands.build_image.image_name",
                format!(
                    "\"{name}\" is not an image name Docker can tag (lower-case letters, digits, - _ . : /)"
                ),
            ));
        }
        if name.starts_with("rai") {
            return Err(Violation::new(
                &["commands", "build_image", "image_name"],
                "commands.build_image.image_name",
                format!(
                    "\"{name}\" starts with \"rai\"; those names belong to the service (the original refused them \
                     too); choose another name"
                ),
            ));
        }
    }
    let dockerfile = build.dockerfile();
    let path = std::path::Path::new(dockerfile);
    if dockerfile.is_empty()
        || path.is_absolute()
        || path.components().any(|c| {
            !matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
    {
        return Err(Violation::new(
            &["commands", "build_image", "dockerfile"],
            "commands.build_image.dockerfile",
            format!(
                "\"{dockerfile}\" is not a path inside the project; write it relative to the project folder, \
                 such as Dockerfile or docker/Dockerfile"
            ),
        ));
    }
    Ok(())
}

/// A "missing key" error made more useful when the missing key was misspelt: the warning that dropped the
/// misspelling is named.
fn with_misspelling_hint(mut e: YamlError, warnings: &[BuildWarning]) -> YamlError {
    let misspelt = e
        .missing()
        .and_then(|missing| warnings.iter().find(|w| w.0.looks_like() == Some(missing)));
    if let Some(w) = misspelt {
        let at =
            w.0.mark
                .map(|m| format!(" at line {}", m.line))
                .unwrap_or_default();
        let key = w.0.path.rsplit('.').next().unwrap_or(&w.0.path);
        e.message = format!(
            "{}; \"{key}\"{at} looks like a misspelling of it",
            e.message
        );
    }
    e
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
    fn datasets_are_asked_for_by_name() {
        let text = "rai:\n  image: img\nresources:\n  datasets: [imagenet-mini, weights.v2]\ncommands:\n  build: [ls /data]\n";
        let spec = BuildSpec::parse(text, BUILD_FILE_NAME).unwrap();
        assert_eq!(spec.datasets(), ["imagenet-mini", "weights.v2"]);
        let bad =
            "rai:\n  image: img\nresources:\n  datasets: [ok, ../etc]\ncommands:\n  build: [ls]\n";
        let e = BuildSpec::parse(bad, BUILD_FILE_NAME)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("resources.datasets[1]") && e.contains("not a dataset name"),
            "{e}"
        );
        // A spec written by hand as JSON is held to the same rule.
        let mut spec = spec;
        spec.resources.datasets.push("/".into());
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("resources.datasets[2]")
        );
    }

    #[test]
    fn a_2017_data_resource_names_the_dataset_its_mount_ends_in() {
        let text = "rai:\n  image: img\nresources:\n  dataresources:\n    - mount: /data/imagenet-mini/\n      source:\n        url: http://example.com/a.tar\n        extract: true\n      cache: true\n      other: ignored\n    - mount: /\ncommands:\n  build: [ls]\n";
        let (spec, warnings) = BuildSpec::read(text.as_bytes(), BUILD_FILE_NAME).unwrap();
        let names: Vec<_> = spec
            .resources
            .dataresources
            .iter()
            .map(DataResource::dataset)
            .collect();
        assert_eq!(names, [Some("imagenet-mini"), None]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].to_string().contains(
                "resources.dataresources[0].source: data is not fetched from URLs; the entry mounts the course \
                 dataset \"imagenet-mini\""
            ),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn the_2017_shape_reads() {
        let text = "rai:\n  version: 0.2\n  image: webgpu/rai:root\nresources:\n  cpu:\n    architecture: amd64\n  gpu:\n    architecture: pascal\n    count: 1\n  network: false\ncommands:\n  build:\n    - echo \"Building project\"\n    - cmake /src\n    - make\n";
        let (spec, warnings) = BuildSpec::read(text.as_bytes(), BUILD_FILE_NAME).unwrap();
        assert!(!spec.wants_network());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0]
                .to_string()
                .starts_with("rai_build.yml:10:3: resources.network: has no effect here"),
            "{}",
            warnings[0]
        );
        assert_eq!(spec.warnings, vec![warnings[0].to_string()]);
        assert_eq!(
            spec.resources.gpu.as_ref().unwrap().architecture.as_deref(),
            Some("pascal")
        );
    }

    #[test]
    fn build_image_alone_builds_and_runs_nothing_as_the_original_did() {
        // As two of the public course build files have it: no commands.build at all.
        let text = "rai:\n  version: 0.2\ncommands:\n  build_image:\n    image_name: course/lab\n    dockerfile: ./Dockerfile\n";
        let spec = BuildSpec::parse(text, BUILD_FILE_NAME).unwrap();
        assert!(spec.commands.build.is_empty());
        assert!(spec.commands.build_image.is_some());
        // Without build_image, the commands may not be left out, nor be an empty list.
        let e = BuildSpec::parse(
            "rai:\n  version: 0.2\n  image: x\ncommands:\n  other: 1\n",
            BUILD_FILE_NAME,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(
                "rai_build.yml:5:3: commands: missing key \"build\": list the commands to run"
            ),
            "{e}"
        );
        let e = BuildSpec::parse(
            "rai:\n  version: 0.2\n  image: x\ncommands:\n  build: []\n",
            BUILD_FILE_NAME,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("the command list is empty"), "{e}");
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
