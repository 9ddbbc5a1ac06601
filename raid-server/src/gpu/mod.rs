//! This worker's GPUs: which it has, and which job holds which.
//!
//! Each job gets exactly the GPUs it asked for, by device id, for itself: a job waits for enough free GPUs rather
//! than share one. The GPUs come from `raid.gpus`, or from `nvidia-smi -L` when that is not set; a machine without
//! either has none, and jobs asking for GPUs are refused at once. A GPU split into MIG instances is given out one
//! instance at a time (by its `MIG-` UUID), never whole; a GPU `nvidia-smi` reports in error is left out and named
//! by `raid doctor`.
//!
//! Also here: what a job is told of its GPUs and of profiling, and [`sampler`], which keeps each job's GPU use.

pub mod sampler;

use std::sync::{Arc, Mutex};

use rai_common::config::GpuProfiling;
use tokio::sync::Notify;

/// The GPUs of this worker.
#[derive(Clone)]
pub struct GpuPool {
    all: Arc<Vec<String>>,
    state: Arc<Mutex<PoolState>>,
    released: Arc<Notify>,
}

/// Which GPUs are free, and which are held, oldest lease first (a prepared job guesses it gets the oldest's).
#[derive(Default)]
struct PoolState {
    free: Vec<String>,
    held: Vec<Vec<String>>,
}

/// GPUs held by one job; they return to the pool when this is dropped.
pub struct GpuLease {
    pub ids: Vec<String>,
    pool: GpuPool,
}

impl Drop for GpuLease {
    fn drop(&mut self) {
        let mut state = self.pool.lock();
        crate::metrics::metrics()
            .gpus_busy
            .dec_by(self.ids.len() as i64);
        if let Some(i) = state.held.iter().position(|h| *h == self.ids) {
            state.held.remove(i);
        }
        state.free.append(&mut self.ids);
        state.free.sort();
        drop(state);
        self.pool.released.notify_waiters();
    }
}

impl GpuPool {
    pub fn new(ids: Vec<String>) -> GpuPool {
        GpuPool {
            state: Arc::new(Mutex::new(PoolState {
                free: ids.clone(),
                held: Vec::new(),
            })),
            all: Arc::new(ids),
            released: Arc::new(Notify::new()),
        }
    }

    /// The configured GPUs, or those `nvidia-smi` lists, or none.
    pub fn detect(configured: Option<&Vec<String>>, nvidia_smi: &std::path::Path) -> GpuPool {
        if let Some(ids) = configured {
            return GpuPool::new(ids.clone());
        }
        GpuPool::new(GpuInventory::probe(nvidia_smi).map_or_else(|_| Vec::new(), |i| i.ids()))
    }

    pub fn count(&self) -> u32 {
        self.all.len() as u32
    }

    /// Every device of the pool, held or free.
    pub fn ids(&self) -> Vec<String> {
        self.all.to_vec()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state
            .lock()
            .expect("the GPU pool lock is never poisoned")
    }

    /// Takes `n` GPUs, waiting until that many are free. `n` must not exceed [`GpuPool::count`].
    pub async fn acquire(&self, n: u32) -> GpuLease {
        self.acquire_preferring(n, &[]).await
    }

    /// Takes `n` GPUs, waiting until that many are free; `preferred` ones first when they are all free (a prepared
    /// job's container was made with them).
    pub async fn acquire_preferring(&self, n: u32, preferred: &[String]) -> GpuLease {
        loop {
            let notified = self.released.notified();
            if let Some(lease) = self.take(n, preferred) {
                return lease;
            }
            notified.await;
        }
    }

    /// Takes `n` GPUs if that many are free now.
    pub fn try_acquire(&self, n: u32) -> Option<GpuLease> {
        self.take(n, &[])
    }

    fn take(&self, n: u32, preferred: &[String]) -> Option<GpuLease> {
        let mut state = self.lock();
        let n = n as usize;
        if state.free.len() < n {
            return None;
        }
        let ids: Vec<String> =
            if preferred.len() == n && preferred.iter().all(|p| state.free.contains(p)) {
                state.free.retain(|f| !preferred.contains(f));
                preferred.to_vec()
            } else {
                state.free.drain(..n).collect()
            };
        state.held.push(ids.clone());
        crate::metrics::metrics().gpus_busy.inc_by(n as i64);
        Some(GpuLease {
            ids,
            pool: self.clone(),
        })
    }

    /// The `n` GPUs a job that must wait for them will most likely get: the free ones, then those of the oldest
    /// leases (with one slot, exactly the running job's). A guess: [`GpuPool::acquire_preferring`] decides.
    pub fn likely_next(&self, n: u32) -> Vec<String> {
        let state = self.lock();
        let mut ids = state.free.clone();
        for held in &state.held {
            ids.extend(held.iter().cloned());
        }
        ids.truncate(n as usize);
        ids
    }
}

/// One device a job can be given: a whole GPU, or one MIG instance of a split GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuDevice {
    /// What Docker's device request and `NVIDIA_VISIBLE_DEVICES` name it by: the index of a whole GPU, the
    /// `MIG-` UUID of an instance.
    pub id: String,
    /// The model (`NVIDIA H100 80GB HBM3`), with the MIG profile for an instance (`... MIG 3g.20gb`).
    pub name: String,
}

/// Why `nvidia-smi -L` gave no answer: no tool, or no driver.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot run nvidia-smi: {0}")]
    Run(#[source] std::io::Error),
    #[error("nvidia-smi failed ({status}): {said}")]
    Failed {
        status: std::process::ExitStatus,
        said: String,
    },
}

/// What `nvidia-smi -L` says this machine has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuInventory {
    pub devices: Vec<GpuDevice>,
    /// GPUs the driver reports in error, in its words; never given to a job.
    pub unusable: Vec<String>,
}

impl GpuInventory {
    /// Runs `nvidia-smi -L`; `Err` says why there is no answer (no driver, no tool).
    pub fn probe(nvidia_smi: &std::path::Path) -> Result<GpuInventory, ProbeError> {
        let out = std::process::Command::new(nvidia_smi)
            .arg("-L")
            .output()
            .map_err(ProbeError::Run)?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let inventory = GpuInventory::parse(&text);
        if !out.status.success() && inventory.devices.is_empty() {
            return Err(ProbeError::Failed {
                status: out.status,
                said: text.trim().to_string(),
            });
        }
        Ok(inventory)
    }

    /// Reads `nvidia-smi -L`'s output (see `tests/data/nvidia-smi/`).
    pub fn parse(text: &str) -> GpuInventory {
        let mut inventory = GpuInventory::default();
        // The last whole GPU seen, taken back when MIG instances follow it: a split GPU is never given whole.
        let mut last_gpu: Option<(usize, String)> = None;
        for line in text.lines() {
            let trimmed = line.trim();
            if let Some(rest) = trimmed.strip_prefix("GPU ")
                && let Some((index, name)) = rest.split_once(": ")
                && index.chars().all(|c| c.is_ascii_digit())
            {
                let name = name
                    .split(" (UUID:")
                    .next()
                    .unwrap_or(name)
                    .trim()
                    .to_string();
                last_gpu = Some((inventory.devices.len(), name.clone()));
                inventory.devices.push(GpuDevice {
                    id: index.to_string(),
                    name,
                });
            } else if let Some(rest) = trimmed.strip_prefix("MIG ")
                && let Some(uuid) = between(rest, "(UUID: ", ")")
            {
                let profile = rest.split_whitespace().next().unwrap_or("");
                let parent = match last_gpu.take() {
                    Some((at, name)) => {
                        if inventory
                            .devices
                            .get(at)
                            .is_some_and(|d| !d.id.starts_with("MIG-"))
                        {
                            inventory.devices.remove(at);
                        }
                        // Later instances of the same GPU: nothing more to take back.
                        last_gpu = Some((usize::MAX, name.clone()));
                        name
                    }
                    None => String::from("GPU"),
                };
                inventory.devices.push(GpuDevice {
                    id: uuid.to_string(),
                    name: format!("{parent} MIG {profile}"),
                });
            } else if !trimmed.is_empty() {
                inventory.unusable.push(trimmed.to_string());
            }
        }
        inventory
    }

    /// The ids jobs are given.
    pub fn ids(&self) -> Vec<String> {
        self.devices.iter().map(|d| d.id.clone()).collect()
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}

pub use rai_sandbox::gpu::{capabilities, running_on, visible_devices};

/// What a profiler prints when the driver refuses it the GPU's performance counters.
pub const PROFILER_REFUSED: &str = "ERR_NVGPUCTRPERM";

/// The `✱` line a job gets after its profiler was refused the counters, by what this worker allows.
pub fn profiler_refused(profiling: GpuProfiling, worker: &str) -> String {
    match profiling {
        GpuProfiling::Off => format!(
            "Profilers (nvprof, nsys, ncu) cannot read the GPU's performance counters on this worker ({worker}): \
             profiling is off on its queue. Ask your course staff which queue allows profiling."
        ),
        GpuProfiling::Driver | GpuProfiling::Capability => format!(
            "The profiler was refused the GPU's performance counters (ERR_NVGPUCTRPERM): worker {worker} should \
             allow them but its NVIDIA driver keeps them to admins. Tell your course staff (`raid doctor` on that \
             worker shows what to change)."
        ),
    }
}

/// What `/proc/driver/nvidia/params` says of profiling: `Some(true)` when every user may read the counters
/// (`RestrictProfilingToAdminUsers: 0`), `Some(false)` when only admins may, `None` when it does not say.
pub fn driver_allows_profiling(params: &str) -> Option<bool> {
    params.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "RestrictProfilingToAdminUsers").then(|| value.trim() == "0")
    })
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

    #[tokio::test]
    async fn a_prepared_job_guesses_the_gpus_the_oldest_job_frees_and_gets_them() {
        let pool = GpuPool::new(vec!["0".into(), "1".into(), "2".into()]);
        let first = pool.acquire(1).await;
        let second = pool.acquire(1).await;
        assert_eq!(pool.likely_next(1), ["2"], "a free GPU first");
        let third = pool.try_acquire(1).expect("one was free");
        assert!(pool.try_acquire(1).is_none(), "none free now");
        assert_eq!(pool.likely_next(1), first.ids, "then the oldest job's");
        assert_eq!(pool.likely_next(2), ["0", "1"]);
        let guess = pool.likely_next(1);
        drop(second);
        drop(first);
        // Both 0 and 1 are free: the guess decides which the prepared job gets.
        let got = pool.acquire_preferring(1, &guess).await;
        assert_eq!(got.ids, guess);
        // A guess that is not free is ignored rather than waited for.
        let other = pool.acquire_preferring(1, &third.ids).await;
        assert_eq!(other.ids, ["1"]);
    }

    #[test]
    fn the_driver_setting_for_profiling_is_read_from_its_params() {
        let restricted =
            "ResmanDebugLevel: 4294967295\nRestrictProfilingToAdminUsers: 1\nRmLogonRC: 1\n";
        assert_eq!(driver_allows_profiling(restricted), Some(false));
        let open = "RestrictProfilingToAdminUsers: 0\n";
        assert_eq!(driver_allows_profiling(open), Some(true));
        assert_eq!(driver_allows_profiling("EnableMSI: 1\n"), None);
        assert_eq!(capabilities(GpuProfiling::Capability, true), ["SYS_ADMIN"]);
        assert!(capabilities(GpuProfiling::Capability, false).is_empty());
        assert!(capabilities(GpuProfiling::Driver, true).is_empty());
        assert!(profiler_refused(GpuProfiling::Off, "w1").contains("profiling is off"));
        assert_eq!(running_on(&[]), None);
        assert_eq!(running_on(&["0".into(), "1".into()]).unwrap(), "GPUs 0, 1");
    }

    fn recorded(name: &str) -> GpuInventory {
        let path = format!(
            "{}/tests/data/nvidia-smi/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        GpuInventory::parse(&std::fs::read_to_string(path).unwrap())
    }

    #[test]
    fn recorded_nvidia_smi_outputs_read() {
        let h100 = recorded("h100x4.txt");
        assert_eq!(h100.ids(), ["0", "1", "2", "3"]);
        assert_eq!(h100.devices[0].name, "NVIDIA H100 80GB HBM3");
        assert!(h100.unusable.is_empty());

        let mixed = recorded("mixed-v100-t4.txt");
        assert_eq!(
            mixed
                .devices
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>(),
            ["Tesla V100-SXM2-16GB", "Tesla T4"]
        );

        let mig = recorded("a100-mig.txt");
        assert_eq!(
            mig.ids(),
            [
                "MIG-0b2a7c4e-5d2a-5b8e-9f1c-3a6e1d2b4c5f",
                "MIG-7e1d3c5b-9a2f-5c4e-8b6d-0f1e2d3c4b5a",
                "MIG-2c4e6a8b-0d1f-5e3a-9c7b-6a5f4e3d2c1b",
                "1",
            ],
            "the split GPU 0 is given out by instance, never whole"
        );
        assert_eq!(mig.devices[0].name, "NVIDIA A100-SXM4-40GB MIG 3g.20gb");

        let lost = recorded("gpu-lost.txt");
        assert_eq!(lost.ids(), ["0", "2"], "the GPU in error is left out");
        assert_eq!(lost.unusable.len(), 1);
        assert!(lost.unusable[0].contains("GPU is lost"));
        assert_eq!(GpuInventory::parse(""), GpuInventory::default());
    }
}
