//! Step 3 for a chunked upload (issue 30): the project's manifest, already checked, made into `/src` from the worker's
//! cache, fetching only the chunks it lacks.
//!
//! Chunks come from the owner's part of the store (`chunks/<user>/<id>.zst`, so a manifest naming chunks of another
//! user finds nothing), eight at a time, each opened into at most the size the manifest declares and checked against
//! its id before it enters the cache ([`rai_common::project::open`]): a chunk bomb, or a chunk whose bytes are not
//! what its id says, ends the job with that reason and is never cached. Each file is assembled once into the cache
//! and hard-linked into `/src` (the container mounts it read-only), so a project whose files are all cached is ready
//! in the time it takes to make its links. Paths were checked with the manifest (no `..`, nothing under a link or a
//! file); links are made last and removed again if, followed through other links, they leave `/src`.

use std::path::Path;

use futures::StreamExt;
use rai_backends::store::ObjectStore;
use rai_common::archive::resolves_inside;
use rai_common::objects::chunk_key;
use rai_common::project::{ChunkRef, EntryKind, Manifest};

use crate::cache::{ContentCache, file_key};
use crate::errors::JobError;

/// Chunks fetched at once.
const PARALLEL_FETCHES: usize = 8;

/// What making `/src` took.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Materialised {
    /// Chunks fetched from the store (the rest were cached).
    pub fetched: usize,
    pub fetched_bytes: u64,
    /// Files linked from the cache as they were.
    pub files_cached: usize,
}

/// Makes `src` (an empty folder) hold the project `manifest` of `owner`.
pub(super) async fn materialise(
    store: &dyn ObjectStore,
    cache: &std::sync::Arc<ContentCache>,
    owner: &str,
    manifest: &Manifest,
    src: &Path,
) -> Result<Materialised, JobError> {
    let mut done = Materialised::default();
    // The chunks of the files whose content is not cached whole, and not cached themselves.
    let mut missing: Vec<ChunkRef> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for entry in &manifest.entries {
        if let EntryKind::File {
            executable, chunks, ..
        } = &entry.kind
        {
            if cache.file(&file_key(chunks, *executable)).is_some() {
                continue;
            }
            for c in chunks {
                if seen.insert(c.id) && cache.chunk(&c.id).is_none() {
                    missing.push(*c);
                }
            }
        }
    }
    let max_sealed = rai_common::project::chunker::max_sealed();
    let mut fetches = futures::stream::iter(missing.into_iter().map(|chunk| async move {
        let key = chunk_key(owner, &chunk.id);
        let sealed = store
            .get_bytes_up_to(&key, max_sealed)
            .await
            .map_err(JobError::Fetch)?;
        let bytes = sealed.len() as u64;
        let data = match rai_common::project::open(&chunk, &sealed) {
            Ok(data) => data,
            Err(e) => {
                // Not what its name says: gone from the store, so the owner's next submit sends it again.
                if let Err(d) = store.delete(&key).await {
                    tracing::warn!(key = %key, error = %d, "cannot delete a chunk that is not what its id says");
                }
                return Err(JobError::Chunk(e));
            }
        };
        let cache = cache.clone();
        tokio::task::spawn_blocking(move || cache.put_chunk(&chunk.id, &data))
            .await
            .map_err(|source| JobError::Task {
                what: "chunk cache",
                source,
            })?
            .map_err(JobError::JobDir)?;
        Ok::<u64, JobError>(bytes)
    }))
    .buffer_unordered(PARALLEL_FETCHES);
    while let Some(fetched) = fetches.next().await {
        done.fetched += 1;
        done.fetched_bytes += fetched?;
    }
    drop(fetches);
    let (cache, manifest, src) = (cache.clone(), manifest.clone(), src.to_path_buf());
    let cached = tokio::task::spawn_blocking(move || link_all(&cache, &manifest, &src))
        .await
        .map_err(|source| JobError::Task {
            what: "materialiser",
            source,
        })?
        .map_err(JobError::JobDir)?;
    done.files_cached = cached;
    Ok(done)
}

/// Writes the folders, files (linked from the cache, assembled into it first when needed) and links of `manifest`
/// under `src`. Returns how many files were cached whole already.
fn link_all(cache: &ContentCache, manifest: &Manifest, src: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(src)?;
    let mut cached = 0;
    let mut links = Vec::new();
    for entry in &manifest.entries {
        let to = src.join(&entry.path);
        match &entry.kind {
            EntryKind::Dir => std::fs::create_dir(&to)?,
            EntryKind::Link { target } => links.push((entry.path.as_str(), target.as_str())),
            EntryKind::File {
                executable, chunks, ..
            } => {
                let key = file_key(chunks, *executable);
                let from = match cache.file(&key) {
                    Some(path) => {
                        cached += 1;
                        path
                    }
                    None => cache.put_file(&key, *executable, |out| {
                        for c in chunks {
                            let part = cache.chunk(&c.id).ok_or_else(|| {
                                std::io::Error::other(format!(
                                    "chunk {} left the cache before its file was made",
                                    c.id
                                ))
                            })?;
                            std::io::copy(&mut std::fs::File::open(part)?, out)?;
                        }
                        Ok(())
                    })?,
                };
                if std::fs::hard_link(&from, &to).is_err() {
                    // Another file system (or no links there): a copy, with the same mode.
                    std::fs::copy(&from, &to)?;
                }
            }
        }
    }
    for (path, target) in &links {
        #[cfg(unix)]
        std::os::unix::fs::symlink(target, src.join(path))?;
        #[cfg(not(unix))]
        let _ = target;
    }
    // Followed through each other, links may still climb out: those go, as the unpacker removes them.
    for (path, _) in &links {
        if !resolves_inside(src, Path::new(path)) {
            std::fs::remove_file(src.join(path))?;
        }
    }
    Ok(cached)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use rai_backends::store::{FsStore, ObjectStore};
    use rai_common::archive::{PackOptions, scan};
    use rai_common::project::{LocalIndex, describe, read_chunks, seal};

    use super::*;

    /// A project of a few files (one executable, one large), a link and an empty folder, described and its chunks
    /// stored under `user`'s part of the store as a client would.
    async fn uploaded(store: &FsStore, user: &str) -> (tempfile::TempDir, Manifest) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/empty")).unwrap();
        std::fs::write(root.join("src/main.cu"), b"int main() { return 0; }\n").unwrap();
        std::fs::write(root.join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755))
                .unwrap();
            std::os::unix::fs::symlink("src/main.cu", root.join("main")).unwrap();
        }
        let big: Vec<u8> = (0..5_000_000u32).map(|i| (i ^ (i >> 7)) as u8).collect();
        std::fs::write(root.join("data.bin"), &big).unwrap();
        let (scanned, _) = scan(root, &PackOptions::default()).unwrap();
        let manifest = describe(root, &scanned, &mut LocalIndex::default())
            .unwrap()
            .manifest;
        let wanted: HashSet<_> = manifest.chunk_ids().into_iter().collect();
        let mut sealed = Vec::new();
        read_chunks(root, &manifest, &wanted, |c, bytes| {
            sealed.push((c.id, seal(bytes)));
            true
        })
        .unwrap();
        for (id, bytes) in sealed {
            store.put_bytes(&chunk_key(user, &id), bytes).await.unwrap();
        }
        (dir, manifest)
    }

    #[tokio::test]
    async fn src_is_made_from_fetched_chunks_then_from_the_cache_alone() {
        let (store_dir, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store = FsStore::open(store_dir.path()).unwrap();
        let (project, manifest) = uploaded(&store, "alice").await;
        let cache = Arc::new(ContentCache::open(&work.path().join("cache"), 1 << 30).unwrap());
        let first = work.path().join("job1");
        std::fs::create_dir(&first).unwrap();
        let done = materialise(&store, &cache, "alice", &manifest, &first)
            .await
            .unwrap();
        assert_eq!(done.fetched, manifest.chunk_ids().len());
        assert_eq!(done.files_cached, 0);
        for f in ["src/main.cu", "run.sh", "data.bin"] {
            assert_eq!(
                std::fs::read(first.join(f)).unwrap(),
                std::fs::read(project.path().join(f)).unwrap(),
                "{f}"
            );
        }
        assert!(first.join("src/empty").is_dir());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &str| {
                std::fs::metadata(first.join(p))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777
            };
            assert_eq!(mode("run.sh"), 0o555);
            assert_eq!(mode("data.bin"), 0o444);
            assert_eq!(
                std::fs::read_link(first.join("main")).unwrap(),
                Path::new("src/main.cu")
            );
        }
        // The store loses everything: a second job of the same project is made from the cache alone.
        drop(store);
        std::fs::remove_dir_all(store_dir.path()).unwrap();
        std::fs::create_dir(store_dir.path()).unwrap();
        let store = FsStore::open(store_dir.path()).unwrap();
        let second = work.path().join("job2");
        std::fs::create_dir(&second).unwrap();
        let done = materialise(&store, &cache, "alice", &manifest, &second)
            .await
            .unwrap();
        assert_eq!((done.fetched, done.files_cached), (0, 3));
        assert_eq!(
            std::fs::read(second.join("data.bin")).unwrap(),
            std::fs::read(project.path().join("data.bin")).unwrap()
        );
    }

    #[tokio::test]
    async fn chunks_of_another_user_or_under_a_false_name_are_refused() {
        let (store_dir, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store = FsStore::open(store_dir.path()).unwrap();
        let (_project, manifest) = uploaded(&store, "alice").await;
        let cache = Arc::new(ContentCache::open(&work.path().join("cache"), 1 << 30).unwrap());
        let src = work.path().join("src");
        std::fs::create_dir(&src).unwrap();
        // bob names alice's chunks: his part of the store has none of them.
        let e = materialise(&store, &cache, "bob", &manifest, &src)
            .await
            .unwrap_err();
        assert!(matches!(e, JobError::Fetch(_)), "{e}");
        // One of alice's chunks replaced by other bytes: refused by its hash, and not cached.
        let victim = manifest.distinct_chunks()[0];
        store
            .put_bytes(&chunk_key("alice", &victim.id), seal(b"something else"))
            .await
            .unwrap();
        let e = materialise(&store, &cache, "alice", &manifest, &src)
            .await
            .unwrap_err();
        assert!(matches!(e, JobError::Chunk(_)), "{e}");
        assert!(cache.chunk(&victim.id).is_none());
        assert!(
            store
                .head(&chunk_key("alice", &victim.id))
                .await
                .unwrap()
                .is_none(),
            "the lying chunk is deleted, so the next submit sends it again"
        );
    }
}
