//! The worker's cache of project contents (issue 30): chunks by id, and whole files by content, bounded together by
//! `raid.cache_bytes` (least recently used first, checked on every write).
//!
//! A student's second submit differs from the first by a file or two; the worker that ran the first should fetch only
//! the chunks it lacks and make `/src` without copying a gigabyte again. Chunks are kept as fetched (verified: a chunk
//! enters only through [`ContentCache::put_chunk`] after [`rai_common::project::open`] checked its hash). A file
//! assembled from its chunks is kept too, under a name made of its chunk ids and executable bit, and *hard-linked*
//! into each job's `/src`: the container sees `/src` read-only, so no job can change a file another job links, and
//! evicting one only unlinks the cache's name (a job holding it keeps its link).
//!
//! Everything lives under one folder of the worker's disk (`<jobs dir>/../cache`, on the same file system as the job
//! folders, so links work); the index of what is there and when it was last used is in memory, rebuilt from the
//! folder at start (the files' modification times give the order).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rai_common::project::{ChunkId, ChunkRef};

/// What the cache holds under its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Item {
    Chunk(ChunkId),
    /// A whole file: the hash of its chunk list and executable bit.
    File(ChunkId),
}

impl Item {
    fn rel(&self) -> String {
        match self {
            Item::Chunk(id) => format!("chunks/{id}"),
            Item::File(id) => format!("files/{id}"),
        }
    }
}

#[derive(Debug, Default)]
struct Books {
    used: u64,
    /// Size and last use (a counter: larger is more recent).
    items: HashMap<Item, (u64, u64)>,
    clock: u64,
}

/// A bounded cache of chunks and files (see the module).
#[derive(Debug)]
pub struct ContentCache {
    dir: PathBuf,
    limit: u64,
    books: Mutex<Books>,
}

/// The name a file's content is kept under: its chunk list and executable bit, hashed.
pub fn file_key(chunks: &[ChunkRef], executable: bool) -> ChunkId {
    let mut words = Vec::with_capacity(chunks.len() * 40 + 1);
    for c in chunks {
        words.extend_from_slice(&c.id.0);
        words.extend_from_slice(&c.size.to_le_bytes());
    }
    words.push(u8::from(executable));
    ChunkId::of(&words)
}

impl ContentCache {
    /// Opens (making it when missing) the cache in `dir`, holding at most `limit` bytes; what an earlier run left
    /// is kept and counted, oldest first to go. A leftover temporary file is removed.
    pub fn open(dir: &Path, limit: u64) -> std::io::Result<ContentCache> {
        let mut found: Vec<(std::time::SystemTime, Item, u64)> = Vec::new();
        for (sub, make) in [
            ("chunks", Item::Chunk as fn(ChunkId) -> Item),
            ("files", Item::File as fn(ChunkId) -> Item),
        ] {
            let folder = dir.join(sub);
            std::fs::create_dir_all(&folder)?;
            for entry in std::fs::read_dir(&folder)? {
                let entry = entry?;
                let name = entry.file_name();
                let meta = entry.metadata()?;
                match name.to_str().and_then(|n| n.parse::<ChunkId>().ok()) {
                    Some(id) if meta.is_file() => {
                        let at = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                        found.push((at, make(id), meta.len()));
                    }
                    // A write cut short, or something that is not ours.
                    _ => {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
            }
        }
        found.sort_by_key(|(at, _, _)| *at);
        let mut books = Books::default();
        for (_, item, size) in found {
            books.clock += 1;
            books.used += size;
            books.items.insert(item, (size, books.clock));
        }
        let cache = ContentCache {
            dir: dir.to_path_buf(),
            limit,
            books: Mutex::new(books),
        };
        cache.evict(None);
        Ok(cache)
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.books.lock().expect("never poisoned").used
    }

    /// The path of a cached chunk, marked as just used; `None` when it is not here.
    pub fn chunk(&self, id: &ChunkId) -> Option<PathBuf> {
        self.touch(Item::Chunk(*id))
    }

    /// The path of a cached file's content, marked as just used.
    pub fn file(&self, key: &ChunkId) -> Option<PathBuf> {
        self.touch(Item::File(*key))
    }

    /// Keeps a chunk's bytes (already checked against its id), evicting the least recently used to stay in bounds.
    pub fn put_chunk(&self, id: &ChunkId, data: &[u8]) -> std::io::Result<PathBuf> {
        self.put(Item::Chunk(*id), |f| f.write_all(data))
    }

    /// Keeps a file's content, written by `write` into a new file, under `key` ([`file_key`]); returns its path.
    pub fn put_file(
        &self,
        key: &ChunkId,
        executable: bool,
        write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
    ) -> std::io::Result<PathBuf> {
        let path = self.put(Item::File(*key), write)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = if executable { 0o555 } else { 0o444 };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        }
        Ok(path)
    }

    fn touch(&self, item: Item) -> Option<PathBuf> {
        let mut books = self.books.lock().expect("never poisoned");
        books.clock += 1;
        let now = books.clock;
        let entry = books.items.get_mut(&item)?;
        entry.1 = now;
        Some(self.dir.join(item.rel()))
    }

    fn put(
        &self,
        item: Item,
        write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
    ) -> std::io::Result<PathBuf> {
        if let Some(path) = self.touch(item) {
            return Ok(path);
        }
        let path = self.dir.join(item.rel());
        // A unique temporary name in the same folder, renamed into place: a crash leaves no half item under a real
        // name (and `open` removes the leftover).
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_file_name(format!(".tmp-{}-{n}", std::process::id()));
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            write(&mut f)?;
            f.flush()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::metadata(&path).map(|m| m.len())
        })();
        let size = match written {
            Ok(size) => size,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        {
            let mut books = self.books.lock().expect("never poisoned");
            books.clock += 1;
            let now = books.clock;
            if let Some((old, _)) = books.items.insert(item, (size, now)) {
                books.used -= old;
            }
            books.used += size;
        }
        self.evict(Some(item));
        Ok(path)
    }

    /// Removes the least recently used items until the cache is within its limit, never `keep` (the item just
    /// written, which its caller is about to use).
    fn evict(&self, keep: Option<Item>) {
        let mut books = self.books.lock().expect("never poisoned");
        while books.used > self.limit {
            let oldest = books
                .items
                .iter()
                .filter(|(item, _)| Some(**item) != keep)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(item, (size, _))| (*item, *size));
            let Some((item, size)) = oldest else { break };
            books.items.remove(&item);
            books.used -= size;
            let _ = std::fs::remove_file(self.dir.join(item.rel()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: &[u8]) -> ChunkId {
        ChunkId::of(b)
    }

    #[test]
    fn the_least_recently_used_go_first_and_the_bound_holds_on_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ContentCache::open(dir.path(), 250).unwrap();
        let (a, b, c) = (vec![1u8; 100], vec![2u8; 100], vec![3u8; 100]);
        cache.put_chunk(&id(&a), &a).unwrap();
        cache.put_chunk(&id(&b), &b).unwrap();
        assert!(
            cache.chunk(&id(&a)).is_some(),
            "a used again: b is now the oldest"
        );
        cache.put_chunk(&id(&c), &c).unwrap();
        assert_eq!(cache.used(), 200);
        assert!(cache.chunk(&id(&b)).is_none());
        assert!(!dir.path().join(format!("chunks/{}", id(&b))).exists());
        assert_eq!(std::fs::read(cache.chunk(&id(&a)).unwrap()).unwrap(), a);
        // An item larger than the whole cache is still written for its caller, and everything else goes.
        let big = vec![4u8; 300];
        let path = cache.put_chunk(&id(&big), &big).unwrap();
        assert!(path.exists());
        assert!(cache.chunk(&id(&a)).is_none() && cache.chunk(&id(&c)).is_none());
    }

    #[test]
    fn a_reopened_cache_counts_what_is_there_and_drops_half_writes() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![7u8; 50];
        {
            let cache = ContentCache::open(dir.path(), 1000).unwrap();
            cache.put_chunk(&id(&data), &data).unwrap();
            let key = file_key(
                &[ChunkRef {
                    id: id(&data),
                    size: 50,
                }],
                true,
            );
            let path = cache.put_file(&key, true, |f| f.write_all(&data)).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&path).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o555);
            }
        }
        std::fs::write(dir.path().join("chunks/.tmp-0011"), b"half").unwrap();
        let cache = ContentCache::open(dir.path(), 1000).unwrap();
        assert_eq!(cache.used(), 100);
        assert!(cache.chunk(&id(&data)).is_some());
        assert!(!dir.path().join("chunks/.tmp-0011").exists());
        // A smaller bound at start evicts at once.
        drop(cache);
        let small = ContentCache::open(dir.path(), 60).unwrap();
        assert_eq!(small.used(), 50);
    }

    #[test]
    fn a_file_key_depends_on_its_chunks_and_mode() {
        let c = [ChunkRef {
            id: id(b"x"),
            size: 1,
        }];
        assert_ne!(file_key(&c, true), file_key(&c, false));
        assert_ne!(file_key(&c, false), file_key(&[], false));
        assert_eq!(file_key(&c, false), file_key(&c, false));
    }
}
