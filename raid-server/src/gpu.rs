//! This worker's GPUs: which it has, and which job holds which.
//!
//! Each job gets exactly the GPUs it asked for, by device id, for itself: a job waits for enough free GPUs rather
//! than share one. The GPUs come from `raid.gpus`, or from `nvidia-smi` when that is not set; a machine without
//! either has none, and jobs asking for GPUs are refused at once.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// The GPUs of this worker.
#[derive(Clone)]
pub struct GpuPool {
    all: Arc<Vec<String>>,
    free: Arc<Mutex<Vec<String>>>,
    released: Arc<Notify>,
}

/// GPUs held by one job; they return to the pool when this is dropped.
pub struct GpuLease {
    pub ids: Vec<String>,
    pool: GpuPool,
}

impl Drop for GpuLease {
    fn drop(&mut self) {
        let mut free = self
            .pool
            .free
            .lock()
            .expect("the GPU pool lock is never poisoned");
        free.append(&mut self.ids);
        free.sort();
        drop(free);
        self.pool.released.notify_waiters();
    }
}

impl GpuPool {
    pub fn new(ids: Vec<String>) -> GpuPool {
        GpuPool {
            free: Arc::new(Mutex::new(ids.clone())),
            all: Arc::new(ids),
            released: Arc::new(Notify::new()),
        }
    }

    /// The configured GPUs, or those `nvidia-smi` lists, or none.
    pub fn detect(configured: Option<&Vec<String>>) -> GpuPool {
        if let Some(ids) = configured {
            return GpuPool::new(ids.clone());
        }
        let listed = std::process::Command::new("nvidia-smi")
            .args(["--query-gpu=index", "--format=csv,noheader"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        GpuPool::new(listed)
    }

    pub fn count(&self) -> u32 {
        self.all.len() as u32
    }

    /// Takes `n` GPUs, waiting until that many are free. `n` must not exceed [`GpuPool::count`].
    pub async fn acquire(&self, n: u32) -> GpuLease {
        loop {
            let notified = self.released.notified();
            {
                let mut free = self
                    .free
                    .lock()
                    .expect("the GPU pool lock is never poisoned");
                if free.len() >= n as usize {
                    let ids: Vec<String> = free.drain(..n as usize).collect();
                    return GpuLease {
                        ids,
                        pool: self.clone(),
                    };
                }
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn jobs_get_their_own_gpus_and_wait_for_free_ones() {
        let pool = GpuPool::new(vec!["0".into(), "1".into()]);
        let a = pool.acquire(1).await;
        let b = pool.acquire(1).await;
        assert_ne!(a.ids, b.ids);
        let waiting = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.acquire(2).await.ids.clone() })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "two GPUs are not free yet");
        drop(a);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        drop(b);
        assert_eq!(
            waiting.await.unwrap(),
            vec!["0".to_string(), "1".to_string()]
        );
        assert_eq!(pool.acquire(0).await.ids.len(), 0);
    }
}
