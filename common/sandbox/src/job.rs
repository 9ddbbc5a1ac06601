//! What every job's container is made of, whichever machine runs it: the limits the policy resolved, the
//! environment a build file can count on (`RAI=1`, `RAI_JOB_ID`, `RAI_SOURCE_DIR`, `RAI_BUILD_DIR`, `HOME`), the
//! `/tmp` size, the user, the shell and the capabilities of the course's `raid` section. The worker and
//! `rai run --local` both make their containers here, so a build file meets the same sandbox on a student's laptop
//! as on the course's GPUs.

use std::collections::HashMap;
use std::path::PathBuf;

use rai_common::config::RaidConfig;

use crate::container::SandboxSpec;
use crate::policy::JobLimits;

/// The label every job container carries, so leftovers of a crashed worker can be found and removed.
pub const JOB_LABEL: &str = "rai.job";

/// The host folders a job's container mounts.
#[derive(Debug, Clone)]
pub struct JobFolders {
    /// The project, mounted read-only at `/src`.
    pub src: PathBuf,
    /// Mounted writable at `/build`, the working directory; kept after the job.
    pub build: PathBuf,
    /// The gate of a command started ahead ([`crate::Sandbox::start_gated`]), if any.
    pub gate: Option<PathBuf>,
}

/// One job's container, before its image and GPUs are known.
#[derive(Debug, Clone)]
pub struct JobSandbox<'a> {
    pub raid: &'a RaidConfig,
    pub limits: &'a JobLimits,
    /// The job's id, as `RAI_JOB_ID` and the [`JOB_LABEL`].
    pub job: String,
    /// The container's name.
    pub name: String,
    pub folders: JobFolders,
    /// Labels besides the [`JOB_LABEL`].
    pub labels: HashMap<String, String>,
    /// The Docker network of a job allowed one.
    pub network: String,
    /// More environment: a sweep's `RAI_MATRIX_<NAME>=value`.
    pub env: Vec<String>,
}

impl JobSandbox<'_> {
    /// The container of this job on `image` with `gpus` (device ids).
    pub fn spec(&self, image: String, gpus: Vec<String>) -> SandboxSpec {
        let (raid, limits) = (self.raid, self.limits);
        let cap_add = crate::gpu::capabilities(raid.gpu.profiling, !gpus.is_empty());
        let mut labels = self.labels.clone();
        labels.insert(JOB_LABEL.to_string(), self.job.clone());
        SandboxSpec {
            name: self.name.clone(),
            image,
            src_dir: self.folders.src.clone(),
            build_dir: self.folders.build.clone(),
            user: raid.user.clone(),
            shell: raid.shell.clone(),
            memory_bytes: limits.memory,
            cpus: limits.cpus,
            pids: limits.pids,
            nofile: limits.nofile,
            network: limits.network.then(|| self.network.clone()),
            tmp_bytes: tmp_bytes(limits.memory),
            gpus,
            runtime: raid.runtime.clone(),
            env: vec![
                "RAI=1".into(),
                "CI=rai".into(),
                format!("RAI_JOB_ID={}", self.job),
                "RAI_SOURCE_DIR=/src".into(),
                "RAI_BUILD_DIR=/build".into(),
                "HOME=/build".into(),
            ]
            .into_iter()
            .chain(self.env.iter().cloned())
            .collect(),
            labels,
            gate_dir: self.folders.gate.clone(),
            cap_add,
            datasets: limits.datasets.clone(),
        }
    }
}

/// The size of a job's `/tmp` (memory, since it is a tmpfs): a quarter of its memory, within 16 MiB and 1 GiB.
pub fn tmp_bytes(memory: u64) -> u64 {
    (memory / 4).clamp(16 << 20, 1 << 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_container_carries_the_course_sandbox() {
        let config = rai_common::Config::defaults();
        let spec = rai_common::BuildSpec::parse(
            "rai:\n  image: nvidia/cuda:12.4.1-devel-ubuntu22.04\nresources:\n  gpu:\n    count: 1\ncommands:\n  build: [make]\n",
            "rai_build.yml",
        )
        .unwrap();
        let limits = crate::policy::resolve(&spec, &config.raid, 1).unwrap();
        let job = JobSandbox {
            raid: &config.raid,
            limits: &limits,
            job: "j1".into(),
            name: "rai-job-j1".into(),
            folders: JobFolders {
                src: "/jobs/j1/src".into(),
                build: "/jobs/j1/build".into(),
                gate: None,
            },
            labels: HashMap::new(),
            network: "rai-jobs".into(),
            env: vec!["RAI_MATRIX_BLOCK=32".into()],
        };
        let spec = job.spec("img".into(), vec!["0".into()]);
        assert_eq!(spec.labels[JOB_LABEL], "j1");
        assert!(spec.env.contains(&"RAI_JOB_ID=j1".to_string()));
        assert!(spec.env.contains(&"RAI_MATRIX_BLOCK=32".to_string()));
        assert_eq!(spec.user, config.raid.user);
        assert_eq!(spec.memory_bytes, limits.memory);
        assert_eq!(spec.tmp_bytes, tmp_bytes(limits.memory));
        assert_eq!(spec.network, None, "no network unless asked");
        assert_eq!(spec.gpus, ["0"]);
        assert_eq!(spec.unbounded(), None);
    }
}
