//! GPU jobs on a Docker engine that carries GPU requests (issue 27), each figure beside a reference measured in the
//! same run:
//!
//!     deploy/local/bench.sh        (or, with the stack up: cargo bench -p raid-server --bench gpu)
//!
//! 1. GPU job start: hello (`echo hello`) asking for one GPU, from queueing to its end event, p50 of 20, on the GPU
//!    engine of the test kit (a private dockerd whose nvidia driver runs a stand-in hook), against the same job
//!    asking for none on the same engine, runs taken in turn (target <= 1.1); beside it, `docker run --rm` with and
//!    without `--gpus` on that engine, which says what the engine and its hook add by themselves.
//! 2. The GPU sampler's cost on the worker: the worker process's CPU time while it samples 8 GPUs once a second
//!    (`raid.gpu.sample_every: 1s`, a stand-in `nvidia-smi` printing 8 lines a second), against the same worker idle
//!    for as long (target: <= 1% of a core more). The stand-in's own CPU is printed, not judged: a real
//!    `nvidia-smi`'s is the driver's.

#[path = "../tests/it/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use rai_testkit::bench::percentile;
use rai_testkit::gpu_engine::GpuEngine;

const RUNS: usize = 20;
const WINDOW: Duration = Duration::from_secs(20);

/// This process's CPU time, and that of its children waited for, from `/proc/self/stat`.
fn cpu() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let tick = clock_ticks();
    // After the command name: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    let at = |field: usize| fields[field - 3];
    (
        Duration::from_secs_f64((at(14) + at(15)) as f64 / tick),
        Duration::from_secs_f64((at(16) + at(17)) as f64 / tick),
    )
}

fn clock_ticks() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100.0)
}

fn project(gpus: u32) -> tempfile::TempDir {
    rai_testkit::stack::gpu_project(&rai_testkit::image(), gpus, &["echo hello"])
}

#[tokio::main]
async fn main() {
    let engine = tokio::task::spawn_blocking(GpuEngine::start).await.unwrap();
    let devices: Vec<String> = (0..8)
        .map(|i| format!("GPU-00000000-0000-4000-8000-00000000000{i}"))
        .collect();
    let samples: Vec<(u32, &str, u32, u64)> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| (i as u32, d.as_str(), 50, 1024))
        .collect();
    engine.set_samples(&samples);
    let (host, smi) = (engine.host(), engine.nvidia_smi());
    let gpu_ids = devices.clone();
    let h = harness::Harness::start(move |c| {
        c.raid.docker = Some(host);
        c.raid.gpus = Some(gpu_ids);
        c.raid.concurrency = Some(1);
        c.raid.gpu.nvidia_smi = smi;
        c.raid.gpu.sample_every = rai_common::units::Span::from_secs(1);
    })
    .await;

    // 1. GPU job start, in turns with the same job without GPUs.
    let (gpu_dir, plain_dir) = (project(1), project(0));
    let run = |dir: &std::path::Path| {
        let dir = dir.to_path_buf();
        let h = &h;
        async move {
            let start = Instant::now();
            let job = h.submit_dir(&dir, |_| {}).await;
            let events = h.events(job, Duration::from_secs(60)).await;
            assert_eq!(rai_testkit::jobs::end(&events).0, "succeeded");
            start.elapsed()
        }
    };
    for _ in 0..3 {
        run(gpu_dir.path()).await;
        run(plain_dir.path()).await;
    }
    let (mut with_gpu, mut without) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        with_gpu.push(run(gpu_dir.path()).await);
        without.push(run(plain_dir.path()).await);
    }
    let hooked = engine.hook_calls().len();
    let (g, n) = (percentile(&with_gpu, 0.5), percentile(&without, 0.5));
    // What the engine itself (device request, hook) adds: `docker run --rm` with and without `--gpus`, in turns.
    let image = rai_testkit::image();
    let docker_run = |gpus: bool| {
        let mut args = vec!["run", "--rm", "--network", "none"];
        let device = format!("device={}", devices[0]);
        if gpus {
            args.extend(["--gpus", device.as_str()]);
        }
        args.extend([image.as_str(), "echo", "hello"]);
        let start = Instant::now();
        assert!(engine.docker(&args).status.success());
        start.elapsed()
    };
    let (mut docker_gpu, mut docker_plain) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        docker_gpu.push(docker_run(true));
        docker_plain.push(docker_run(false));
    }
    let (dg, dn) = (percentile(&docker_gpu, 0.5), percentile(&docker_plain, 0.5));

    // 2. The sampler: the worker idle, then sampling 8 GPUs once a second, each for WINDOW.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle_from, _) = cpu();
    tokio::time::sleep(WINDOW).await;
    let (idle_to, children_before) = cpu();
    let watch = h.ctx.sampler.watch(&devices).expect("sampling is on");
    let (busy_from, _) = cpu();
    tokio::time::sleep(WINDOW).await;
    let (busy_to, _) = cpu();
    let used = watch.finish();
    // The stand-in's process is reaped in the background once killed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, children_after) = cpu();
    let samples_seen = used.iter().map(|u| u.samples).min().unwrap_or(0);
    let idle = (idle_to - idle_from).as_secs_f64() / WINDOW.as_secs_f64() * 100.0;
    let busy = (busy_to - busy_from).as_secs_f64() / WINDOW.as_secs_f64() * 100.0;
    let cost = busy - idle;
    let stand_in = (children_after - children_before).as_secs_f64() / WINDOW.as_secs_f64() * 100.0;
    h.drain_and_stop().await;

    println!(
        "GPU jobs on the GPU engine (private dockerd, stand-in nvidia hook; {hooked} containers through it)"
    );
    println!(
        "GPU job start, hello with 1 GPU, p50 of {RUNS} (ref: the same job without GPUs)  {:.3} s  {:.3} s  {:.2}  <= 1.1",
        g.as_secs_f64(),
        n.as_secs_f64(),
        g.as_secs_f64() / n.as_secs_f64()
    );
    println!(
        "  docker run --rm, with --gpus and without, same engine, p50 of {RUNS}: {:.3} s and {:.3} s ({:+.0} ms the engine's and hook's own); raid's: {:+.0} ms",
        dg.as_secs_f64(),
        dn.as_secs_f64(),
        (dg.as_secs_f64() - dn.as_secs_f64()) * 1000.0,
        (g.as_secs_f64() - n.as_secs_f64()) * 1000.0
    );
    println!(
        "GPU sampler, 8 GPUs at 1/s, worker CPU (ref: the worker idle)  {busy:.2}%  {idle:.2}%  +{cost:.2}% of a core  <= +1%  ({samples_seen} samples per GPU in {} s; the stand-in nvidia-smi's own CPU {stand_in:.2}%)",
        WINDOW.as_secs()
    );
    assert!(
        samples_seen >= WINDOW.as_secs() as u32 - 2,
        "the sampler sampled: {used:?}"
    );
    rai_testkit::report(rai_testkit::Figure {
        name: "GPU job start, hello with 1 GPU on the GPU engine, p50 (ref: the same without GPUs)",
        value: format!("{:.3} s", g.as_secs_f64()),
        reference: format!("{:.3} s", n.as_secs_f64()),
        ratio: Some(g.as_secs_f64() / n.as_secs_f64()),
        target: "ratio <= 1.1",
        met: g.as_secs_f64() / n.as_secs_f64() <= 1.1,
    });
    rai_testkit::report(rai_testkit::Figure {
        name: "GPU sampler, 8 GPUs at 1/s: worker CPU (ref: the worker idle)",
        value: format!("{busy:.2}% of a core"),
        reference: format!("{idle:.2}%"),
        ratio: None,
        target: "<= +1% of a core",
        met: cost <= 1.0,
    });
}
