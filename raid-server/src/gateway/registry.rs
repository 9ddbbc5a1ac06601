//! The account registry as the gateway reads it: reread whenever its file changes (one `stat` per request), so an
//! instructor's revocation holds from the next request, without a restart or a signal.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rai_common::account::Registry;

/// The registry file and its last good contents.
pub struct RegistryFile {
    path: PathBuf,
    cached: Mutex<Cached>,
}

struct Cached {
    registry: Arc<Registry>,
    modified: Option<SystemTime>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl RegistryFile {
    pub fn load(path: &Path) -> anyhow::Result<RegistryFile> {
        use anyhow::Context;
        let registry = Registry::load(path)
            .with_context(|| format!("cannot read the account registry {}", path.display()))?;
        Ok(RegistryFile {
            path: path.to_path_buf(),
            cached: Mutex::new(Cached {
                registry: Arc::new(registry),
                modified: modified(path),
            }),
        })
    }

    /// The registry as of now. A file that became unreadable or broken keeps the last good one (logged), so an
    /// instructor's half-written edit never locks the whole course out.
    pub fn current(&self) -> Arc<Registry> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        let now = modified(&self.path);
        if now != cached.modified {
            match Registry::load(&self.path) {
                Ok(registry) => {
                    tracing::info!(path = %self.path.display(), users = registry.users.len(), "account registry reloaded");
                    cached.registry = Arc::new(registry);
                    cached.modified = now;
                }
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e, "the account registry is broken; keeping the last good one");
                }
            }
        }
        cached.registry.clone()
    }
}
