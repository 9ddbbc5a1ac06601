//! A project as a manifest: every path with what it is (a file with its mode, size and chunks; a link with its
//! target; a folder), in one canonical order, and named as a whole by a digest.
//!
//! The manifest replaces the tar archive's headers: the client sends it with the upload declaration, the gateway
//! answers from it which chunks are missing, and the worker materialises `/src` from it. It comes from the
//! student's machine, so both servers run [`Manifest::check`] before using one, with the same rules the guarded
//! unpacker applies to an archive: no path climbs out or names a place twice, no link escapes, sizes add up, and
//! entry, byte and chunk counts are capped before anything is fetched or written.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::errors::ManifestError;

/// The manifest format this build writes and reads.
pub const MANIFEST_VERSION: u32 = 1;

/// A chunk's name: the BLAKE3 hash of its (uncompressed) bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    /// The id of `bytes`.
    pub fn of(bytes: &[u8]) -> ChunkId {
        ChunkId(*blake3::hash(bytes).as_bytes())
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({self})")
    }
}

impl FromStr for ChunkId {
    type Err = ManifestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| ManifestError::BadChunkId {
            id: s.chars().take(80).collect(),
        })?;
        Ok(ChunkId(out))
    }
}

impl Serialize for ChunkId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ChunkId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One chunk of a file: its id and how many bytes of the file it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub id: ChunkId,
    pub size: u64,
}

/// What a path is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EntryKind {
    /// A regular file: its permission bits (only the executable bits are kept), its size and its chunks in order.
    File {
        executable: bool,
        size: u64,
        chunks: Vec<ChunkRef>,
    },
    /// A symbolic link, relative and inside the project (as the archive allows them).
    Link { target: String },
    /// A folder (listed so that empty ones are kept).
    Dir,
}

/// A path of the project and what it is. Paths are relative, `/`-separated, and name no `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    #[serde(flatten)]
    pub kind: EntryKind,
}

/// A project: its entries sorted by path, each path once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    #[serde(deserialize_with = "at_most_max_entries")]
    pub entries: Vec<Entry>,
}

/// The most entries a manifest of this protocol may list, whatever a course allows: reading one stops at the entry
/// past it, so a declaration of a million entries costs its reader no more than this many.
pub const MAX_ENTRIES: usize = 200_000;

/// `entries`, read one by one and refused at the one past [`MAX_ENTRIES`].
fn at_most_max_entries<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Entry>, D::Error> {
    struct Bounded;
    impl<'de> serde::de::Visitor<'de> for Bounded {
        type Value = Vec<Entry>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a list of at most {MAX_ENTRIES} entries")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Vec<Entry>, A::Error> {
            let mut entries = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(entry) = seq.next_element()? {
                if entries.len() == MAX_ENTRIES {
                    return Err(serde::de::Error::custom(format!(
                        "the project manifest lists more than {MAX_ENTRIES} entries; add what the job does not need to .raiignore"
                    )));
                }
                entries.push(entry);
            }
            Ok(entries)
        }
    }
    d.deserialize_seq(Bounded)
}

/// The caps [`Manifest::check`] enforces (the course's upload limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestLimits {
    /// Most entries (files, links and folders).
    pub max_entries: usize,
    /// Most bytes of file content, all files together.
    pub max_bytes: u64,
    /// The largest chunk (the chunker's maximum: a larger one was not cut by this protocol).
    pub max_chunk: u64,
    /// Longest path, in bytes.
    pub max_path: usize,
}

impl Default for ManifestLimits {
    fn default() -> Self {
        ManifestLimits {
            max_entries: 100_000,
            max_bytes: 1 << 30,
            max_chunk: super::chunker::MAX_CHUNK as u64,
            max_path: 4096,
        }
    }
}

/// What a checked manifest holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ManifestSummary {
    pub files: u64,
    pub bytes: u64,
    /// Distinct chunks.
    pub chunks: usize,
}

impl Manifest {
    /// A manifest of `entries`, sorted into the canonical order.
    pub fn new(mut entries: Vec<Entry>) -> Manifest {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Manifest {
            version: MANIFEST_VERSION,
            entries,
        }
    }

    /// The manifest's name: the BLAKE3 hash of its canonical JSON. Two projects with the same paths, modes and
    /// contents have the same digest.
    pub fn digest(&self) -> ChunkId {
        ChunkId::of(&self.to_json())
    }

    /// The canonical JSON form (what is stored and hashed).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest always serialises")
    }

    /// Reads a manifest from JSON, checking it against `limits`. The byte length is capped before parsing (a
    /// million entries of long paths is refused by its size alone).
    pub fn from_json(bytes: &[u8], limits: &ManifestLimits) -> Result<Manifest, ManifestError> {
        let most = limits
            .max_entries
            .saturating_mul(limits.max_path.saturating_add(512));
        if bytes.len() > most {
            return Err(ManifestError::TooManyEntries {
                count: None,
                max: limits.max_entries,
            });
        }
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(ManifestError::Parse)?;
        manifest.check(limits)?;
        Ok(manifest)
    }

    /// Every distinct chunk the manifest names.
    pub fn chunk_ids(&self) -> BTreeSet<ChunkId> {
        self.files()
            .flat_map(|(_, _, chunks)| chunks.iter().map(|c| c.id))
            .collect()
    }

    /// Each distinct chunk once, with its size, in first-use order.
    pub fn distinct_chunks(&self) -> Vec<ChunkRef> {
        let mut seen = HashSet::new();
        self.files()
            .flat_map(|(_, _, chunks)| chunks.iter().copied())
            .filter(|c| seen.insert(c.id))
            .collect()
    }

    /// The files: path, size and chunks.
    pub fn files(&self) -> impl Iterator<Item = (&str, u64, &[ChunkRef])> {
        self.entries.iter().filter_map(|e| match &e.kind {
            EntryKind::File { size, chunks, .. } => {
                Some((e.path.as_str(), *size, chunks.as_slice()))
            }
            _ => None,
        })
    }

    /// Checks everything a server must know before trusting a manifest from a client: the version, the caps, each
    /// path (relative, no `.`/`..`, no empty or odd part, each once, in order, its parents folders of the
    /// manifest), each link (relative and resolving inside the project), and each file's chunks (sizes adding up
    /// to the file's, none empty or over the chunker's maximum). Nothing is read from a disk.
    pub fn check(&self, limits: &ManifestLimits) -> Result<ManifestSummary, ManifestError> {
        if self.version != MANIFEST_VERSION {
            return Err(ManifestError::Version {
                found: self.version,
                supported: MANIFEST_VERSION,
            });
        }
        if self.entries.len() > limits.max_entries {
            return Err(ManifestError::TooManyEntries {
                count: Some(self.entries.len()),
                max: limits.max_entries,
            });
        }
        let mut summary = ManifestSummary::default();
        let mut dirs: HashSet<&str> = HashSet::new();
        let mut chunks: HashSet<ChunkId> = HashSet::new();
        let mut previous: Option<&str> = None;
        for entry in &self.entries {
            let path = entry.path.as_str();
            check_path(path, limits)?;
            if let Some(p) = previous
                && p >= path
            {
                return Err(if p == path {
                    ManifestError::Duplicate { path: path.into() }
                } else {
                    ManifestError::Unsorted { path: path.into() }
                });
            }
            previous = Some(path);
            if let Some((parent, _)) = path.rsplit_once('/')
                && !dirs.contains(parent)
            {
                return Err(ManifestError::NoParent {
                    path: path.into(),
                    parent: parent.into(),
                });
            }
            match &entry.kind {
                EntryKind::Dir => {
                    dirs.insert(path);
                }
                EntryKind::Link { target } => {
                    if !link_stays_inside(path, target) {
                        return Err(ManifestError::LinkEscapes {
                            path: path.into(),
                            target: target.chars().take(200).collect(),
                        });
                    }
                }
                EntryKind::File {
                    size,
                    chunks: parts,
                    ..
                } => {
                    let mut sum: u64 = 0;
                    for c in parts {
                        if c.size == 0 || c.size > limits.max_chunk {
                            return Err(ManifestError::ChunkSize {
                                path: path.into(),
                                chunk: c.id,
                                size: c.size,
                                max: limits.max_chunk,
                            });
                        }
                        sum = sum.saturating_add(c.size);
                        chunks.insert(c.id);
                    }
                    if sum != *size {
                        return Err(ManifestError::SizesDisagree {
                            path: path.into(),
                            size: *size,
                            chunks: sum,
                        });
                    }
                    summary.files += 1;
                    summary.bytes = summary.bytes.saturating_add(*size);
                    if summary.bytes > limits.max_bytes {
                        return Err(ManifestError::TooLarge {
                            bytes: summary.bytes,
                            max: limits.max_bytes,
                        });
                    }
                }
            }
        }
        summary.chunks = chunks.len();
        Ok(summary)
    }
}

/// A path a manifest may name: relative, `/`-separated, every part a plain name.
fn check_path(path: &str, limits: &ManifestLimits) -> Result<(), ManifestError> {
    let bad = |why: &'static str| ManifestError::BadPath {
        path: path.chars().take(200).collect(),
        why,
    };
    if path.is_empty() {
        return Err(bad("it is empty"));
    }
    if path.len() > limits.max_path {
        return Err(bad("it is longer than the longest path allowed"));
    }
    if path.starts_with('/') {
        return Err(bad("it is absolute"));
    }
    if path.contains('\\') || path.contains('\0') {
        return Err(bad("it holds a backslash or a NUL byte"));
    }
    for part in path.split('/') {
        match part {
            "" => return Err(bad("it has an empty part (`//` or a trailing `/`)")),
            "." | ".." => return Err(bad("it has a `.` or `..` part")),
            _ => {}
        }
    }
    Ok(())
}

/// Whether a link at `path` pointing at `target` stays inside the project, by its words alone (the archive's rule;
/// the worker checks again on disk, with every link on the way resolved, before it writes through one).
fn link_stays_inside(path: &str, target: &str) -> bool {
    !target.is_empty() && crate::archive::link_stays_inside(Path::new(path), Path::new(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, parts: &[(&[u8], u64)]) -> Entry {
        let chunks: Vec<ChunkRef> = parts
            .iter()
            .map(|(b, n)| ChunkRef {
                id: ChunkId::of(b),
                size: *n,
            })
            .collect();
        Entry {
            path: path.into(),
            kind: EntryKind::File {
                executable: false,
                size: chunks.iter().map(|c| c.size).sum(),
                chunks,
            },
        }
    }

    fn dir(path: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::Dir,
        }
    }

    fn link(path: &str, target: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::Link {
                target: target.into(),
            },
        }
    }

    fn good() -> Manifest {
        Manifest::new(vec![
            file("main.cu", &[(b"int main", 8)]),
            dir("data"),
            file("data/big.bin", &[(b"a", 1), (b"b", 1)]),
            link("data/latest", "big.bin"),
            dir("empty"),
        ])
    }

    #[test]
    fn a_good_manifest_is_summed_and_named_by_its_content() {
        let m = good();
        let summary = m.check(&ManifestLimits::default()).unwrap();
        assert_eq!(
            summary,
            ManifestSummary {
                files: 2,
                bytes: 10,
                chunks: 3
            }
        );
        let back = Manifest::from_json(&m.to_json(), &ManifestLimits::default()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.digest(), m.digest());
        let mut other = good();
        other.entries[0].kind = EntryKind::File {
            executable: true,
            size: 2,
            chunks: vec![ChunkRef {
                id: ChunkId::of(b"a"),
                size: 2,
            }],
        };
        assert_ne!(other.digest(), m.digest());
    }

    #[test]
    fn hostile_paths_are_refused_with_what_is_wrong() {
        let limits = ManifestLimits::default();
        for (path, why) in [
            ("../etc/passwd", "`.` or `..`"),
            ("/etc/passwd", "absolute"),
            ("a/../../b", "`.` or `..`"),
            ("a//b", "empty part"),
            ("a\\..\\b", "backslash"),
            ("", "empty"),
        ] {
            let m = Manifest {
                version: MANIFEST_VERSION,
                entries: vec![file(path, &[(b"x", 1)])],
            };
            let e = m.check(&limits).unwrap_err().to_string();
            assert!(e.contains(why), "{path:?}: {e}");
        }
    }

    #[test]
    fn links_out_of_the_project_are_refused() {
        let limits = ManifestLimits::default();
        for target in ["../../x", "/etc/shadow", "../..", ""] {
            let m = Manifest::new(vec![dir("a"), link("a/l", target)]);
            let e = m.check(&limits).unwrap_err();
            assert!(
                matches!(e, ManifestError::LinkEscapes { .. }),
                "{target}: {e}"
            );
        }
        let inside = Manifest::new(vec![dir("a"), link("a/l", "../b")]);
        inside.check(&limits).unwrap();
    }

    #[test]
    fn sizes_that_do_not_add_up_are_refused() {
        let mut m = good();
        let big = m.entries.iter_mut().find(|e| e.path == "data/big.bin");
        if let Some(EntryKind::File { size, .. }) = big.map(|e| &mut e.kind) {
            *size += 1;
        }
        let e = m.check(&ManifestLimits::default()).unwrap_err();
        assert!(matches!(e, ManifestError::SizesDisagree { .. }), "{e}");
        assert!(e.to_string().contains("data/big.bin"), "{e}");
    }

    #[test]
    fn chunks_empty_or_larger_than_the_chunker_cuts_are_refused() {
        let limits = ManifestLimits::default();
        for size in [0, limits.max_chunk + 1] {
            let m = Manifest::new(vec![Entry {
                path: "f".into(),
                kind: EntryKind::File {
                    executable: false,
                    size,
                    chunks: vec![ChunkRef {
                        id: ChunkId::of(b"f"),
                        size,
                    }],
                },
            }]);
            let e = m.check(&limits).unwrap_err();
            assert!(matches!(e, ManifestError::ChunkSize { .. }), "{e}");
        }
    }

    #[test]
    fn duplicates_unsorted_entries_and_missing_parents_are_refused() {
        let limits = ManifestLimits::default();
        let twice = Manifest {
            version: MANIFEST_VERSION,
            entries: vec![file("a", &[(b"x", 1)]), file("a", &[(b"y", 1)])],
        };
        assert!(matches!(
            twice.check(&limits),
            Err(ManifestError::Duplicate { .. })
        ));
        let unsorted = Manifest {
            version: MANIFEST_VERSION,
            entries: vec![file("b", &[(b"x", 1)]), file("a", &[(b"y", 1)])],
        };
        assert!(matches!(
            unsorted.check(&limits),
            Err(ManifestError::Unsorted { .. })
        ));
        // A file under a link or a file (not a folder of the manifest) could be written through the link.
        let through = Manifest::new(vec![link("l", "."), file("l/x", &[(b"x", 1)])]);
        assert!(matches!(
            through.check(&limits),
            Err(ManifestError::NoParent { .. })
        ));
    }

    #[test]
    fn caps_are_enforced_before_anything_is_fetched() {
        let limits = ManifestLimits {
            max_entries: 3,
            max_bytes: 5,
            ..ManifestLimits::default()
        };
        let many = Manifest::new((0..4).map(|i| dir(&format!("d{i}"))).collect());
        assert!(matches!(
            many.check(&limits),
            Err(ManifestError::TooManyEntries { .. })
        ));
        let big = Manifest::new(vec![file("a", &[(b"x", 3)]), file("b", &[(b"y", 3)])]);
        assert!(matches!(
            big.check(&limits),
            Err(ManifestError::TooLarge { .. })
        ));
        // A million entries is refused by its length, before parsing.
        let huge = format!(
            "{{\"version\":1,\"entries\":[{}]}}",
            vec!["{\"path\":\"aaaaaaaaaaaaaaaa\",\"kind\":\"dir\"}"; 200].join(",")
        );
        let tiny = ManifestLimits {
            max_entries: 2,
            max_path: 1,
            ..ManifestLimits::default()
        };
        assert!(matches!(
            Manifest::from_json(huge.as_bytes(), &tiny),
            Err(ManifestError::TooManyEntries { count: None, .. })
        ));
        // Whatever the limits, reading stops at the entry past the protocol's most.
        let million = format!(
            "{{\"version\":1,\"entries\":[{}]}}",
            vec!["{\"path\":\"a\",\"kind\":\"dir\"}"; 1_000_000].join(",")
        );
        let e = serde_json::from_str::<Manifest>(&million)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than 200000 entries"), "{e}");
    }

    #[test]
    fn a_newer_format_is_refused_by_version() {
        let mut m = good();
        m.version = 2;
        let e = m.check(&ManifestLimits::default()).unwrap_err().to_string();
        assert!(e.contains("upgrade"), "{e}");
    }
}
