//! The object store as a directory: for one machine, or several sharing a mount.
//!
//! A put streams into a temporary file under `<root>/.tmp`, syncs it and renames it into place, so a reader sees
//! the old object or the new one, never a half-written one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{ObjectInfo, ObjectReader, ObjectStore, PutResult, check_key, fill};
use crate::errors::StoreError;

/// Whether a batch is synced as it is written or by a later [`ObjectStore::sync`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durable {
    Now,
    Later,
}

/// An object store in a directory.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    /// Opens the store at `root`, which must exist.
    pub fn open(root: impl Into<PathBuf>) -> Result<FsStore, StoreError> {
        let root = root.into();
        match std::fs::metadata(&root) {
            Ok(m) if m.is_dir() => Ok(FsStore { root }),
            Ok(_) => Err(StoreError::Missing {
                store: root.display().to_string(),
                what: "the store path is not a directory".into(),
            }),
            Err(_) => Err(StoreError::Missing {
                store: root.display().to_string(),
                what: "the store directory does not exist; create it or set store.path".into(),
            }),
        }
    }

    /// Creates the directory if needed, then opens it.
    pub fn create(root: impl Into<PathBuf>) -> Result<FsStore, StoreError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|source| StoreError::Io {
            key: root.display().to_string(),
            source,
        })?;
        Self::open(root)
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    /// Writes a batch in one blocking step: every temporary file, then (`Durable::Now`) every fsync, then every
    /// rename, so the first fsync's journal commit carries them all. A bad key refuses the batch before anything is
    /// written; a failure removes the temporary files.
    async fn write_batch<B: AsRef<[u8]> + Send + 'static>(
        &self,
        objects: Vec<(String, B)>,
        durable: Durable,
    ) -> Result<(), StoreError> {
        let mut planned = Vec::with_capacity(objects.len());
        for (key, bytes) in objects {
            let path = self.path(&key)?;
            let tmp = self
                .root
                .join(".tmp")
                .join(format!("put-{}", rai_common::JobId::new()));
            planned.push((key, path, tmp, bytes));
        }
        let first_key = planned.first().map(|p| p.0.clone()).unwrap_or_default();
        // Elsewhere than Linux there is no syncfs for [`ObjectStore::sync`], so every file is synced here.
        let sync_each = durable == Durable::Now || !cfg!(target_os = "linux");
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let Some((_, _, tmp, _)) = planned.first() else {
                return Ok(());
            };
            std::fs::create_dir_all(tmp.parent().expect("in .tmp"))
                .map_err(|e| Self::io(&planned[0].0, e))?;
            let mut written: Vec<std::fs::File> = Vec::with_capacity(planned.len());
            let result = (|| {
                for (key, _, tmp, bytes) in &planned {
                    let mut file = std::fs::File::create(tmp).map_err(|e| Self::io(key, e))?;
                    file.write_all(bytes.as_ref())
                        .map_err(|e| Self::io(key, e))?;
                    written.push(file);
                }
                if sync_each {
                    for (file, (key, ..)) in written.iter().zip(&planned) {
                        file.sync_all().map_err(|e| Self::io(key, e))?;
                    }
                }
                for (key, path, tmp, _) in &planned {
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| Self::io(key, e))?;
                    }
                    std::fs::rename(tmp, path).map_err(|e| Self::io(key, e))?;
                }
                Ok(())
            })();
            if result.is_err() {
                for (_, _, tmp, _) in &planned {
                    let _ = std::fs::remove_file(tmp);
                }
            }
            result
        })
        .await
        .map_err(|e| Self::io(&first_key, std::io::Error::other(e)))?
    }

    fn io(key: &str, e: std::io::Error) -> StoreError {
        StoreError::Io {
            key: key.to_string(),
            source: e,
        }
    }
}

fn modified(meta: &std::fs::Metadata) -> Option<chrono::DateTime<chrono::Utc>> {
    meta.modified()
        .ok()
        .map(chrono::DateTime::<chrono::Utc>::from)
}

fn walk(dir: &Path, root: &Path, prefix: &str, out: &mut Vec<ObjectInfo>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        if rel == ".tmp" {
            continue;
        }
        let ft = entry.file_type()?;
        if ft.is_dir() {
            // Only descend where keys under the prefix can be.
            let as_dir = format!("{rel}/");
            if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                walk(&path, root, prefix, out)?;
            }
        } else if ft.is_file() && rel.starts_with(prefix) {
            let meta = entry.metadata()?;
            out.push(ObjectInfo {
                key: rel,
                size: meta.len(),
                modified: modified(&meta),
            });
        }
    }
    Ok(())
}

#[async_trait]
impl ObjectStore for FsStore {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    async fn put(&self, key: &str, mut body: ObjectReader) -> Result<PutResult, StoreError> {
        let path = self.path(key)?;
        let tmp_dir = self.root.join(".tmp");
        tokio::fs::create_dir_all(&tmp_dir)
            .await
            .map_err(|e| Self::io(key, e))?;
        let tmp = tmp_dir.join(format!("put-{}", rai_common::JobId::new()));
        let result = async {
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| Self::io(key, e))?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = fill(&mut body, &mut buf)
                    .await
                    .map_err(|e| Self::io(key, e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n])
                    .await
                    .map_err(|e| Self::io(key, e))?;
                size += n as u64;
            }
            file.sync_all().await.map_err(|e| Self::io(key, e))?;
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| Self::io(key, e))?;
            }
            tokio::fs::rename(&tmp, &path)
                .await
                .map_err(|e| Self::io(key, e))?;
            Ok(PutResult {
                size,
                sha256: hex::encode(hasher.finalize()),
            })
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    /// [`Self::put`] in one blocking step (a batch of one): a worker's record or a manifest would otherwise spend six
    /// hops to the blocking pool (the same temporary file, fsync and rename).
    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<PutResult, StoreError> {
        let put = PutResult {
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
        };
        self.put_many(vec![(key.to_string(), bytes)]).await?;
        Ok(put)
    }

    /// [`Self::put_bytes`] for a batch, in one blocking step: every temporary file is written before any is
    /// synced, so the first fsync's journal commit carries them all and the rest find little to do (one commit a
    /// batch instead of one a chunk); then each is renamed, as alone. Nothing is named before it is durable.
    async fn put_many(&self, objects: Vec<(String, Vec<u8>)>) -> Result<(), StoreError> {
        self.write_batch(objects, Durable::Now).await
    }

    /// [`Self::put_many`] without the fsyncs: a chunked upload's batches (about 1,500 files for a 1.2 GB first
    /// submit) are synced once, by [`Self::sync`] when the upload completes, where an fsync each made storing the
    /// largest and noisiest part of a first submit (issue 30). Until then a crash may leave a named file short or
    /// empty; that is safe because nothing refers to these objects before the sync (the gateway adds chunks to the
    /// owner's set only after it), so a later submit finds them missing from the set and sends them again.
    async fn put_many_unsynced(
        &self,
        objects: Vec<(String, bytes::Bytes)>,
    ) -> Result<(), StoreError> {
        self.write_batch(objects, Durable::Later).await
    }

    /// One `syncfs(2)` of the filesystem the store is on: every file and rename written so far, in one journal
    /// commit. Elsewhere than Linux, each staged file was already synced.
    async fn sync(&self) -> Result<(), StoreError> {
        #[cfg(target_os = "linux")]
        {
            let root = self.root.clone();
            tokio::task::spawn_blocking(move || {
                let dir = std::fs::File::open(&root)?;
                rustix::fs::syncfs(&dir)?;
                Ok::<_, std::io::Error>(())
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(|e| Self::io(".", e))?;
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<ObjectReader, StoreError> {
        let path = self.path(key)?;
        match tokio::fs::File::open(&path).await {
            Ok(f) => Ok(Box::pin(tokio::io::BufReader::with_capacity(1 << 20, f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound {
                key: key.to_string(),
                store: self.describe(),
            }),
            Err(e) => Err(Self::io(key, e)),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let path = self.path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(ObjectInfo {
                key: key.to_string(),
                size: m.len(),
                modified: modified(&m),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::io(key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let (root, prefix) = (self.root.clone(), prefix.to_string());
        let mut out = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            walk(&root, &root, &prefix, &mut out).map(|_| out)
        })
        .await
        .expect("the listing task does not panic")
        .map_err(|e| Self::io("(list)", e))?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Self::io(key, e)),
        }
    }

    async fn download_link(&self, key: &str, _expires: Duration) -> Result<String, StoreError> {
        let path = self.path(key)?;
        let abs = std::path::absolute(&path).unwrap_or(path);
        Ok(abs.display().to_string())
    }
}
