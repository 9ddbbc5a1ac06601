//! `commands.build_image`: a job's image built from the Dockerfile in its project, as the original RAI did, where the
//! worker's policy allows it (`raid.build_images`).
//!
//! The build context is the unpacked project, packed again as a tar with fixed times and owners, so its SHA-256
//! names the content: the image is tagged `rai-built/context:<hash>` and reused by the next job with the same
//! files (unless `no_cache`). The student's `image_name` is kept as a label and shown, never used as a tag: a tag a
//! student chose could replace an image that other jobs on this worker name. The Dockerfile's base images must be on
//! the worker's allow-list (and are pulled like `rai.image` when missing); `RUN` steps get no network unless the
//! policy allows it; the build has its own time limit, memory limit and image size limit; nothing is ever pushed.
//! Built images are pruned by age and total size after each build. What the build says ([`BuildLine`]: rai's lines,
//! the pulls of base images, the build's own output) goes out on a channel as it comes, and the job's life tells the
//! student, live: the builder never publishes anything itself.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder,
};
use futures::StreamExt;
use rai_common::build_spec::BuildImage;
use rai_common::config::BuildImagesConfig;
use rai_common::digest::HashingWriter;
use sha2::{Digest, Sha256};

use crate::policy::{PolicyError, image_allowed};
use rai_sandbox::SandboxError;

/// The label every built image carries, so pruning finds only what builds made.
pub const BUILT_LABEL: &str = "rai.built";

/// The repository built images are tagged in.
const BUILT_REPOSITORY: &str = "rai-built/context";

/// Why an image could not be built, in words for the student.
#[derive(Debug, thiserror::Error)]
pub enum ImageBuildError {
    #[error(
        "commands.build_image: the Dockerfile \"{0}\" is not in your project; add it, or name it with commands.build_image.dockerfile"
    )]
    NoDockerfile(String),
    #[error("commands.build_image: {0}")]
    Dockerfile(String),
    #[error(
        "commands.build_image: the base image \"{image}\" is not allowed on this worker (allowed: {allowed})"
    )]
    BaseNotAllowed { image: String, allowed: String },
    #[error("the image build failed: {0}")]
    Failed(String),
    #[error("the image build took longer than this worker's {} (raid.build_images.time)", rai_common::units::Span(*.0))]
    TimedOut(Duration),
    #[error("the built image is {}, over this worker's limit of {} (raid.build_images.max_size)", rai_common::units::Bytes(*.size).human(), rai_common::units::Bytes(*.cap).human())]
    TooLarge { size: u64, cap: u64 },
    #[error("cannot pack the build context: {0}")]
    Context(#[source] std::io::Error),
    #[error("the Docker engine refused the build: {0}")]
    Engine(#[source] bollard::errors::Error),
    /// The worker's allow-list is broken.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("the build context packer stopped unexpectedly: {0}")]
    Packer(#[source] tokio::task::JoinError),
    /// A base image could not be pulled.
    #[error(transparent)]
    Pull(#[from] SandboxError),
}

/// What a build says as it goes, for the job's life to tell the student.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildLine {
    /// A line of rai's (a `✱` line).
    System(String),
    /// The build's own output (Docker's `stream`), shown as the job's output.
    Output(String),
}

/// Where a build says its lines; a build goes on when nobody listens any more.
pub type Said = tokio::sync::mpsc::Sender<BuildLine>;

/// The images a Dockerfile builds `FROM`, less the names of its own earlier stages. Build arguments in a `FROM`
/// line are refused: the base image must be known before the build, to check it against the allow-list.
pub fn base_images(dockerfile: &str) -> Result<Vec<String>, String> {
    let mut stages: Vec<String> = Vec::new();
    let mut bases = Vec::new();
    let mut froms = 0;
    // Continuation lines join their instruction, as Docker reads them.
    let joined = dockerfile.replace("\\\r\n", " ").replace("\\\n", " ");
    for (n, line) in joined.lines().enumerate() {
        let line = line.trim();
        let mut words = line.split_whitespace();
        if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("FROM")) {
            continue;
        }
        froms += 1;
        let rest: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
        let Some(image) = rest.first() else {
            return Err(format!("line {}: FROM names no image", n + 1));
        };
        if image.contains('$') {
            return Err(format!(
                "line {}: FROM {image} uses a build argument; name the base image itself so the worker can check \
                 it against its allow-list",
                n + 1
            ));
        }
        if !stages.iter().any(|s| s.eq_ignore_ascii_case(image)) && *image != "scratch" {
            bases.push(image.to_string());
        }
        if let (Some(as_word), Some(name)) = (rest.get(1), rest.get(2))
            && as_word.eq_ignore_ascii_case("AS")
        {
            stages.push(name.to_string());
        }
    }
    if froms == 0 {
        return Err("the Dockerfile has no FROM line".into());
    }
    Ok(bases)
}

/// Packs `dir` into `out` as a build context, in name order with fixed times and owners (so the same files give
/// the same bytes), without following links; returns the SHA-256 of the tar.
pub fn pack_context(dir: &Path, out: &Path) -> std::io::Result<String> {
    fn walk(dir: &Path, rel: &Path, paths: &mut Vec<PathBuf>) -> std::io::Result<()> {
        let mut names: Vec<_> = std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for name in names {
            let (full, rel) = (dir.join(&name), rel.join(&name));
            let meta = std::fs::symlink_metadata(&full)?;
            paths.push(rel.clone());
            if meta.is_dir() {
                walk(&full, &rel, paths)?;
            }
        }
        Ok(())
    }
    let mut paths = Vec::new();
    walk(dir, Path::new(""), &mut paths)?;
    let file = std::fs::File::create(out)?;
    let mut builder = tar::Builder::new(HashingWriter::new(std::io::BufWriter::new(file)));
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(false);
    for rel in paths {
        let full = dir.join(&rel);
        let meta = std::fs::symlink_metadata(&full)?;
        if meta.is_dir() {
            builder.append_dir(&rel, &full)?;
        } else if meta.is_file() || meta.file_type().is_symlink() {
            builder.append_path_with_name(&full, &rel)?;
        }
    }
    let (_, hash) = builder.into_inner()?.finish()?;
    Ok(hash)
}

/// What a build may use: the worker's engine, its build policy and image allow-list, and the job's memory.
pub struct ImageBuilder<'a> {
    pub docker: &'a Docker,
    pub policy: &'a BuildImagesConfig,
    pub allowed_images: &'a [String],
    pub memory: u64,
    /// The job network (`raid.job_network.name`) that `RUN` steps use when the policy allows them the network: the
    /// same firewall as jobs, never Docker's default bridge.
    pub network: &'a str,
}

impl ImageBuilder<'_> {
    /// Builds (or reuses) the image a job's `commands.build_image` describes, from the project unpacked at `src`
    /// (the context is packed into `scratch`); returns its tag.
    pub async fn build(
        &self,
        build: &BuildImage,
        src: &Path,
        scratch: &Path,
        said: Said,
    ) -> Result<String, ImageBuildError> {
        build_job_image(self, build, src, scratch, &said).await
    }
}

async fn build_job_image(
    builder: &ImageBuilder<'_>,
    build: &BuildImage,
    src: &Path,
    scratch: &Path,
    said: &Said,
) -> Result<String, ImageBuildError> {
    let ImageBuilder {
        docker,
        policy,
        allowed_images,
        memory,
        network,
    } = *builder;
    let say = |line: BuildLine| async move {
        // Nobody listening (the job is being stopped) is no reason to stop the build here.
        let _ = said.send(line).await;
    };
    let dockerfile_path = src.join(build.dockerfile());
    let dockerfile = match std::fs::symlink_metadata(&dockerfile_path) {
        Ok(m) if m.is_file() => std::fs::read_to_string(&dockerfile_path)
            .map_err(|e| ImageBuildError::Dockerfile(format!("cannot read it: {e}")))?,
        _ => {
            return Err(ImageBuildError::NoDockerfile(build.dockerfile().into()));
        }
    };
    let bases = base_images(&dockerfile).map_err(ImageBuildError::Dockerfile)?;
    for base in &bases {
        if !image_allowed(allowed_images, base)? {
            return Err(ImageBuildError::BaseNotAllowed {
                image: base.clone(),
                allowed: allowed_images.join(", "),
            });
        }
    }
    let context = scratch.join("context.tar");
    let (src_owned, context_owned) = (src.to_path_buf(), context.clone());
    let hash = tokio::task::spawn_blocking(move || pack_context(&src_owned, &context_owned))
        .await
        .map_err(ImageBuildError::Packer)?
        .map_err(ImageBuildError::Context)?;
    // The Dockerfile's path is part of what is built, beside the files.
    let key = hex::encode(Sha256::digest(format!("{hash}:{}", build.dockerfile())));
    let tag = format!("{BUILT_REPOSITORY}:{}", &key[..32]);
    let shown = build.image_name.as_deref().unwrap_or("your image");
    if !build.no_cache && docker.inspect_image(&tag).await.is_ok() {
        say(BuildLine::System(format!(
            "Using {shown}, built earlier on this worker from the same files ({tag})"
        )))
        .await;
        return Ok(tag);
    }
    for base in &bases {
        let mut lines = std::pin::pin!(rai_sandbox::image::ensure(docker, base));
        while let Some(line) = lines.next().await {
            say(BuildLine::System(line?)).await;
        }
    }
    say(BuildLine::System(format!(
        "Building {shown} from {} (at most {}, {})",
        build.dockerfile(),
        rai_common::units::Span(policy.time.as_duration()),
        if policy.network {
            "network allowed"
        } else {
            "no network"
        }
    )))
    .await;
    let labels = HashMap::from([
        (BUILT_LABEL.to_string(), "1".to_string()),
        (
            "rai.image_name".to_string(),
            build.image_name.clone().unwrap_or_default(),
        ),
    ]);
    let options = BuildImageOptionsBuilder::default()
        .dockerfile(build.dockerfile())
        .t(&tag)
        .rm(true)
        .forcerm(true)
        .nocache(build.no_cache)
        .pull("")
        .networkmode(if policy.network { network } else { "none" })
        .memory(i32::try_from(memory).unwrap_or(i32::MAX))
        .labels(&labels)
        .build();
    let file = tokio::fs::File::open(&context)
        .await
        .map_err(ImageBuildError::Context)?;
    let body = bollard::body_try_stream(tokio_util::io::ReaderStream::new(file));
    let mut progress = docker.build_image(options, None, Some(body));
    let limit = policy.time.as_duration();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let step = match tokio::time::timeout_at(deadline, progress.next()).await {
            Err(_) => return Err(ImageBuildError::TimedOut(limit)),
            Ok(None) => break,
            Ok(Some(step)) => step,
        };
        let info = match step {
            Ok(info) => info,
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                return Err(ImageBuildError::Failed(error.trim().to_string()));
            }
            Err(e) => return Err(ImageBuildError::Engine(e)),
        };
        if let Some(text) = info.stream {
            say(BuildLine::Output(text)).await;
        }
        if let Some(detail) = info.error_detail {
            return Err(ImageBuildError::Failed(
                detail.message.unwrap_or_default().trim().to_string(),
            ));
        }
    }
    let size = docker
        .inspect_image(&tag)
        .await
        .map_err(ImageBuildError::Engine)?
        .size
        .unwrap_or(0)
        .max(0) as u64;
    if size > policy.max_size.0 {
        remove_image(docker, &tag).await;
        return Err(ImageBuildError::TooLarge {
            size,
            cap: policy.max_size.0,
        });
    }
    say(BuildLine::System(format!(
        "Built {shown} ({}); the commands run in it",
        rai_common::units::Bytes(size).human()
    )))
    .await;
    prune(docker, policy, &tag).await;
    Ok(tag)
}

async fn remove_image(docker: &Docker, tag: &str) {
    let options = RemoveImageOptionsBuilder::default().force(true).build();
    if let Err(e) = docker.remove_image(tag, Some(options), None).await {
        tracing::warn!(image = %tag, error = %e, "cannot remove a built image");
    }
}

/// Removes built images older than `keep`, then the oldest until the rest fit in `max_total`; `current` stays.
pub async fn prune(docker: &Docker, policy: &BuildImagesConfig, current: &str) {
    let filters = HashMap::from([("label".to_string(), vec![BUILT_LABEL.to_string()])]);
    let options = ListImagesOptionsBuilder::default()
        .filters(&filters)
        .build();
    let Ok(mut images) = docker.list_images(Some(options)).await else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    images.sort_by_key(|i| std::cmp::Reverse(i.created));
    let mut total: u64 = 0;
    for image in images {
        let is_current = image.repo_tags.iter().any(|t| t == current);
        let size = image.size.max(0) as u64;
        let too_old = now - image.created > policy.keep.as_duration().as_secs() as i64;
        if !is_current && (too_old || total + size > policy.max_total.0) {
            tracing::info!(image = %image.id, too_old, "pruning a built image");
            remove_image(docker, &image.id).await;
        } else {
            total += size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_images_skip_stages_and_refuse_arguments() {
        let df = "# syntax\nFROM nvidia/cuda:12 AS build\nRUN make\nfrom --platform=linux/amd64 build AS again\nFROM \\\n  course/run:1\nCOPY --from=build /a /a\n";
        assert_eq!(
            base_images(df).unwrap(),
            vec!["nvidia/cuda:12".to_string(), "course/run:1".to_string()]
        );
        assert!(
            base_images("ARG B\nFROM $B\n")
                .unwrap_err()
                .contains("build argument")
        );
        assert!(base_images("RUN true\n").unwrap_err().contains("no FROM"));
        assert!(base_images("FROM scratch\n").unwrap().is_empty());
    }

    #[test]
    fn the_same_files_pack_to_the_same_hash() {
        let a = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("Dockerfile"), "FROM x\n").unwrap();
        std::fs::create_dir(a.path().join("src")).unwrap();
        std::fs::write(a.path().join("src/main.cu"), "int main(){}\n").unwrap();
        let first = pack_context(a.path(), &out.path().join("1.tar")).unwrap();
        // Times change, content does not: the same hash.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(a.path().join("src/main.cu"), "int main(){}\n").unwrap();
        assert_eq!(
            first,
            pack_context(a.path(), &out.path().join("2.tar")).unwrap()
        );
        std::fs::write(a.path().join("src/main.cu"), "int main(){return 1;}\n").unwrap();
        assert_ne!(
            first,
            pack_context(a.path(), &out.path().join("3.tar")).unwrap()
        );
        let names: Vec<String> =
            tar::Archive::new(std::fs::File::open(out.path().join("1.tar")).unwrap())
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().display().to_string())
                .collect();
        assert_eq!(names, ["Dockerfile", "src", "src/main.cu"]);
    }
}
