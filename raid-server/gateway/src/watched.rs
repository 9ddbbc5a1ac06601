//! Files the gateway rereads whenever they change (one `stat` per use): the account registry, so an instructor's
//! revocation holds from the next request, and the course file, so a moved deadline holds from the next submission;
//! neither needs a restart or a signal. The course file is also reread when a build file it names changes (an
//! instructor fixing the grader edits only that file). A file that becomes unreadable or broken keeps its last good contents
//! (logged), so an instructor's half-written edit never locks the whole course out. A broken version is remembered
//! too: it is parsed and logged once, not on every request under the lock (issue 26).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rai_common::account::Registry;
use rai_common::course::{Course, CourseError};
use rai_common::errors::AccountError;

/// A file and its last good contents; `E`: why a version of it cannot be used.
pub struct WatchedFile<T, E> {
    path: PathBuf,
    /// What the file is, for logs and errors ("the account registry").
    what: &'static str,
    read: fn(&Path) -> Result<T, E>,
    /// Other files its contents were read from (a course's build files).
    also: fn(&T) -> Vec<PathBuf>,
    cached: Mutex<Cached<T>>,
}

struct Cached<T> {
    value: Arc<T>,
    /// The versions of the file and of the others last read, good or broken.
    read: Vec<Option<Version>>,
}

/// A version of a file: its modification time and length (an edit within one tick of the clock still changes
/// the length, or the next edit's time).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Version {
    modified: SystemTime,
    len: u64,
}

/// The account registry, as the gateway reads it.
pub type RegistryFile = WatchedFile<Registry, AccountError>;

/// The course file (`gateway.course`), as the gateway reads it.
pub type CourseFile = WatchedFile<Course, CourseError>;

fn version(path: &Path) -> Option<Version> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Version {
        modified: meta.modified().ok()?,
        len: meta.len(),
    })
}

/// The versions of `path` and of `others`, in order.
fn versions(path: &Path, others: &[PathBuf]) -> Vec<Option<Version>> {
    std::iter::once(path)
        .chain(others.iter().map(PathBuf::as_path))
        .map(version)
        .collect()
}

/// A watched file that could not be read at start: which file, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {what} {}", path.display())]
pub struct FileError {
    pub what: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl RegistryFile {
    pub fn load(path: &Path) -> Result<RegistryFile, FileError> {
        WatchedFile::open(path, "the account registry", Registry::load, |_| Vec::new())
    }
}

impl CourseFile {
    pub fn load(path: &Path) -> Result<CourseFile, FileError> {
        WatchedFile::open(path, "the course file", Course::load, Course::build_files)
    }
}

impl<T, E: std::error::Error + Send + Sync + 'static> WatchedFile<T, E> {
    fn open(
        path: &Path,
        what: &'static str,
        read: fn(&Path) -> Result<T, E>,
        also: fn(&T) -> Vec<PathBuf>,
    ) -> Result<WatchedFile<T, E>, FileError> {
        let value = read(path).map_err(|e| FileError {
            what,
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        let versions = versions(path, &also(&value));
        Ok(WatchedFile {
            path: path.to_path_buf(),
            what,
            read,
            also,
            cached: Mutex::new(Cached {
                value: Arc::new(value),
                read: versions,
            }),
        })
    }

    /// The contents as of now.
    pub fn current(&self) -> Arc<T> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        let now = versions(&self.path, &(self.also)(&cached.value));
        if now != cached.read {
            cached.read = now;
            match (self.read)(&self.path) {
                Ok(value) => {
                    tracing::info!(path = %self.path.display(), what = self.what, "reloaded");
                    // The new contents may name other files: their versions are what the next look compares.
                    cached.read = versions(&self.path, &(self.also)(&value));
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

    fn count_and_parse(path: &Path) -> Result<u32, std::io::Error> {
        READS.fetch_add(1, Ordering::SeqCst);
        let text = std::fs::read_to_string(path)?;
        text.trim().parse().map_err(std::io::Error::other)
    }

    #[test]
    fn a_broken_version_is_read_once_and_the_last_good_one_kept_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "1").unwrap();
        let file = WatchedFile::open(&path, "a number", count_and_parse, |_| Vec::new()).unwrap();
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

    #[test]
    fn a_course_is_reread_when_its_build_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let build = |cmd: &str| {
            format!("rai:\n  version: 0.2\n  image: img\ncommands:\n  build:\n    - {cmd}\n")
        };
        std::fs::write(dir.path().join("m1.yml"), build("./grade v1")).unwrap();
        let course = dir.path().join("course.yml");
        std::fs::write(
            &course,
            "time_zone: UTC\nassignments:\n  m1:\n    due: 2030-01-01 00:00\n    build_file: m1.yml\n",
        )
        .unwrap();
        let file = CourseFile::load(&course).unwrap();
        let command = |f: &CourseFile| {
            let c = f.current();
            c.assignments["m1"].build.as_ref().unwrap().commands.build[0].clone()
        };
        assert_eq!(command(&file), "./grade v1");
        // The fixed grader, a longer line: the course file itself is untouched.
        std::fs::write(dir.path().join("m1.yml"), build("./grade v2 --fixed")).unwrap();
        assert_eq!(command(&file), "./grade v2 --fixed");
    }
}
