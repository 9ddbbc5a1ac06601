//! Files the gateway rereads whenever they change (one `stat` per use): the account registry, so an instructor's
//! revocation holds from the next request, and the course file, so a moved deadline holds from the next submission;
//! neither needs a restart or a signal. A file that becomes unreadable or broken keeps its last good contents
//! (logged), so an instructor's half-written edit never locks the whole course out. A broken version is remembered
//! too: it is parsed and logged once, not on every request under the lock (issue 26).

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
    /// The version of the file last read, good or broken.
    read: Option<Version>,
}

/// A version of a file: its modification time and length (an edit within one tick of the clock still changes
/// the length, or the next edit's time).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Version {
    modified: SystemTime,
    len: u64,
}

/// The account registry, as the gateway reads it.
pub type RegistryFile = WatchedFile<Registry>;

/// The course file (`gateway.course`), as the gateway reads it.
pub type CourseFile = WatchedFile<Course>;

fn version(path: &Path) -> Option<Version> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Version {
        modified: meta.modified().ok()?,
        len: meta.len(),
    })
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
                read: version(path),
            }),
        })
    }

    /// The contents as of now.
    pub fn current(&self) -> Arc<T> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        let now = version(&self.path);
        if now != cached.read {
            cached.read = now;
            match (self.read)(&self.path) {
                Ok(value) => {
                    tracing::info!(path = %self.path.display(), what = self.what, "reloaded");
                    cached.value = Arc::new(value);
                }
                Err(e) => {
                    tracing::error!(path = %self.path.display(), what = self.what, error = %e, "the file is broken; keeping the last good one until it changes");
                }
            }
        }
        cached.value.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static READS: AtomicUsize = AtomicUsize::new(0);

    fn count_and_parse(path: &Path) -> Result<u32, String> {
        READS.fetch_add(1, Ordering::SeqCst);
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        text.trim().parse().map_err(|e| format!("{e}"))
    }

    #[test]
    fn a_broken_version_is_read_once_and_the_last_good_one_kept_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "1").unwrap();
        let file = WatchedFile::open(&path, "a number", count_and_parse).unwrap();
        assert_eq!(*file.current(), 1);
        std::fs::write(&path, "not a number").unwrap();
        let before = READS.load(Ordering::SeqCst);
        for _ in 0..100 {
            assert_eq!(*file.current(), 1);
        }
        assert_eq!(READS.load(Ordering::SeqCst), before + 1, "parsed once");
        std::fs::write(&path, "22").unwrap();
        assert_eq!(*file.current(), 22);
    }
}
