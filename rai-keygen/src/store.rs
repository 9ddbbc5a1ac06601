//! The registry file on disk.
//!
//! Several instructors (or a script and a person) may run `rai-keygen` at once, and workers read the file while it
//! changes. So every change takes an exclusive lock on `<registry>.lock`, reads the current registry, writes the new
//! one to a temporary file in the same directory, syncs it, keeps the old file as `<registry>.bak`, and renames the
//! new one into place: a reader sees the old registry or the new one, never half of one.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use rai_common::account::{Profile, Registry};

use crate::errors::KeygenError;

/// A registry file and its lock.
pub struct RegistryStore {
    path: PathBuf,
}

/// A locked registry, ready to change; dropping it without [`LockedRegistry::save`] changes nothing.
pub struct LockedRegistry {
    path: PathBuf,
    _lock: File,
    pub registry: Registry,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> KeygenError + 'a {
    move |source| KeygenError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

impl RegistryStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RegistryStore { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the registry without locking (for list and show).
    pub fn read(&self) -> Result<Registry, KeygenError> {
        Ok(Registry::load(&self.path)?)
    }

    /// Locks the registry for a change and reads it.
    pub fn lock(&self) -> Result<LockedRegistry, KeygenError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
        }
        let lock_path = with_suffix(&self.path, ".lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("cannot open", &lock_path))?;
        lock.lock().map_err(io("cannot lock", &lock_path))?;
        let registry = Registry::load(&self.path)?;
        Ok(LockedRegistry {
            path: self.path.clone(),
            _lock: lock,
            registry,
        })
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes `text` to `path` atomically (temp file in the same directory, fsync, rename), with `mode` on Unix.
fn write_atomic(path: &Path, text: &str, mode: Option<u32>) -> Result<(), KeygenError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(io("cannot create a file in", dir))?;
    #[cfg(unix)]
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io("cannot set permissions on", path))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.write_all(text.as_bytes())
        .map_err(io("cannot write", path))?;
    tmp.as_file().sync_all().map_err(io("cannot sync", path))?;
    tmp.persist(path).map_err(|e| KeygenError::Io {
        action: "cannot replace",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

impl LockedRegistry {
    /// Writes the changed registry, keeping the previous file as `<registry>.bak`.
    pub fn save(self) -> Result<(), KeygenError> {
        if self.path.exists() {
            let backup = with_suffix(&self.path, ".bak");
            std::fs::copy(&self.path, &backup).map_err(io("cannot back up to", &backup))?;
        }
        write_atomic(&self.path, &self.registry.to_yaml(), Some(0o644))
    }
}

/// Writes a profile with mode 0600: it holds a private key.
pub fn write_profile(path: &Path, profile: &Profile) -> Result<(), KeygenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
    }
    write_atomic(path, &profile.to_yaml(), Some(0o600))
}

/// Makes a gateway attestation key at `path` (mode 0600; never replaces an existing file) and returns its public
/// key, for every worker's `raid.gateway_keys`.
pub fn write_gateway_key(path: &Path) -> Result<String, KeygenError> {
    if path.exists() {
        return Err(KeygenError::KeyExists(path.to_path_buf()));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
    }
    let key = rai_common::account::generate_signing_key();
    write_atomic(
        path,
        &rai_common::account::gateway_key_file(&key),
        Some(0o600),
    )?;
    Ok(rai_common::account::encode_public_key(&key.verifying_key()))
}
