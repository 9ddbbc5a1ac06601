//! Content-addressed projects (issue 30): a project directory as a [`Manifest`] of its paths, each file's bytes cut
//! by content into chunks named by their BLAKE3 hash ([`ChunkId`]).
//!
//! Students submit the same project dozens of times a day, and between two submits usually one source changed while
//! the data files and weights beside it did not. Named by content, a chunk the other side already has need not
//! travel again; cut by content rather than at fixed offsets, an insertion in a large file changes only the chunks
//! around it. The client keeps a [`LocalIndex`] so that an unchanged file is not even read again. The tar archive
//! ([`crate::archive`]) stays for `/build` and for older clients.
//!
//! # Layout
//! - [`manifest`]: the manifest and its strict checks, which the gateway and the worker apply before trusting one.
//! - [`batch`]: many sealed chunks in one request body, framed by id and length.
//! - [`chunker`]: cutting a file into chunks; sealing a chunk for the wire and opening one that may be hostile.
//! - [`index`]: the client's index of what each file's chunks were, keyed by size, mtime and inode.
//! - [`spool`]: the chunks of a first submit's small files, sealed while describing and kept on disk until sent.
//! - this module: [`describe`] (and [`describe_with_progress`]), a project directory (as [`crate::archive::scan`]
//!   lists it) to a manifest, and [`read_chunks`] and [`seal_chunks`], the chunks the other side asked for, read
//!   again from the project where the manifest puts them.

pub mod batch;
pub mod chunker;
pub mod index;
pub mod manifest;
pub mod spool;

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;

pub use chunker::{Chunk, MAX_CHUNK, Sealer, cut, open, seal};
pub use index::{FileFacts, LocalIndex};
pub use manifest::{
    ChunkId, ChunkRef, Entry, EntryKind, MANIFEST_VERSION, Manifest, ManifestLimits,
    ManifestSummary,
};
pub use spool::Spool;

use crate::archive::ScannedEntry;
use crate::errors::ProjectError;

/// What [`describe`] did.
#[derive(Debug, Clone)]
pub struct Described {
    pub manifest: Manifest,
    /// Files read (not known to the index, or changed).
    pub files_read: u64,
    /// Bytes read from them.
    pub bytes_read: u64,
}

/// Describes the project at `root` (its entries as [`crate::archive::scan`] found them) as a manifest, reading only
/// the files the index does not know as they are; the index learns the rest and forgets removed files.
pub fn describe(
    root: &Path,
    scanned: &[ScannedEntry],
    index: &mut LocalIndex,
) -> Result<Described, ProjectError> {
    describe_with_progress(root, scanned, index, None, &|_| {})
}

/// [`describe`], sealing the chunks of the small files it reads (under [`SPOOLED_FILE`]) into `spool`, and calling
/// `progress` with the bytes of each file the index knew and of each chunk read (for a progress bar).
///
/// Files are cut in order on one thread and their chunks hashed (and sealed) on up to [`MAX_THREADS`] others, a
/// few chunks in flight: a large file is hashed on every core, and memory holds a few chunks. Large files' chunks
/// are not sealed here: those the gateway lacks are read again and sealed as they are sent ([`seal_chunks`]), from
/// the page cache on a first submit; sealed now, a gigabyte of data would be written to a temporary file and read
/// back, which cost a first submit more than reading it twice. A small file costs more to open and read again than
/// its sealed bytes cost to keep.
pub fn describe_with_progress(
    root: &Path,
    scanned: &[ScannedEntry],
    index: &mut LocalIndex,
    spool: Option<&Spool>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Described, ProjectError> {
    // Entries in order, files the index knows filled in; the others read below.
    let mut entries = Vec::with_capacity(scanned.len());
    let mut to_read: Vec<(usize, std::path::PathBuf, FileFacts)> = Vec::new();
    let mut present = HashSet::new();
    for s in scanned {
        let path = wire_path(s.rel())?;
        let kind = if s.is_dir() {
            EntryKind::Dir
        } else if let Some(target) = s.link_target() {
            let target = target
                .to_str()
                .ok_or_else(|| ProjectError::NotUtf8(s.rel().to_path_buf()))?;
            EntryKind::Link {
                target: target.replace(std::path::MAIN_SEPARATOR, "/"),
            }
        } else {
            let full = root.join(s.rel());
            let meta = std::fs::symlink_metadata(&full).map_err(|source| ProjectError::Io {
                path: full.clone(),
                source,
            })?;
            let facts = FileFacts::of(&meta);
            present.insert(path.clone());
            let chunks = match index.chunks(&path, &facts) {
                Some(known) => {
                    progress(known.iter().map(|c| c.size).sum());
                    known.to_vec()
                }
                None => {
                    to_read.push((entries.len(), full, facts));
                    Vec::new()
                }
            };
            EntryKind::File {
                executable: facts.executable,
                size: chunks.iter().map(|c| c.size).sum(),
                chunks,
            }
        };
        entries.push(Entry { path, kind });
    }
    let read = read_files(&to_read, spool, progress)?;
    let (mut files_read, mut bytes_read) = (0, 0);
    for ((at, _, facts), chunks) in to_read.iter().zip(read) {
        let entry = &mut entries[*at];
        if let EntryKind::File {
            size, chunks: c, ..
        } = &mut entry.kind
        {
            // What was read, should the file have changed since the scan.
            *size = chunks.iter().map(|c| c.size).sum();
            files_read += 1;
            bytes_read += *size;
            index.insert(&entry.path, *facts, chunks.clone());
            *c = chunks;
        }
    }
    index.retain(|p| present.contains(p));
    Ok(Described {
        manifest: Manifest::new(entries),
        files_read,
        bytes_read,
    })
}

/// Files smaller than this (a chunk of the usual size) have their chunks sealed into the spool while they are
/// described (see [`describe_with_progress`]): sources, build files, small inputs.
pub const SPOOLED_FILE: u64 = chunker::AVG_CHUNK as u64;

/// Threads that hash chunks at most (a student's laptop has more cores than a few chunks in flight need, and each
/// holds up to two chunks in memory).
pub const MAX_THREADS: usize = 4;

/// The largest buffer a working thread of [`fan_out`] hands back for the next chunk: most chunks are under it, and
/// keeping buffers of the largest chunks too would hold up to four times the memory for a few of them.
const KEPT_BUFFER: usize = 2 * chunker::AVG_CHUNK;

/// Runs `produce` on this thread and hands each chunk it gives (its bytes, and what `T` says of it) to one of up to
/// [`MAX_THREADS`] other threads, which calls `take` with the state `local` made for it. A few chunks are in flight;
/// their bytes travel in buffers the threads hand back, so that a whole project passes through a few megabytes
/// reused rather than fresh memory for every chunk (a page fault per 4 KiB). Answers what `produce` answered, once
/// every chunk was taken.
fn fan_out<T: Send, L, R>(
    local: impl Fn() -> L + Sync,
    take: impl Fn(&mut L, T, &[u8]) + Sync,
    produce: impl FnOnce(&mut dyn FnMut(T, &[u8])) -> R,
) -> R {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_THREADS);
    let (tx, rx) = std::sync::mpsc::sync_channel::<(T, Vec<u8>)>(threads);
    let (give_back, taken_back) = std::sync::mpsc::channel::<Vec<u8>>();
    let rx = std::sync::Mutex::new(rx);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (rx, local, take, give_back) = (&rx, &local, &take, give_back.clone());
            scope.spawn(move || {
                let mut state = local();
                loop {
                    // The lock is let go at the end of this statement, before the chunk is worked on.
                    let Ok((item, data)) = rx.lock().unwrap_or_else(|p| p.into_inner()).recv()
                    else {
                        return;
                    };
                    take(&mut state, item, &data);
                    if data.capacity() <= KEPT_BUFFER {
                        let _ = give_back.send(data);
                    }
                }
            });
        }
        let produced = produce(&mut |item, bytes| {
            let mut data = taken_back.try_recv().unwrap_or_default();
            data.clear();
            data.extend_from_slice(bytes);
            tx.send((item, data))
                .expect("the threads take chunks until the channel closes");
        });
        // Closed, the channel ends the threads, which the scope then waits for.
        drop(tx);
        produced
    })
}

/// Each of `files`' chunks, in order: cut on this thread, hashed (and those of small files sealed into `spool`)
/// on others.
fn read_files(
    files: &[(usize, std::path::PathBuf, FileFacts)],
    spool: Option<&Spool>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<Vec<ChunkRef>>, ProjectError> {
    let named: std::sync::Mutex<Vec<Vec<(usize, ChunkRef)>>> =
        std::sync::Mutex::new(vec![Vec::new(); files.len()]);
    let failed: std::sync::Mutex<Option<ProjectError>> = std::sync::Mutex::new(None);
    let hash = |sealer: &mut chunker::Sealer, (file, seq): (usize, usize), data: &[u8]| {
        let reference = ChunkRef {
            id: ChunkId::of(data),
            size: data.len() as u64,
        };
        if let Some(spool) = spool
            && files[file].2.size < SPOOLED_FILE
            && !spool.contains(&reference.id)
            && let Err(source) = spool.put(reference.id, sealer.seal(data))
        {
            let mut failed = failed.lock().unwrap_or_else(|p| p.into_inner());
            failed.get_or_insert(ProjectError::Spool(source));
        }
        progress(reference.size);
        named.lock().unwrap_or_else(|p| p.into_inner())[file].push((seq, reference));
    };
    let cut = fan_out(chunker::Sealer::new, hash, |hand| {
        let mut window = Vec::new();
        for (file, (_, full, _)) in files.iter().enumerate() {
            let io = |source| ProjectError::Io {
                path: full.clone(),
                source,
            };
            let reader = File::open(full).map_err(io)?;
            let mut cutter = chunker::Cutter::with_window(reader, window);
            let mut seq = 0;
            while let Some(bytes) = cutter.next_chunk() {
                hand((file, seq), bytes.map_err(io)?);
                seq += 1;
            }
            window = cutter.into_window();
        }
        Ok::<(), ProjectError>(())
    });
    cut?;
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(named
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|mut chunks| {
            chunks.sort_by_key(|(seq, _)| *seq);
            chunks.into_iter().map(|(_, c)| c).collect()
        })
        .collect())
}

/// Reads the chunks of `manifest` named in `wanted` from the project at `root`, each once, calling `each` with it
/// and its bytes (in the manifest's order; the bytes are valid for that call) until it answers false. Only those
/// chunks are read, where the manifest puts them, into one buffer, and each is hashed: a file that changed since it
/// was described no longer holds its chunks, and that is an error naming it (describe the project again). Answers
/// whether every chunk was handed over.
pub fn read_chunks(
    root: &Path,
    manifest: &Manifest,
    wanted: &HashSet<ChunkId>,
    mut each: impl FnMut(&ChunkRef, &[u8]) -> bool,
) -> Result<bool, ProjectError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut sent: HashSet<ChunkId> = HashSet::new();
    let mut buffer = Vec::new();
    for (path, _, chunks) in manifest.files() {
        if !chunks
            .iter()
            .any(|c| wanted.contains(&c.id) && !sent.contains(&c.id))
        {
            continue;
        }
        let full = root.join(path);
        let io = |source| ProjectError::Io {
            path: full.clone(),
            source,
        };
        let changed = || {
            io(std::io::Error::other(
                "the file changed while it was being submitted; submit again",
            ))
        };
        let mut file = File::open(&full).map_err(io)?;
        let (mut offset, mut position) = (0u64, 0u64);
        for chunk in chunks {
            let start = offset;
            offset += chunk.size;
            if !wanted.contains(&chunk.id) || sent.contains(&chunk.id) {
                continue;
            }
            if chunk.size > MAX_CHUNK as u64 {
                return Err(changed());
            }
            if position != start {
                file.seek(SeekFrom::Start(start)).map_err(io)?;
            }
            buffer.resize(chunk.size as usize, 0);
            file.read_exact(&mut buffer).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => changed(),
                _ => io(e),
            })?;
            position = offset;
            if ChunkId::of(&buffer) != chunk.id {
                return Err(changed());
            }
            sent.insert(chunk.id);
            if !each(chunk, &buffer) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// The chunks [`read_chunks`] reads, sealed on up to [`MAX_THREADS`] threads (one [`Sealer`] each) while the
/// calling thread reads on: `each` is called with each chunk sealed, from any of those threads and in no set order,
/// until it answers false. Answers whether every chunk was handed over. This is a first submit's compressing, done
/// as its chunks are sent.
pub fn seal_chunks(
    root: &Path,
    manifest: &Manifest,
    wanted: &HashSet<ChunkId>,
    each: &(dyn Fn(&ChunkRef, &[u8]) -> bool + Sync),
) -> Result<bool, ProjectError> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stopped = AtomicBool::new(false);
    let seal = |sealer: &mut Sealer, chunk: ChunkRef, data: &[u8]| {
        if !stopped.load(Ordering::Relaxed) && !each(&chunk, sealer.seal(data)) {
            stopped.store(true, Ordering::Relaxed);
        }
    };
    fan_out(Sealer::new, seal, |hand| {
        read_chunks(root, manifest, wanted, |chunk, bytes| {
            if stopped.load(Ordering::Relaxed) {
                return false;
            }
            hand(*chunk, bytes);
            true
        })
    })
    .map(|all| all && !stopped.load(Ordering::Relaxed))
}

/// A relative path as the manifest writes it: UTF-8, `/`-separated.
fn wire_path(rel: &Path) -> Result<String, ProjectError> {
    let mut parts = Vec::new();
    for c in rel.components() {
        let part = c
            .as_os_str()
            .to_str()
            .ok_or_else(|| ProjectError::NotUtf8(rel.to_path_buf()))?;
        parts.push(part);
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{PackOptions, scan};

    fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/empty")).unwrap();
        std::fs::write(root.join("src/main.cu"), b"int main() { return 0; }\n").unwrap();
        std::fs::write(root.join("rai_build.yml"), b"rai:\n  version: 0.2\n").unwrap();
        let big: Vec<u8> = (0..3_000_000u32)
            .map(|i| i.wrapping_mul(2_654_435_761) as u8)
            .collect();
        std::fs::write(root.join("data.bin"), big).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("data.bin", root.join("latest")).unwrap();
        dir
    }

    fn describe_now(root: &Path, index: &mut LocalIndex) -> Described {
        let (scanned, _) = scan(root, &PackOptions::default()).unwrap();
        describe(root, &scanned, index).unwrap()
    }

    /// An index of the project at `root` that trusts every file: their times set well before it was saved (the
    /// folder it was saved in goes with it).
    fn trusted_index(root: &Path) -> (LocalIndex, tempfile::TempDir) {
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        for f in ["data.bin", "rai_build.yml", "src/main.cu"] {
            File::options()
                .write(true)
                .open(root.join(f))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let mut index = LocalIndex::default();
        describe_now(root, &mut index);
        let kept = tempfile::tempdir().unwrap();
        let path = kept.path().join("index.json");
        index.save(&path).unwrap();
        (LocalIndex::load(&path), kept)
    }

    #[test]
    fn progress_counts_every_byte_of_the_project_read_or_known() {
        let dir = project();
        let root = dir.path();
        let (scanned, _) = scan(root, &PackOptions::default()).unwrap();
        let total = 25 + 20 + 3_000_000;
        let counted = std::sync::atomic::AtomicU64::new(0);
        let count = |n| {
            counted.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        };
        let mut index = LocalIndex::default();
        let spool = Spool::new().unwrap();
        describe_with_progress(root, &scanned, &mut index, Some(&spool), &count).unwrap();
        // The two small files' chunks are kept sealed; the 3 MB file's are not.
        assert_eq!(spool.kept().0, 2);
        assert_eq!(counted.swap(0, std::sync::atomic::Ordering::Relaxed), total);
        // Known to the index now, and still counted.
        let (mut index, _kept) = trusted_index(root);
        let described = describe_with_progress(root, &scanned, &mut index, None, &count).unwrap();
        assert_eq!(described.files_read, 0);
        assert_eq!(counted.load(std::sync::atomic::Ordering::Relaxed), total);
    }

    #[test]
    fn a_project_is_described_once_and_then_read_only_where_it_changed() {
        let dir = project();
        let root = dir.path();
        let mut index = LocalIndex::default();
        let first = describe_now(root, &mut index);
        let summary = first.manifest.check(&ManifestLimits::default()).unwrap();
        assert_eq!(summary.files, 3);
        assert_eq!(first.files_read, 3);
        let paths: Vec<&str> = first
            .manifest
            .entries
            .iter()
            .map(|e| e.path.as_str())
            .collect();
        #[cfg(unix)]
        assert_eq!(
            paths,
            [
                "data.bin",
                "latest",
                "rai_build.yml",
                "src",
                "src/empty",
                "src/main.cu"
            ]
        );
        // Saved, and the files' times well before it: nothing is read again.
        let (mut index, _kept) = trusted_index(root);
        let again = describe_now(root, &mut index);
        assert_eq!(again.files_read, 0);
        assert_eq!(again.manifest.digest(), first.manifest.digest());
        // One source changed: only it is read, and only its chunk is new.
        std::fs::write(root.join("src/main.cu"), b"int main() { return 1; }\n").unwrap();
        let changed = describe_now(root, &mut index);
        assert_eq!(changed.files_read, 1);
        let new: Vec<ChunkId> = changed
            .manifest
            .chunk_ids()
            .difference(&first.manifest.chunk_ids())
            .copied()
            .collect();
        assert_eq!(new.len(), 1);
        let mut got = Vec::new();
        let wanted: HashSet<ChunkId> = new.iter().copied().collect();
        assert!(
            read_chunks(root, &changed.manifest, &wanted, |c, bytes| {
                got.push((*c, bytes.to_vec()));
                true
            })
            .unwrap()
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, b"int main() { return 1; }\n");
        // Removed files leave the index.
        std::fs::remove_file(root.join("data.bin")).unwrap();
        describe_now(root, &mut index);
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn chunks_are_sealed_on_several_threads_each_once_and_stop_when_asked() {
        let dir = project();
        let root = dir.path();
        let mut big = chunker::tests::noise(6 << 20, 21);
        big.extend_from_slice(&big.clone()[..1 << 20]);
        std::fs::write(root.join("noise.bin"), &big).unwrap();
        let described = describe_now(root, &mut LocalIndex::default());
        let wanted: HashSet<ChunkId> = described.manifest.chunk_ids().into_iter().collect();
        let sealed = std::sync::Mutex::new(Vec::new());
        let all = seal_chunks(root, &described.manifest, &wanted, &|c, bytes| {
            sealed.lock().unwrap().push((*c, open(c, bytes).unwrap()));
            true
        })
        .unwrap();
        assert!(all);
        let sealed = sealed.into_inner().unwrap();
        let ids: HashSet<ChunkId> = sealed.iter().map(|(c, _)| c.id).collect();
        assert_eq!(
            (ids, sealed.len()),
            (wanted.clone(), wanted.len()),
            "each once"
        );
        assert!(sealed.iter().all(|(c, data)| data.len() as u64 == c.size));
        // Asked to stop after the first, it hands over no more than the few chunks already being sealed.
        let taken = std::sync::atomic::AtomicUsize::new(0);
        let all = seal_chunks(root, &described.manifest, &wanted, &|_, _| {
            taken.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            false
        })
        .unwrap();
        assert!(!all);
        assert!(taken.into_inner() <= 2 * MAX_THREADS + 1);
    }

    #[test]
    fn a_file_changed_after_it_was_described_is_named() {
        let dir = project();
        let root = dir.path();
        let described = describe_now(root, &mut LocalIndex::default());
        std::fs::write(root.join("src/main.cu"), b"changed").unwrap();
        let wanted: HashSet<ChunkId> = described.manifest.chunk_ids().into_iter().collect();
        let e = read_chunks(root, &described.manifest, &wanted, |_, _| true).unwrap_err();
        assert!(e.to_string().contains("main.cu"), "{e}");
        assert!(e.to_string().contains("submit again"), "{e}");
    }
}
