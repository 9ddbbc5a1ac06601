//! GPU jobs through a real Docker engine without a GPU (issue 27): a private dockerd whose `nvidia` device driver
//! runs a stand-in hook ([`rai_testkit::gpu_engine`]), so every device request raid makes goes through the engine,
//! runc and the OCI hook protocol, and the hook's log says what each container was given.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use crate::harness::Harness;
use rai_common::event::{EventBody, JobStatus};
use rai_common::job::JobId;
use rai_testkit::gpu_engine::{GpuEngine, HookCall};
use rai_testkit::jobs::{end, text};

/// Four devices as `nvidia-smi -L` names them: three whole GPUs and one MIG instance.
const DEVICES: [&str; 4] = [
    "GPU-4f1c2a9e-7d3b-5e8a-9c1f-2b6d4e8a0c31",
    "GPU-9b2e7c41-0a5d-4f6e-8b3c-7d1e5f9a2c64",
    "GPU-c3d8e5f2-6b1a-4c7d-9e2f-8a4b6c0d1e97",
    "MIG-5e7a9c1b-3d2f-5a8e-b4c6-1f0d2e3c4b5a",
];

/// What one job's command reported: the devices it saw and when it ran (seconds since boot).
#[derive(Debug)]
struct Seen {
    job: JobId,
    asked: u32,
    visible: String,
    smi: Vec<String>,
    from: f64,
    to: f64,
    running_line: String,
}

/// The command every job runs: what it sees, from inside, and its own start and end on the clock the hook uses.
/// (The driver's tools go to /usr/bin, as the real hook puts them; the test image's PATH is /bin.)
fn probe(seconds: u32) -> String {
    format!(
        "echo \"visible=$NVIDIA_VISIBLE_DEVICES\"; (PATH=/bin:/usr/bin nvidia-smi -L 2>/dev/null || true) | sed 's/^/smi=/'; \
         echo \"from=$(cut -d' ' -f1 /proc/uptime)\"; sleep {seconds}; echo \"to=$(cut -d' ' -f1 /proc/uptime)\""
    )
}

fn project(image: &str, gpus: u32, seconds: u32) -> tempfile::TempDir {
    rai_testkit::stack::gpu_project(image, gpus, &[&probe(seconds)])
}

fn field<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    out.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix('='))
        .collect()
}

/// Twelve one-GPU, two two-GPU and three no-GPU jobs at once on a worker with four devices and four slots, jobs
/// made ready ahead; one image says `NVIDIA_VISIBLE_DEVICES=all`. The first job runs longest, so a job made ready
/// behind it guesses its GPU and gets another's: that container is made again.
#[tokio::test(flavor = "multi_thread")]
async fn gpu_jobs_on_a_real_engine_see_exactly_their_own_devices() {
    let engine = tokio::task::spawn_blocking(GpuEngine::start).await.unwrap();
    // An image whose ENV would show every GPU, as CUDA images' do.
    let all = "rai-test/busybox-gpu-all:latest";
    let made = engine.docker(&["create", &rai_testkit::image(), "true"]);
    let made = String::from_utf8_lossy(&made.stdout).trim().to_string();
    let committed = engine.docker(&[
        "commit",
        "--change",
        "ENV NVIDIA_VISIBLE_DEVICES=all",
        &made,
        all,
    ]);
    assert!(committed.status.success(), "{committed:?}");
    let _ = engine.docker(&["rm", &made]);

    let host = engine.host();
    let h = Harness::start(|c| {
        c.raid.docker = Some(host);
        c.raid.gpus = Some(DEVICES.iter().map(|d| d.to_string()).collect());
        c.raid.concurrency = Some(4);
        c.raid.prepare_next = true;
    })
    .await;

    // (GPUs, seconds, image): the first runs longest; one image says NVIDIA_VISIBLE_DEVICES=all.
    let image = rai_testkit::image();
    let mut plan: Vec<(u32, u32, &str)> = vec![(1, 5, &image)];
    plan.extend((0..10).map(|_| (1, 1, image.as_str())));
    plan.push((1, 1, all));
    plan.extend([(2, 1, image.as_str()), (2, 1, image.as_str())]);
    plan.extend((0..3).map(|_| (0, 1, image.as_str())));
    let mut jobs = Vec::new();
    let mut dirs = Vec::new();
    for (gpus, seconds, image) in &plan {
        let dir = project(image, *gpus, *seconds);
        jobs.push((h.submit_dir(dir.path(), |_| {}).await, *gpus, *image == all));
        dirs.push(dir);
    }

    let mut seen = Vec::new();
    for (job, asked, _) in &jobs {
        let events = h.events(*job, Duration::from_secs(180)).await;
        let out = text(&events, "stdout");
        assert_eq!(end(&events).0, "succeeded", "job {job}: {events:#?}");
        let running_line = events
            .iter()
            .find_map(|e| match &e.body {
                EventBody::Status {
                    status: JobStatus::Running,
                    detail,
                    ..
                } => Some(detail.clone().unwrap_or_default()),
                _ => None,
            })
            .expect("a running status");
        seen.push(Seen {
            job: *job,
            asked: *asked,
            visible: field(&out, "visible").concat(),
            smi: field(&out, "smi").iter().map(|s| s.to_string()).collect(),
            from: field(&out, "from").concat().parse().unwrap(),
            to: field(&out, "to").concat().parse().unwrap(),
            running_line,
        });
    }
    let calls = engine.hook_calls();
    let by_job: HashMap<String, Vec<&HookCall>> = calls.iter().fold(HashMap::new(), |mut m, c| {
        m.entry(c.job.clone()).or_default().push(c);
        m
    });

    let mut remade = 0;
    let mut used = BTreeSet::new();
    for s in &seen {
        let job = s.job.to_string();
        if s.asked == 0 {
            assert_eq!(s.visible, "void", "a job without GPUs sees none: {s:?}");
            assert!(
                s.smi.is_empty(),
                "no driver tools in a no-GPU container: {s:?}"
            );
            assert!(
                !by_job.contains_key(&job),
                "no device request for a no-GPU job"
            );
            assert_eq!(s.running_line, "", "{s:?}");
            continue;
        }
        let ids: Vec<&str> = s.visible.split(',').collect();
        assert_eq!(
            ids.len(),
            s.asked as usize,
            "exactly the GPUs asked for: {s:?}"
        );
        assert!(ids.iter().all(|id| DEVICES.contains(id)), "{s:?}");
        used.extend(ids.iter().map(|id| id.to_string()));
        // The device request reached the engine and the hook: the last container made for the job is the one
        // its commands ran in, and it was given exactly these devices, with compute and utility only.
        let made = by_job
            .get(&job)
            .unwrap_or_else(|| panic!("no hook call for {s:?}"));
        let last = made.last().unwrap();
        assert_eq!(last.visible, s.visible, "{s:?} {made:?}");
        assert_eq!(last.capabilities, "compute,utility");
        // What the driver's tool in the container lists is what it was given.
        assert_eq!(s.smi.len(), ids.len(), "{s:?}");
        for id in &ids {
            assert!(s.smi.iter().any(|l| l.contains(id)), "{s:?}");
        }
        // The student's line names them.
        for id in &ids {
            assert!(s.running_line.contains(id), "{s:?}");
        }
        if made.len() > 1 {
            assert!(
                made[..made.len() - 1]
                    .iter()
                    .all(|c| c.visible != s.visible),
                "remade only for other GPUs: {made:?}"
            );
            remade += 1;
        }
    }
    assert_eq!(
        used.len(),
        4,
        "every device, the MIG instance too, was used: {used:?}"
    );
    assert!(
        remade >= 1,
        "a job made ready behind the long one guessed its GPU and got another's: {calls:#?}"
    );
    let all_job = jobs.iter().find(|(_, _, all)| *all).unwrap().0;
    let all_seen = seen.iter().find(|s| s.job == all_job).unwrap();
    assert_ne!(
        all_seen.visible, "all",
        "the image's ENV does not widen what a job sees"
    );

    // No device was used by two jobs' commands at once. A container made ready ahead may hold a running job's
    // devices while its first command waits at the gate: its commands' own times tell the two apart.
    let mut held_at_gate = 0;
    for (i, a) in seen.iter().enumerate() {
        for b in &seen[i + 1..] {
            let shared = a
                .visible
                .split(',')
                .any(|id| id != "void" && b.visible.split(',').any(|o| o == id));
            if shared {
                assert!(
                    a.to <= b.from || b.to <= a.from,
                    "jobs {} and {} ran on the same device at once: {a:?} {b:?}",
                    a.job,
                    b.job
                );
            }
        }
        for call in by_job.get(&a.job.to_string()).into_iter().flatten() {
            let waited = seen.iter().any(|b| {
                b.job != a.job
                    && b.from <= call.at
                    && call.at <= b.to
                    && call
                        .visible
                        .split(',')
                        .any(|id| b.visible.split(',').any(|o| o == id))
            });
            if waited {
                // Made while another job's commands used the device: only as a ready job, its commands later.
                assert!(call.at < a.from, "{call:?} {a:?}");
                held_at_gate += 1;
            }
        }
    }
    eprintln!(
        "{} containers through the hook, {remade} remade, {held_at_gate} made ready holding a running job's device",
        calls.len()
    );
    h.drain_and_stop().await;
}

/// `raid.gpu.profiling`: with `capability`, a GPU job's container (and only a GPU job's) gets CAP_SYS_ADMIN; with
/// `off`, a job whose profiler is refused the counters is told, once, why and where to ask.
#[tokio::test(flavor = "multi_thread")]
async fn profiling_by_capability_and_a_refused_profiler_explained() {
    let engine = tokio::task::spawn_blocking(GpuEngine::start).await.unwrap();
    let host = engine.host();
    let image = rai_testkit::image();
    let h = Harness::start(|c| {
        c.raid.docker = Some(host.clone());
        c.raid.gpus = Some(vec![DEVICES[0].to_string()]);
        c.raid.gpu.profiling = rai_common::config::GpuProfiling::Capability;
        // Docker gives added capabilities to root only (raid doctor says so for any other user).
        c.raid.user = "0:0".into();
    })
    .await;
    let caps = "grep CapEff /proc/self/status";
    let mut eff = Vec::new();
    for gpus in [1, 0] {
        let dir = tempfile::tempdir().unwrap();
        let gpu = if gpus > 0 {
            "  gpu: { count: 1 }\n"
        } else {
            ""
        };
        std::fs::write(
            dir.path().join("rai_build.yml"),
            format!("rai:\n  version: 0.2\n  image: {image}\nresources:\n{gpu}  limits: {{ time: 1m }}\ncommands:\n  build:\n    - {caps}\n"),
        )
        .unwrap();
        let job = h.submit_dir(dir.path(), |_| {}).await;
        let events = h.events(job, Duration::from_secs(60)).await;
        assert_eq!(end(&events).0, "succeeded", "{events:#?}");
        let out = text(&events, "stdout");
        let hex = out.split_whitespace().nth(1).unwrap().to_string();
        eff.push(u64::from_str_radix(&hex, 16).unwrap());
    }
    const SYS_ADMIN: u64 = 1 << 21;
    assert_ne!(
        eff[0] & SYS_ADMIN,
        0,
        "the GPU job has CAP_SYS_ADMIN: {eff:x?}"
    );
    assert_eq!(
        eff[1] & SYS_ADMIN,
        0,
        "a job without GPUs does not: {eff:x?}"
    );
    h.drain_and_stop().await;

    let off = Harness::start(|c| {
        c.raid.docker = Some(host);
        c.raid.gpus = Some(vec![DEVICES[0].to_string()]);
        c.raid.gpu.profiling = rai_common::config::GpuProfiling::Off;
    })
    .await;
    // What nsys and ncu print when the driver refuses them, twice.
    let refused = "echo '==PROF== ERR_NVGPUCTRPERM - The user does not have permission to access NVIDIA GPU Performance Counters on the target device 0.' >&2";
    let dir = rai_testkit::stack::gpu_project(&image, 1, &[refused, refused]);
    let job = off.submit_dir(dir.path(), |_| {}).await;
    let events = off.events(job, Duration::from_secs(60)).await;
    let told: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::System { data } if data.contains("performance counters") => {
                Some(data.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(told.len(), 1, "told once: {events:#?}");
    assert!(
        told[0].starts_with("✱ ")
            && told[0].contains("profiling is off")
            && told[0].contains("course staff"),
        "{told:?}"
    );
    // After the line that caused it.
    let at = |needle: &str| {
        events
            .iter()
            .position(|e| match &e.body {
                EventBody::Stderr { data } | EventBody::System { data } => data.contains(needle),
                _ => false,
            })
            .unwrap()
    };
    assert!(at("==PROF==") < at("profiling is off"));
    off.drain_and_stop().await;
}

/// Each job's GPU use, sampled while its commands run (a stand-in `nvidia-smi` reports known figures): kept in the
/// job's state and record, shown per GPU in `/metrics`; an idle worker samples nothing, and stops when the last GPU
/// job ends.
#[tokio::test(flavor = "multi_thread")]
async fn a_jobs_gpu_use_is_sampled_and_kept() {
    let engine = tokio::task::spawn_blocking(GpuEngine::start).await.unwrap();
    engine.set_samples(&[(0, DEVICES[0], 90, 2048), (1, DEVICES[1], 5, 100)]);
    let (host, smi) = (engine.host(), engine.nvidia_smi());
    let h = Harness::start(|c| {
        c.raid.docker = Some(host);
        c.raid.gpus = Some(vec![DEVICES[0].to_string(), DEVICES[1].to_string()]);
        c.raid.gpu.nvidia_smi = smi;
        c.raid.gpu.sample_every = rai_common::units::Span(Duration::from_millis(200));
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(engine.sampler_starts(), 0, "an idle worker samples nothing");

    let image = rai_testkit::image();
    let mut jobs = Vec::new();
    for gpus in [1, 0] {
        let dir = project(&image, gpus, 2);
        jobs.push(h.submit_dir(dir.path(), |_| {}).await);
    }
    for job in &jobs {
        let events = h.events(*job, Duration::from_secs(60)).await;
        assert_eq!(end(&events).0, "succeeded", "{events:#?}");
    }
    let state = h.ctx.bus.state(&jobs[0]).await.unwrap().unwrap();
    let device = state.gpus.as_ref().expect("the job's GPUs in its state")[0].clone();
    let used = state.gpu_use.expect("the job's GPU use in its state");
    assert_eq!(used.len(), 1, "{used:?}");
    let (util, memory) = if device == DEVICES[0] {
        (90.0, 2048)
    } else {
        (5.0, 100)
    };
    assert_eq!(used[0].device, device);
    assert_eq!(
        (used[0].util_mean, used[0].util_max, used[0].memory_peak_mib),
        (util, util, memory),
        "{used:?}"
    );
    assert!(
        used[0].samples >= 3,
        "sampled every 200 ms for 2 s: {used:?}"
    );
    // The record (rai history --json, the dashboard) keeps the same.
    let key = rai_common::objects::record_key(&h.user, &jobs[0]);
    let record: rai_common::record::JobRecord =
        serde_json::from_slice(&h.ctx.store.get_bytes(&key).await.unwrap()).unwrap();
    assert_eq!(record.gpus, vec![device.clone()]);
    assert_eq!(record.gpu_use, used);
    let none = h.ctx.bus.state(&jobs[1]).await.unwrap().unwrap();
    assert!(none.gpu_use.is_none() && none.gpus.is_none(), "{none:?}");
    // Per GPU in /metrics, by index, no user or job.
    let text = raid_metrics::metrics().render(&[], None).await;
    assert!(
        text.contains("rai_gpu_utilization_percent{gpu=\"0\"} 90"),
        "{text}"
    );
    assert!(
        text.contains("rai_gpu_memory_used_bytes{gpu=\"1\"} 104857600"),
        "{text}"
    );
    // The sampling process went with the last GPU job.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while engine.sampler_running() {
        assert!(
            std::time::Instant::now() < deadline,
            "the sampler still runs with no GPU job"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(engine.sampler_starts(), 1);
    h.drain_and_stop().await;
}
