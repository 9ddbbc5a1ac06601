//! `/src` of a local run, made from the project as a worker makes it from an upload: the project is packed with the
//! upload's rules (`.raiignore`, the caps, links kept only inside the project) and unpacked by the guarded unpacker
//! into a folder of its own, through a pipe, so nothing is staged on disk twice. A job therefore sees exactly what
//! `rai submit` would send, and a file the upload would leave out is missing here too.

use std::path::{Path, PathBuf};

use rai_common::Config;
use rai_common::archive::{PackOptions, UnpackLimits};
use rai_common::errors::ArchiveError;
use thiserror::Error;

/// Why `/src` could not be made.
#[derive(Debug, Error)]
pub enum SourceError {
    #[error("cannot make a folder for /src: {0}")]
    Folder(#[source] std::io::Error),
    #[error("cannot pack the project: {0}")]
    Pack(#[source] ArchiveError),
    #[error("cannot unpack the project into /src: {0}")]
    Unpack(#[source] ArchiveError),
    #[error("the packer stopped unexpectedly: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// The folder mounted at `/src`, removed when dropped.
pub struct SourceDir {
    dir: tempfile::TempDir,
}

impl SourceDir {
    /// Packs `project` and unpacks it into a new folder.
    pub async fn make(project: &Path, config: &Config) -> Result<SourceDir, SourceError> {
        let dir = tempfile::Builder::new()
            .prefix("rai-local-src-")
            .tempdir()
            .map_err(SourceError::Folder)?;
        let opts = PackOptions {
            max_bytes: config.client.max_upload.0,
            max_files: config.client.max_files,
            ..PackOptions::default()
        };
        let (project, dest): (PathBuf, PathBuf) = (project.to_path_buf(), dir.path().join("src"));
        tokio::task::spawn_blocking(move || copy_through_archive(&project, &dest, &opts))
            .await
            .map_err(SourceError::Task)??;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // The job's user may differ from whoever runs rai (rai run as root): it reads /src as on a worker.
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .map_err(SourceError::Folder)?;
        }
        Ok(SourceDir { dir })
    }

    /// The folder's path on this machine.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("src")
    }
}

/// Packs `project` in one thread and unpacks the stream into `dest` in this one.
fn copy_through_archive(
    project: &Path,
    dest: &Path,
    opts: &PackOptions,
) -> Result<(), SourceError> {
    let (reader, writer) = std::io::pipe().map_err(SourceError::Folder)?;
    std::thread::scope(|scope| {
        let packer = scope.spawn(move || {
            let packed = rai_common::archive::pack(project, writer, opts, |_| {});
            // The writer is dropped here, so the unpacker sees the end of the stream even after a failed pack.
            packed
        });
        let unpacked = rai_common::archive::unpack(reader, dest, UnpackLimits::default());
        let packed = packer.join().expect("the packer never panics");
        // A failed pack explains a broken stream better than the unpacker's view of it.
        packed.map_err(SourceError::Pack)?;
        unpacked.map_err(SourceError::Unpack)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn src_holds_what_an_upload_would_hold() {
        let project = tempfile::tempdir().unwrap();
        std::fs::write(project.path().join("main.cu"), b"int main() {}\n").unwrap();
        std::fs::create_dir(project.path().join("data")).unwrap();
        std::fs::write(project.path().join("data/big.bin"), vec![7u8; 4096]).unwrap();
        std::fs::write(project.path().join(".raiignore"), b"data/\n").unwrap();
        let src = SourceDir::make(project.path(), &Config::defaults())
            .await
            .unwrap();
        let path = src.path();
        assert_eq!(
            std::fs::read(path.join("main.cu")).unwrap(),
            b"int main() {}\n"
        );
        assert!(
            !path.join("data/big.bin").exists(),
            ".raiignore leaves it out, as an upload does"
        );
        drop(src);
        assert!(!path.exists(), "removed with the run");
    }
}
