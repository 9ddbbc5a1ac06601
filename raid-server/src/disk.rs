//! How much a job has written to its `/build` folder, watched while it runs.
//!
//! `/build` is a host directory bind-mounted into the container (it must outlive the container to be packed and
//! kept), so nothing in Docker bounds it: a job writing in a loop would fill the worker's disk and every other job
//! on it with it. The worker measures the folder every second or so and stops a job whose folder is past the
//! output limit (bytes on disk, so sparse files count as what they cost) or holds more entries than can be kept.
//! Between two looks a job can overshoot by what it writes in that time; the walk stops as soon as it has seen
//! too much, so a folder of a million files costs one bounded walk, not a full one.

use std::path::Path;
use std::time::{Duration, Instant};

/// What a look at `/build` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Bytes allocated on disk (at least what was counted before the walk stopped).
    pub bytes: u64,
    /// Files, directories and links.
    pub entries: u64,
}

/// The most a job's `/build` may hold.
#[derive(Debug, Clone, Copy)]
pub struct BuildQuota {
    pub max_bytes: u64,
    pub max_entries: u64,
}

impl BuildQuota {
    /// Measures `dir`, stopping early once a limit is passed.
    pub fn measure(&self, dir: &Path) -> Usage {
        let mut usage = Usage {
            bytes: 0,
            entries: 0,
        };
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for entry in entries.flatten() {
                // symlink_metadata: a link is counted as itself, never followed out of /build.
                let Ok(meta) = entry.path().symlink_metadata() else {
                    continue;
                };
                usage.entries += 1;
                usage.bytes += allocated(&meta);
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
        if usage.bytes > self.max_bytes {
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

#[cfg(unix)]
fn allocated(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.blocks() * 512
}

#[cfg(not(unix))]
fn allocated(meta: &std::fs::Metadata) -> u64 {
    meta.len()
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
