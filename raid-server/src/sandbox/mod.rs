//! The worker's side of the job container. The container itself, its limits and its image are the shared
//! sandbox library ([`rai_sandbox`]), which `rai run --local` uses too; what only a worker does lives here: images
//! built from a job's Dockerfile ([`built_image`]) and the Docker network of jobs allowed one ([`network`]). Like
//! the library, nothing here talks to the job's followers: it says what happened (lines of progress, errors) and the
//! job's life ([`crate::job`]) tells the student.

pub mod built_image;
pub mod network;

pub use rai_sandbox::JOB_LABEL;
pub use rai_sandbox::container::*;

#[cfg(test)]
mod tests {
    use bollard::models::ContainerCreateBody;
    use std::collections::HashMap;

    use super::*;

    /// A job's container as a worker with the default configuration makes it.
    fn spec() -> SandboxSpec {
        let config = rai_common::Config::defaults();
        let build = rai_common::BuildSpec::parse(
            "rai:\n  image: nvidia/cuda:12.4.1-devel-ubuntu22.04\ncommands:\n  build: [make]\n",
            "rai_build.yml",
        )
        .unwrap();
        let limits = crate::policy::resolve(&build, &config.raid, 0).unwrap();
        rai_sandbox::JobSandbox {
            raid: &config.raid,
            limits: &limits,
            job: "x".into(),
            name: "rai-job-x".into(),
            folders: rai_sandbox::JobFolders {
                src: "/jobs/x/src".into(),
                build: "/jobs/x/build".into(),
                gate: None,
            },
            labels: HashMap::new(),
            network: config.raid.job_network.name.clone(),
            env: Vec::new(),
        }
        .spec("img".into(), Vec::new())
    }

    fn visible(body: &ContainerCreateBody) -> Vec<String> {
        body.env
            .iter()
            .flatten()
            .filter_map(|e| e.strip_prefix("NVIDIA_VISIBLE_DEVICES="))
            .map(str::to_string)
            .collect()
    }

    #[tokio::test]
    async fn every_job_container_is_pinned_to_its_own_gpus_or_none() {
        use crate::gpu::{GpuInventory, GpuPool};
        for (file, want) in [
            ("h100x4.txt", vec!["0", "1"]),
            ("mixed-v100-t4.txt", vec!["0", "1"]),
            (
                "a100-mig.txt",
                vec![
                    "MIG-0b2a7c4e-5d2a-5b8e-9f1c-3a6e1d2b4c5f",
                    "MIG-7e1d3c5b-9a2f-5c4e-8b6d-0f1e2d3c4b5a",
                ],
            ),
            ("gpu-lost.txt", vec!["0", "2"]),
        ] {
            let path = format!(
                "{}/tests/data/nvidia-smi/{file}",
                env!("CARGO_MANIFEST_DIR")
            );
            let inventory = GpuInventory::parse(&std::fs::read_to_string(path).unwrap());
            let pool = GpuPool::new(inventory.ids());
            let lease = pool.acquire(2).await;
            let mut s = spec();
            s.gpus = lease.ids.clone();
            // An image or a build environment that asks for every GPU is overruled.
            s.env.push("NVIDIA_VISIBLE_DEVICES=all".into());
            let body = s.container_body();
            assert_eq!(visible(&body), [want.join(",")], "{file}");
            let req = &body.host_config.unwrap().device_requests.unwrap()[0];
            assert_eq!(req.device_ids.as_ref().unwrap(), &want, "{file}");
            // The job with no GPU on the same machine sees none, even under a default nvidia runtime.
            let mut none = spec();
            none.env.push("NVIDIA_VISIBLE_DEVICES=all".into());
            let body = none.container_body();
            assert_eq!(visible(&body), ["void"], "{file}");
            assert!(body.host_config.unwrap().device_requests.is_none());
        }
    }
}
