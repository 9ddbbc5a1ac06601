//! Files the gateway rereads whenever they change (one `stat` per use): the account registry, so an instructor's
//! revocation holds from the next request, and the course file, so a moved deadline holds from the next submission;
//! neither needs a restart or a signal. A file that becomes unreadable or broken keeps its last good contents
//! (logged), so an instructor's half-written edit never locks the whole course out.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rai_common::account::Registry;
use rai_common::course::Course;

/// A file and its last good contents.
pub struct WatchedFile<T> {
    path: PathBuf,
    /// What the file is, for logs and errors ("the account registry").
    what: &'static str,
    read: fn(&Path) -> Result<T, String>,
    cached: Mutex<Cached<T>>,
}

struct Cached<T> {
    value: Arc<T>,
    modified: Option<SystemTime>,
}

/// The account registry, as the gateway reads it.
pub type RegistryFile = WatchedFile<Registry>;

/// The course file (`gateway.course`), as the gateway reads it.
pub type CourseFile = WatchedFile<Course>;

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl RegistryFile {
    pub fn load(path: &Path) -> anyhow::Result<RegistryFile> {
        WatchedFile::open(path, "the account registry", |p| {
            Registry::load(p).map_err(|e| e.to_string())
        })
    }
}

impl CourseFile {
    pub fn load(path: &Path) -> anyhow::Result<CourseFile> {
        WatchedFile::open(path, "the course file", |p| {
            Course::load(p).map_err(|e| e.to_string())
        })
    }
}

impl<T> WatchedFile<T> {
    fn open(
        path: &Path,
        what: &'static str,
        read: fn(&Path) -> Result<T, String>,
    ) -> anyhow::Result<WatchedFile<T>> {
        let value = read(path)
            .map_err(|e| anyhow::anyhow!("cannot read {what} {}: {e}", path.display()))?;
        Ok(WatchedFile {
            path: path.to_path_buf(),
            what,
            read,
            cached: Mutex::new(Cached {
                value: Arc::new(value),
                modified: modified(path),
            }),
        })
    }

    /// The contents as of now.
    pub fn current(&self) -> Arc<T> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        let now = modified(&self.path);
        if now != cached.modified {
            match (self.read)(&self.path) {
                Ok(value) => {
                    tracing::info!(path = %self.path.display(), what = self.what, "reloaded");
                    cached.value = Arc::new(value);
                    cached.modified = now;
                }
                Err(e) => {
                    tracing::error!(path = %self.path.display(), what = self.what, error = %e, "the file is broken; keeping the last good one");
                }
            }
        }
        cached.value.clone()
    }
}
