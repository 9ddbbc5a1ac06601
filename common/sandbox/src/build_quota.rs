//! How much a job has written to its `/build` folder, watched while it runs.
//!
//! `/build` is a host directory bind-mounted into the container (it must outlive the container to be packed and
//! kept), so nothing in Docker bounds it: a job writing in a loop would fill the worker's disk and every other job
//! on it with it. The worker measures the folder every second or so and stops a job whose folder is past the
//! output limit (bytes on disk, so sparse files count as what they cost) or holds more entries than can be kept.
//! Between two looks a job can overshoot by what it writes in that time; the walk stops as soon as it has seen
//! too much, so a folder of a million files costs one bounded walk, not a full one.
//!
//! The walk never builds a full path: each directory is opened relative to its parent's descriptor (`openat`, never
//! following a link) and each entry measured relative to its directory (`fstatat`). A path-based walk could not
//! read a tree deeper than `PATH_MAX` (a job makes one with relative `mkdir` and `cd`), and what it could not read
//! it could not count: the disk filled below it. A tree deeper than [`MAX_DEPTH`] (one open descriptor per level)
//! is itself over the quota.

use std::path::Path;
use std::time::{Duration, Instant};

/// What a look at `/build` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Bytes allocated on disk (at least what was counted before the walk stopped).
    pub bytes: u64,
    /// Files, directories and links.
    pub entries: u64,
    /// The deepest folder seen, in levels below `/build`.
    pub depth: u64,
}

/// The most a job's `/build` may hold.
#[derive(Debug, Clone, Copy)]
pub struct BuildQuota {
    pub max_bytes: u64,
    pub max_entries: u64,
}

/// The deepest a `/build` tree may nest: the walk holds one open directory per level.
pub const MAX_DEPTH: u64 = 1024;

impl BuildQuota {
    /// Measures `dir`, stopping early once a limit is passed.
    #[cfg(unix)]
    pub fn measure(&self, dir: &Path) -> Usage {
        use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
        let mut usage = Usage {
            bytes: 0,
            entries: 0,
            depth: 0,
        };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let Some(root) = rustix::fs::open(dir, flags, Mode::empty())
            .ok()
            .and_then(|fd| Dir::new(fd).ok())
        else {
            return usage;
        };
        // The directories on the way down, each read from where it was left.
        let mut path = vec![root];
        while let Some(current) = path.last_mut() {
            let Some(entry) = current.read() else {
                path.pop();
                continue;
            };
            let Ok(entry) = entry else {
                path.pop();
                continue;
            };
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let Ok(parent) = current.fd() else {
                path.pop();
                continue;
            };
            // A link is counted as itself, never followed out of /build.
            let Ok(stat) = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            usage.entries += 1;
            usage.bytes += (stat.st_blocks as u64) * 512;
            let child = (FileType::from_raw_mode(stat.st_mode) == FileType::Directory)
                .then(|| rustix::fs::openat(parent, name, flags, Mode::empty()).ok())
                .flatten()
                .and_then(|fd| Dir::new(fd).ok());
            if let Some(child) = child {
                path.push(child);
                usage.depth = usage.depth.max(path.len() as u64 - 1);
            }
            if self.exceeded(usage).is_some() {
                return usage;
            }
        }
        usage
    }

    /// Measures `dir` (by path, where there is no `openat`), stopping early once a limit is passed.
    #[cfg(not(unix))]
    pub fn measure(&self, dir: &Path) -> Usage {
        let mut usage = Usage {
            bytes: 0,
            entries: 0,
            depth: 0,
        };
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let Ok(meta) = entry.path().symlink_metadata() else {
                    continue;
                };
                usage.entries += 1;
                usage.bytes += meta.len();
                if meta.is_dir() {
                    stack.push(entry.path());
                }
                if self.exceeded(usage).is_some() {
                    return usage;
                }
            }
        }
        usage
    }

    /// Why `usage` is over the quota, in words for the student, if it is.
    pub fn exceeded(&self, usage: Usage) -> Option<String> {
        if usage.depth >= MAX_DEPTH {
            Some(format!(
                "/build nests folders {MAX_DEPTH} deep or more, deeper than this worker measures; nest fewer"
            ))
        } else if usage.bytes > self.max_bytes {
            Some(format!(
                "/build grew past this worker's limit of {}; write less there (it is what `rai download` keeps)",
                rai_common::units::Bytes(self.max_bytes).human()
            ))
        } else if usage.entries > self.max_entries {
            Some(format!(
                "/build holds more than {} files and folders, more than can be kept; write fewer files",
                self.max_entries
            ))
        } else {
            None
        }
    }
}

/// When to look next: every second, or less often when a look is slow, so the walk never takes more than about a
/// tenth of a core.
pub fn next_look(walk: Duration) -> Instant {
    Instant::now() + (walk * 10).max(Duration::from_secs(1))
}

/// A `/build` folder watched in a task of its own, for as long as this value lives: dropping it stops the watch on
/// every path out of the job, early errors included.
pub struct BuildWatch {
    /// Why the folder is over its quota, once it is.
    pub over_quota: tokio::sync::watch::Receiver<Option<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BuildWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching `build` against `quota`.
pub fn watch_build(build: &Path, quota: BuildQuota) -> BuildWatch {
    let (tx, rx) = tokio::sync::watch::channel(None);
    let build = build.to_path_buf();
    let task = tokio::spawn(async move {
        let mut next = Instant::now() + Duration::from_secs(1);
        loop {
            tokio::time::sleep_until(next.into()).await;
            let started = Instant::now();
            let dir = build.clone();
            let Ok(usage) = tokio::task::spawn_blocking(move || quota.measure(&dir)).await else {
                return;
            };
            if let Some(reason) = quota.exceeded(usage) {
                let _ = tx.send(Some(reason));
                // Keep the sender: a closed channel would wake the job's loop for nothing.
                std::future::pending::<()>().await;
            }
            next = next_look(started.elapsed());
        }
    });
    BuildWatch {
        over_quota: rx,
        task,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_bytes_on_disk_and_entries_and_stops_early() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a"), vec![1u8; 64 * 1024]).unwrap();
        for i in 0..10 {
            std::fs::write(dir.path().join(format!("e{i}")), b"").unwrap();
        }
        let roomy = BuildQuota {
            max_bytes: 1 << 30,
            max_entries: 1000,
        };
        let usage = roomy.measure(dir.path());
        assert_eq!(usage.entries, 12);
        assert!(usage.bytes >= 64 * 1024, "{usage:?}");
        assert_eq!(roomy.exceeded(usage), None);

        let few = BuildQuota {
            max_bytes: 1 << 30,
            max_entries: 5,
        };
        let usage = few.measure(dir.path());
        assert_eq!(usage.entries, 6, "the walk stops at the first entry over");
        assert!(few.exceeded(usage).unwrap().contains("more than 5 files"));

        let small = BuildQuota {
            max_bytes: 16 * 1024,
            max_entries: 1000,
        };
        assert!(
            small
                .exceeded(small.measure(dir.path()))
                .unwrap()
                .contains("/build grew past")
        );
    }

    /// Makes `levels` nested folders of 200-character names under `root` relative to each other (the full path is
    /// far past PATH_MAX) and writes `bytes` at the bottom; returns the bottom's descriptor.
    #[cfg(unix)]
    fn deep_tree(root: &Path, levels: usize, bytes: usize) {
        use rustix::fs::{Mode, OFlags};
        let name = "n".repeat(200);
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut at = rustix::fs::open(root, flags, Mode::empty()).unwrap();
        for _ in 0..levels {
            rustix::fs::mkdirat(&at, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
            at = rustix::fs::openat(&at, name.as_str(), flags, Mode::empty()).unwrap();
        }
        let file = rustix::fs::openat(
            &at,
            "fill",
            OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        let mut file = std::fs::File::from(file);
        std::io::Write::write_all(&mut file, &vec![7u8; bytes]).unwrap();
        file.sync_all().unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_tree_deeper_than_path_max_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        // 40 levels of 200 characters: about 8 KiB of path, twice PATH_MAX.
        deep_tree(dir.path(), 40, 3 << 20);
        let quota = BuildQuota {
            max_bytes: 1 << 20,
            max_entries: 1000,
        };
        let usage = quota.measure(dir.path());
        assert!(usage.bytes > 3 << 20, "{usage:?}");
        assert_eq!(usage.depth, 40);
        assert!(
            quota
                .exceeded(usage)
                .unwrap()
                .contains("grew past this worker's limit of 1.0 MiB")
        );
        // std's remove_dir_all works relative to descriptors too: the tree goes away whole.
        std::fs::remove_dir_all(dir.path()).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_tree_deeper_than_the_walk_goes_is_over_the_quota() {
        let dir = tempfile::tempdir().unwrap();
        deep_tree(dir.path(), MAX_DEPTH as usize + 1, 0);
        let quota = BuildQuota {
            max_bytes: 1 << 30,
            max_entries: 1 << 20,
        };
        let reason = quota.exceeded(quota.measure(dir.path())).unwrap();
        assert!(reason.contains("1024 deep"), "{reason}");
    }

    #[cfg(unix)]
    #[test]
    fn a_sparse_file_counts_what_it_costs_and_links_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(dir.path().join("sparse")).unwrap();
        f.set_len(10 << 30).unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("root")).unwrap();
        let quota = BuildQuota {
            max_bytes: 1 << 20,
            max_entries: 1000,
        };
        let usage = quota.measure(dir.path());
        assert_eq!(usage.entries, 2);
        assert!(usage.bytes < 1 << 20, "{usage:?}");
    }
}
