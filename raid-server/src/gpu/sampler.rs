//! Sampling each GPU's use while jobs run, and keeping what each job's commands did with theirs.
//!
//! Students and staff want to know whether a job used its GPU at all (a kernel that never launched, a program that
//! fell back to the CPU). While at least one job with GPUs runs its commands, one `nvidia-smi --query-gpu ... -lms`
//! process prints every GPU's utilisation and memory in use every `raid.gpu.sample_every`; each sample goes to
//! `/metrics` (per GPU, no user labels) and to every job watching that GPU, which keeps the mean and highest
//! utilisation and the peak memory ([`GpuUse`]). When the last such job ends, the process is stopped: an idle worker
//! samples nothing. One long-lived process rather than one per sample, because starting `nvidia-smi` costs more than
//! the sample itself; it is measured by the `gpu` benchmark.
//!
//! A whole GPU is matched by its index or its UUID (whichever `raid.gpus` names). A MIG instance has no
//! utilisation of its own in `nvidia-smi`'s GPU query, so a job on one is kept as not sampled rather than given its
//! parent GPU's figures, which other jobs share.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rai_common::state::GpuUse;
use tokio::io::AsyncBufReadExt;

/// One GPU's reading: one line of `nvidia-smi --query-gpu=index,uuid,utilization.gpu,memory.used
/// --format=csv,noheader,nounits`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub index: String,
    pub uuid: String,
    /// Percent; `None` where the GPU does not say (`[N/A]`, a MIG-enabled GPU).
    pub utilization: Option<f64>,
    /// MiB.
    pub memory_used_mib: Option<u64>,
}

impl Sample {
    /// Reads one line; `None` for anything else (a header, an error message).
    pub fn parse(line: &str) -> Option<Sample> {
        let mut fields = line.split(',').map(str::trim);
        let index = fields.next()?;
        if index.is_empty() || !index.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let uuid = fields.next()?;
        let utilization = fields.next()?.parse().ok();
        let memory_used_mib = fields.next()?.parse().ok();
        Some(Sample {
            index: index.to_string(),
            uuid: uuid.to_string(),
            utilization,
            memory_used_mib,
        })
    }

    fn is(&self, device: &str) -> bool {
        device == self.index || device == self.uuid
    }
}

/// The samples of one GPU seen by one job.
#[derive(Debug, Default, Clone)]
struct Tally {
    samples: u32,
    utilization_sum: f64,
    utilization_max: f64,
    memory_peak_mib: u64,
}

impl Tally {
    fn add(&mut self, sample: &Sample) {
        let Some(utilization) = sample.utilization else {
            return;
        };
        self.samples += 1;
        self.utilization_sum += utilization;
        self.utilization_max = self.utilization_max.max(utilization);
        self.memory_peak_mib = self
            .memory_peak_mib
            .max(sample.memory_used_mib.unwrap_or(0));
    }

    fn into_use(self, device: &str) -> GpuUse {
        GpuUse {
            device: device.to_string(),
            util_mean: if self.samples == 0 {
                0.0
            } else {
                self.utilization_sum / f64::from(self.samples)
            },
            util_max: self.utilization_max,
            memory_peak_mib: self.memory_peak_mib,
            samples: self.samples,
        }
    }
}

/// One job's GPUs and what was seen of them.
struct Watch {
    devices: Vec<String>,
    tallies: Vec<Tally>,
}

#[derive(Default)]
struct Shared {
    next: u64,
    watches: HashMap<u64, Watch>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

/// This worker's GPU sampler (cheap to clone).
#[derive(Clone)]
pub struct GpuSampler {
    program: PathBuf,
    every: Duration,
    shared: Arc<Mutex<Shared>>,
}

/// A job's watch over its GPUs, from its first command to its last; [`GpuWatch::finish`] says what was seen.
pub struct GpuWatch {
    sampler: GpuSampler,
    id: u64,
}

impl GpuSampler {
    /// Samples with `program` (`nvidia-smi`) every `every`; `every` of zero: never.
    pub fn new(program: PathBuf, every: Duration) -> GpuSampler {
        GpuSampler {
            program,
            every,
            shared: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .expect("the GPU sampler lock is never poisoned")
    }

    /// Starts watching `devices` for a job (and sampling, if nothing was); `None` when there is nothing to watch
    /// (no GPUs, or sampling off).
    pub fn watch(&self, devices: &[String]) -> Option<GpuWatch> {
        if devices.is_empty() || self.every.is_zero() {
            return None;
        }
        let mut shared = self.lock();
        let id = shared.next;
        shared.next += 1;
        shared.watches.insert(
            id,
            Watch {
                devices: devices.to_vec(),
                tallies: vec![Tally::default(); devices.len()],
            },
        );
        if shared.reader.as_ref().is_none_or(|r| r.is_finished()) {
            shared.reader = Some(tokio::spawn(read(self.clone())));
        }
        Some(GpuWatch {
            sampler: self.clone(),
            id,
        })
    }

    /// Gives a sample to the metrics and to every job watching its GPU.
    pub fn record(&self, sample: &Sample) {
        let metrics = crate::metrics::metrics();
        let labels = crate::metrics::GpuLabels {
            gpu: sample.index.clone(),
        };
        if let Some(u) = sample.utilization {
            metrics.gpu_utilization.get_or_create(&labels).set(u as i64);
        }
        if let Some(m) = sample.memory_used_mib {
            metrics
                .gpu_memory_used
                .get_or_create(&labels)
                .set((m << 20) as i64);
        }
        let mut shared = self.lock();
        for watch in shared.watches.values_mut() {
            for (device, tally) in watch.devices.iter().zip(&mut watch.tallies) {
                if sample.is(device) {
                    tally.add(sample);
                }
            }
        }
    }

    /// Ends a watch; the last one stops the sampling process.
    fn end(&self, id: u64) -> Option<Watch> {
        let mut shared = self.lock();
        let watch = shared.watches.remove(&id);
        if shared.watches.is_empty()
            && let Some(reader) = shared.reader.take()
        {
            // The process is killed with the task (kill_on_drop).
            reader.abort();
        }
        watch
    }
}

impl GpuWatch {
    /// What the job's GPUs did while it watched, one entry per device in the order it was given them.
    pub fn finish(self) -> Vec<GpuUse> {
        // Ended here; the drop that follows finds nothing left to end.
        self.sampler.end(self.id).map_or_else(Vec::new, |w| {
            w.devices
                .iter()
                .zip(w.tallies)
                .map(|(d, t)| t.into_use(d))
                .collect()
        })
    }
}

impl Drop for GpuWatch {
    fn drop(&mut self) {
        self.sampler.end(self.id);
    }
}

/// Samples every GPU of this machine (`raid.gpus`, else what `nvidia-smi -L` lists) for `span`, as jobs' GPU use is
/// sampled: `raid gpu-use`, and the GPU check on a real GPU (deploy/gpu/check.sh).
pub async fn sample_all(config: &rai_common::Config, span: Duration) -> Vec<GpuUse> {
    let gpu = &config.raid.gpu;
    let devices = match &config.raid.gpus {
        Some(ids) => ids.clone(),
        None => {
            super::GpuInventory::probe(&gpu.nvidia_smi).map_or_else(|_| Vec::new(), |i| i.ids())
        }
    };
    let every = if gpu.sample_every.as_duration().is_zero() {
        Duration::from_secs(1)
    } else {
        gpu.sample_every.as_duration()
    };
    let sampler = GpuSampler::new(gpu.nvidia_smi.clone(), every);
    let Some(watch) = sampler.watch(&devices) else {
        return Vec::new();
    };
    tokio::time::sleep(span).await;
    watch.finish()
}

/// Runs the sampling process and hands on its lines until it ends or the task is aborted.
async fn read(sampler: GpuSampler) {
    let millis = sampler.every.as_millis().max(1).to_string();
    let child = tokio::process::Command::new(&sampler.program)
        .args([
            "--query-gpu=index,uuid,utilization.gpu,memory.used",
            "--format=csv,noheader,nounits",
            "-lms",
            &millis,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(program = %sampler.program.display(), error = %e, "cannot sample the GPUs (raid.gpu.nvidia_smi); jobs' GPU use is not kept");
            return;
        }
    };
    let Some(stdout) = child.stdout.take() else {
        return;
    };
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(sample) = Sample::parse(&line) {
            sampler.record(&sample);
        }
    }
    let status = child.wait().await;
    tracing::warn!(program = %sampler.program.display(), status = ?status, "the GPU sampler stopped; jobs' GPU use is not kept until the next GPU job");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvidia_smi_query_lines_are_read() {
        assert_eq!(
            Sample::parse("0, GPU-4f1c2a9e-7d3b-5e8a-9c1f-2b6d4e8a0c31, 87, 1530"),
            Some(Sample {
                index: "0".into(),
                uuid: "GPU-4f1c2a9e-7d3b-5e8a-9c1f-2b6d4e8a0c31".into(),
                utilization: Some(87.0),
                memory_used_mib: Some(1530),
            })
        );
        let mig = Sample::parse("1, GPU-9b2e7c41, [N/A], 4021").unwrap();
        assert_eq!((mig.utilization, mig.memory_used_mib), (None, Some(4021)));
        assert_eq!(
            Sample::parse("index, uuid, utilization.gpu [%], memory.used [MiB]"),
            None
        );
        assert_eq!(
            Sample::parse("NVIDIA-SMI has failed because it couldn't communicate"),
            None
        );
        assert_eq!(Sample::parse(""), None);
    }

    #[tokio::test]
    async fn each_job_keeps_its_own_gpus_samples() {
        // A program that never starts: samples are given by hand.
        let sampler = GpuSampler::new("/nonexistent/nvidia-smi".into(), Duration::from_secs(1));
        assert!(sampler.watch(&[]).is_none());
        let a = sampler.watch(&["0".into()]).unwrap();
        let b = sampler.watch(&["GPU-b".into(), "MIG-5e7a".into()]).unwrap();
        let sample = |index: &str, uuid: &str, u: f64, m: u64| Sample {
            index: index.into(),
            uuid: uuid.into(),
            utilization: Some(u),
            memory_used_mib: Some(m),
        };
        sampler.record(&sample("0", "GPU-a", 50.0, 100));
        sampler.record(&sample("1", "GPU-b", 10.0, 900));
        sampler.record(&sample("0", "GPU-a", 100.0, 300));
        sampler.record(&sample("1", "GPU-b", 30.0, 700));
        let a = a.finish();
        assert_eq!(a.len(), 1);
        assert_eq!(
            (
                a[0].util_mean,
                a[0].util_max,
                a[0].memory_peak_mib,
                a[0].samples
            ),
            (75.0, 100.0, 300, 2)
        );
        sampler.record(&sample("1", "GPU-b", 20.0, 800));
        let b = b.finish();
        assert_eq!(
            (b[0].device.as_str(), b[0].util_mean, b[0].samples),
            ("GPU-b", 20.0, 3)
        );
        assert_eq!(b[0].memory_peak_mib, 900);
        assert_eq!(
            (b[1].device.as_str(), b[1].samples),
            ("MIG-5e7a", 0),
            "a MIG instance is not sampled"
        );
        assert!(b[1].describe().contains("not sampled"));
        assert!(sampler.lock().watches.is_empty() && sampler.lock().reader.is_none());
        let off = GpuSampler::new("nvidia-smi".into(), Duration::ZERO);
        assert!(off.watch(&["0".into()]).is_none(), "sampling off");
    }
}
