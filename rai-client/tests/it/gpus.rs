//! A GPU job as a student sees it (issue 27): through the TLS gateway, on a worker whose Docker engine carries GPU
//! requests ([`rai_testkit::gpu_engine`]): the `✱` line names the job's GPU, and `rai status`, `rai history --json`
//! the record and the staff dashboard's job page show how it used it (the stand-in `nvidia-smi` reports known
//! samples).

use rai_testkit::gpu_engine::GpuEngine;
use rai_testkit::stack::{Kind, Options, Stack, WorkerGpus, job_id, text};

const GPU: &str = "GPU-4f1c2a9e-7d3b-5e8a-9c1f-2b6d4e8a0c31";

#[tokio::test(flavor = "multi_thread")]
async fn a_gpu_job_names_its_gpu_and_reports_its_use() {
    let engine = tokio::task::spawn_blocking(GpuEngine::start).await.unwrap();
    engine.set_samples(&[(0, GPU, 73, 5120)]);
    let s = Stack::start(
        Kind::Local,
        Options {
            gpus: Some(WorkerGpus::on(&engine, &[GPU])),
            users: 2,
            staff: &[1],
            ..Options::default()
        },
    )
    .await;
    let dir = rai_testkit::stack::gpu_project(
        &rai_testkit::image(),
        1,
        &["echo \"on $NVIDIA_VISIBLE_DEVICES\"; sleep 3"],
    );
    let out = s.rai(0, &["-p", dir.path().to_str().unwrap()]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(text(&out.stdout), format!("on {GPU}\n"));
    assert!(
        stderr.contains(&format!("✱ Your job is running on {}", s.workers[0].name))
            && stderr.contains(&format!("with GPU {GPU}.")),
        "{stderr}"
    );
    let id = job_id(&stderr);

    let out = s.rai(0, &["status", &id]).await;
    let status = text(&out.stdout);
    assert!(status.contains(&format!("gpus:     {GPU}")), "{status}");
    assert!(
        status.contains(&format!(
            "gpu use:  {GPU}: 73% mean, 73% max, 5120 MiB peak"
        )),
        "{status}"
    );
    let out = s.rai(0, &["history", "--json"]).await;
    // One record a line, newest first.
    let history = text(&out.stdout);
    let record: serde_json::Value = serde_json::from_str(history.lines().next().unwrap()).unwrap();
    assert_eq!(record["gpus"][0], GPU, "{record}");
    assert_eq!(record["gpu_use"][0]["util_mean"], 73.0, "{record}");
    assert_eq!(record["gpu_use"][0]["memory_peak_mib"], 5120, "{record}");

    // The staff dashboard's job page, in a real browser over HTTPS.
    let b = crate::dashboard::browser(false).await;
    b.goto(&crate::dashboard::link(&s, 1).await).await.unwrap();
    b.goto(&format!("{}/ui/jobs/{id}", s.gateways[0].url))
        .await
        .unwrap();
    let page = crate::dashboard::body(&b).await;
    assert!(
        page.contains(&format!("GPUs\n{GPU}"))
            && page.contains(&format!("GPU use\n{GPU}: 73% mean, 73% max, 5120 MiB peak")),
        "{page}"
    );
    b.close().await.unwrap();
}
