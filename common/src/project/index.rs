//! The client's index of a project: what each file's chunks were the last time it was read, keyed by what the
//! file system says of it (size, modification time, inode), as git's index is. A file whose facts match is not read
//! again; any change of them (or a doubt) reads it.
//!
//! Racy files: a file changed within the file system's timestamp granularity of the moment it was indexed could
//! keep the same facts with new contents. As git does, an entry whose modification time is not clearly before the
//! time the index was written is not trusted.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::manifest::ChunkRef;

/// The format this build reads and writes (another is thrown away and rebuilt).
const INDEX_VERSION: u32 = 1;
/// How close to the index's writing a modification time makes an entry untrusted.
const RACY: Duration = Duration::from_secs(2);

/// What the file system says of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFacts {
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: u128,
    pub inode: u64,
    pub executable: bool,
}

impl FileFacts {
    /// The facts of `meta`.
    pub fn of(meta: &std::fs::Metadata) -> FileFacts {
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        #[cfg(unix)]
        let (inode, executable) = {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            (meta.ino(), meta.permissions().mode() & 0o111 != 0)
        };
        #[cfg(not(unix))]
        let (inode, executable) = (0, false);
        FileFacts {
            size: meta.len(),
            mtime_ns,
            inode,
            executable,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Indexed {
    facts: FileFacts,
    chunks: Vec<ChunkRef>,
}

/// A project's index (see the module).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalIndex {
    version: u32,
    /// When it was last written, nanoseconds since the epoch.
    written_ns: u128,
    files: BTreeMap<String, Indexed>,
}

impl Default for LocalIndex {
    fn default() -> Self {
        LocalIndex {
            version: INDEX_VERSION,
            written_ns: 0,
            files: BTreeMap::new(),
        }
    }
}

impl LocalIndex {
    /// Reads the index at `path`; an index that is missing, unreadable or of another format is an empty one (it
    /// only saves work).
    pub fn load(path: &Path) -> LocalIndex {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<LocalIndex>(&b).ok())
            .filter(|i| i.version == INDEX_VERSION)
            .unwrap_or_default()
    }

    /// Writes the index to `path` (through a temporary file, so a crash leaves the old one or the new one).
    pub fn save(&mut self, path: &Path) -> std::io::Result<()> {
        self.written_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, path)
    }

    /// The chunks of the file at `rel` if its facts are those indexed, and clearly older than the index.
    pub fn chunks(&self, rel: &str, facts: &FileFacts) -> Option<&[ChunkRef]> {
        let entry = self.files.get(rel)?;
        let settled = facts.mtime_ns.saturating_add(RACY.as_nanos()) < self.written_ns;
        (entry.facts == *facts && settled).then_some(entry.chunks.as_slice())
    }

    /// Records what the file at `rel` was read as.
    pub fn insert(&mut self, rel: &str, facts: FileFacts, chunks: Vec<ChunkRef>) {
        self.files
            .insert(rel.to_string(), Indexed { facts, chunks });
    }

    /// Forgets files not in `keep` (removed from the project since).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.files.retain(|p, _| keep(p));
    }

    /// How many files it knows.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether it knows none.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::manifest::ChunkId;

    fn facts(mtime_ns: u128) -> FileFacts {
        FileFacts {
            size: 3,
            mtime_ns,
            inode: 42,
            executable: false,
        }
    }

    #[test]
    fn a_file_is_trusted_only_with_the_same_facts_and_settled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        let chunks = vec![ChunkRef {
            id: ChunkId::of(b"abc"),
            size: 3,
        }];
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let old = now - 60_000_000_000;
        let mut index = LocalIndex::default();
        index.insert("a.cu", facts(old), chunks.clone());
        index.insert("racy.cu", facts(now), chunks.clone());
        index.save(&path).unwrap();
        let back = LocalIndex::load(&path);
        assert_eq!(back.chunks("a.cu", &facts(old)), Some(chunks.as_slice()));
        assert_eq!(back.chunks("a.cu", &facts(old + 1)), None, "touched");
        let grown = FileFacts {
            size: 4,
            ..facts(old)
        };
        assert_eq!(back.chunks("a.cu", &grown), None, "grown");
        assert_eq!(
            back.chunks("racy.cu", &facts(now)),
            None,
            "changed as it was indexed"
        );
        assert_eq!(back.chunks("b.cu", &facts(old)), None);
    }

    #[test]
    fn a_broken_or_foreign_index_is_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        std::fs::write(&path, b"{ not json").unwrap();
        assert!(LocalIndex::load(&path).is_empty());
        std::fs::write(&path, br#"{"version":99,"written_ns":0,"files":{}}"#).unwrap();
        assert!(LocalIndex::load(&path).is_empty());
        assert!(LocalIndex::load(&dir.path().join("missing")).is_empty());
    }
}
