//! A project directory sent to the gateway as a job's input: scanned against the caps, then described as chunks
//! of which only those the gateway lacks go out (`client.chunked_uploads`, the default), or packed as one tar + zstd
//! archive into a temporary file and uploaded (an older gateway, or chunks turned off).
//!
//! The library does the work and says how far it got through [`SendProgress`]; `rai submit` and sweeps draw bars
//! and `✱` lines from that, and turn a [`SendError`] into an exit code.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rai_common::archive::{PackOptions, PackProgress, PackSummary, ScannedEntry, SkippedEntry};
use rai_common::digest::HashingWriter;
use rai_common::errors::{ArchiveError, ProjectError};
use rai_common::job::{InputObject, JobId};
use rai_common::objects::upload_key;
use rai_common::project::{EntryKind, LocalIndex, Spool};
use thiserror::Error;

use crate::client::project::ProjectUpload;
use crate::client::upload::Archive;
use crate::{Client, ClientError};

/// A project directory as scanned: its entries within the caps, and what was left out and why.
#[derive(Clone)]
pub struct ProjectDir {
    dir: PathBuf,
    scanned: (Vec<ScannedEntry>, Vec<SkippedEntry>),
    opts: PackOptions,
}

/// What was sent: the job's input, and what the student is told of it.
pub struct Sent {
    pub input: InputObject,
    /// What `✱ Job ...` says the project is: the archive's size, or the files' for a chunked upload.
    pub shown_size: u64,
    pub summary: PackSummary,
}

/// How far a send got, for a progress bar or a line now and then. Every method may be called from any thread.
pub trait SendProgress: Send + Sync {
    /// `n` more bytes of the project were read (a chunked upload describes the files as it reads them).
    fn read(&self, _n: u64) {}
    /// The archive is packed up to `done` of `total` bytes.
    fn packed(&self, _done: u64, _total: u64) {}
    /// The upload starts: `total` bytes when known (an archive's size).
    fn uploading(&self, _total: Option<u64>) {}
    /// `n` more bytes went out.
    fn sent(&self, _n: u64) {}
}

/// Why a project was not sent.
#[derive(Debug, Error)]
pub enum SendError {
    /// The project cannot be packed as it is (over a cap, unreadable): the student fixes the project.
    #[error(transparent)]
    Pack(#[from] ArchiveError),
    /// The project cannot be described as chunks (a file changed or vanished while it was read).
    #[error(transparent)]
    Describe(#[from] ProjectError),
    /// The gateway refused the upload, or could not be reached.
    #[error("cannot upload the project: {0}")]
    Gateway(#[source] ClientError),
    /// This machine could not hold the project on its way (a temporary file).
    #[error("{what}")]
    Local {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl SendError {
    /// Whether the project itself is at fault (the student changes it and submits again).
    pub fn is_the_projects(&self) -> bool {
        matches!(self, SendError::Pack(_) | SendError::Describe(_))
    }
}

fn local(what: &'static str) -> impl FnOnce(std::io::Error) -> SendError {
    move |source| SendError::Local { what, source }
}

fn blocking_failed(what: &'static str) -> impl FnOnce(tokio::task::JoinError) -> SendError {
    move |e| SendError::Local {
        what,
        source: std::io::Error::other(e),
    }
}

impl ProjectDir {
    /// Scans `dir` against `opts`' caps (on a blocking thread: a large project takes a while).
    pub async fn scan(dir: PathBuf, opts: PackOptions) -> Result<ProjectDir, SendError> {
        let scanned = {
            let (dir, opts) = (dir.clone(), opts.clone());
            tokio::task::spawn_blocking(move || rai_common::archive::scan(&dir, &opts))
                .await
                .map_err(blocking_failed("the directory scan failed"))??
        };
        Ok(ProjectDir { dir, scanned, opts })
    }
}

/// Sends `project` as job `job`'s input: as chunks when `chunked` (and the gateway takes them), else as an archive.
pub async fn send(
    client: &Client,
    job: JobId,
    project: &ProjectDir,
    datasets: &[String],
    chunked: bool,
    progress: Arc<dyn SendProgress>,
) -> Result<Sent, SendError> {
    if chunked && let Some(sent) = send_chunks(client, job, project, datasets, &progress).await? {
        return Ok(sent);
    }
    send_archive(client, job, project, datasets, progress).await
}

/// Packs the scanned directory into a temporary file (its size and SHA-256 computed on the way), then uploads it.
/// The file lets the upload be sent in parallel parts and its digest be declared before the first byte goes out.
async fn send_archive(
    client: &Client,
    job: JobId,
    project: &ProjectDir,
    datasets: &[String],
    progress: Arc<dyn SendProgress>,
) -> Result<Sent, SendError> {
    let file = tempfile::NamedTempFile::new()
        .map_err(local("cannot make a temporary file for the archive"))?;
    let writer = HashingWriter::new(
        file.reopen()
            .map_err(local("cannot reopen the temporary archive"))?,
    );
    let (summary, (size, sha256)) = {
        let ProjectDir { dir, scanned, opts } = project.clone();
        let progress = progress.clone();
        tokio::task::spawn_blocking(move || {
            let mut writer = std::io::BufWriter::with_capacity(1 << 20, writer);
            let summary = rai_common::archive::pack_scanned(
                &dir,
                scanned,
                &mut writer,
                &opts,
                |p: PackProgress| progress.packed(p.bytes_done, p.bytes_total),
            )?;
            let hashed = writer
                .into_inner()
                .map_err(|e| e.into_error())
                .and_then(HashingWriter::finish)
                .map_err(local("cannot write the temporary archive"))?;
            Ok::<_, SendError>((summary, hashed))
        })
        .await
        .map_err(blocking_failed("the packer failed"))??
    };
    progress.uploading(Some(size));
    let archive = Archive {
        path: file.path(),
        size,
        sha256: sha256.clone(),
    };
    let sent: crate::client::upload::Progress = {
        let progress = progress.clone();
        Arc::new(move |n| progress.sent(n))
    };
    client
        .upload(&job, &archive, datasets, sent)
        .await
        .map_err(SendError::Gateway)?;
    Ok(Sent {
        input: InputObject {
            key: upload_key(client.user(), &job),
            size,
            sha256,
        },
        shown_size: size,
        summary,
    })
}

/// Describes the project as a manifest (reading only the files its index does not know as they are), declares it,
/// and sends the chunks the gateway lacks. `None`: the gateway is older and takes only archives.
async fn send_chunks(
    client: &Client,
    job: JobId,
    project: &ProjectDir,
    datasets: &[String],
    progress: &Arc<dyn SendProgress>,
) -> Result<Option<Sent>, SendError> {
    let index_path = index_path(&project.dir);
    // Small files' chunks are sealed as they are read, into a temporary file, so that each is opened once.
    let spool = Arc::new(Spool::new().map_err(local(
        "cannot make a temporary file for the project's chunks",
    ))?);
    let described = {
        let (dir, scanned) = (project.dir.clone(), project.scanned.0.clone());
        let (spool, progress) = (spool.clone(), progress.clone());
        tokio::task::spawn_blocking(move || {
            let mut index = LocalIndex::load(&index_path);
            let described = rai_common::project::describe_with_progress(
                &dir,
                &scanned,
                &mut index,
                Some(&spool),
                &|n| progress.read(n),
            )?;
            // Only a faster next submit is lost if the index cannot be written.
            if let Err(e) = index.save(&index_path) {
                tracing::debug!(error = %e, "cannot write the project's index");
            }
            Ok::<_, ProjectError>(described)
        })
        .await
        .map_err(blocking_failed("the project reader failed"))??
    };
    progress.uploading(None);
    let sent: crate::client::upload::Progress = {
        let progress = progress.clone();
        Arc::new(move |n| progress.sent(n))
    };
    let m = &described.manifest;
    let uploaded = client
        .send_project(&job, &project.dir, m, datasets, Some(spool), sent)
        .await
        .map_err(SendError::Gateway)?;
    let ProjectUpload::Sent {
        input,
        chunks_sent,
        bytes_sent,
    } = uploaded
    else {
        return Ok(None);
    };
    tracing::debug!(chunks_sent, bytes_sent, "sent the project's missing chunks");
    let count = |f: fn(&EntryKind) -> bool| m.entries.iter().filter(|e| f(&e.kind)).count() as u64;
    let summary = PackSummary {
        files: count(|k| matches!(k, EntryKind::File { .. })),
        dirs: count(|k| matches!(k, EntryKind::Dir)),
        links: count(|k| matches!(k, EntryKind::Link { .. })),
        bytes: m.files().map(|(_, size, _)| size).sum(),
        skipped: project.scanned.1.clone(),
    };
    Ok(Some(Sent {
        shown_size: summary.bytes,
        input,
        summary,
    }))
}

/// Where the index of the project in `dir` is kept: the user's cache, one file per project folder.
fn index_path(dir: &Path) -> PathBuf {
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let name = rai_common::project::ChunkId::of(canonical.as_os_str().as_encoded_bytes());
    rai_common::paths::cache_dir()
        .join("index")
        .join(format!("{name}.json"))
}
