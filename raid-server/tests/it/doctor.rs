//! `raid doctor` as an admin runs it: the binary against the local stack.

use std::process::Command;

use rai_common::account::{Account, Registry, Role, encode_public_key, generate_signing_key};

fn config_file(dir: &std::path::Path, with_user: bool) -> std::path::PathBuf {
    config_file_trusting(dir, with_user, &[rai_testkit::jobs::gateway_public_key()])
}

fn config_file_trusting(
    dir: &std::path::Path,
    with_user: bool,
    gateway_keys: &[String],
) -> std::path::PathBuf {
    let events = format!("  redis_url: {}\n", rai_testkit::redis_url());
    config_file_with(dir, with_user, gateway_keys, &events)
}

/// A worker's config file, with `events` as its `events:` section's lines.
fn config_file_with(
    dir: &std::path::Path,
    with_user: bool,
    gateway_keys: &[String],
    events: &str,
) -> std::path::PathBuf {
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    let registry = dir.join("registry.yml");
    let users = if with_user {
        vec![Account {
            username: "jdoe".into(),
            email: String::new(),
            team: String::new(),
            role: Role::Student,
            public_key: encode_public_key(&generate_signing_key().verifying_key()),
            created: chrono::Utc::now(),
            revoked: None,
        }]
    } else {
        vec![]
    };
    std::fs::write(&registry, Registry { users }.to_yaml()).unwrap();
    let path = dir.join("raid.yml");
    std::fs::write(
        &path,
        format!(
            "events:\n{}queue:\n  name: {}\nstore:\n  path: {}\nraid:\n  gateway_keys: [{}]\n  images: [\"rai-test/*\"]\n  gpus: []\n  registry: {}\n  work_dir: {}\n",
            events,
            rai_testkit::unique("doctor"),
            store.display(),
            gateway_keys.join(", "),
            registry.display(),
            dir.join("jobs").display()
        ),
    )
    .unwrap();
    path
}

fn doctor(config: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_raid"))
        .args(["-c", config.to_str().unwrap(), "doctor"])
        .env("HOME", config.parent().unwrap())
        .env_remove("RAI_SECRET")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_healthy_worker_passes_every_check() {
    // As deployed: Redis over TLS only, with a client certificate, as deploy/redis's user raid.
    let dir = tempfile::tempdir().unwrap();
    let ca = rai_testkit::tls::TestCa::new(dir.path());
    let redis = rai_testkit::PrivateRedis::start_tls(&ca);
    let config = config_file_with(
        dir.path(),
        true,
        &[rai_testkit::jobs::gateway_public_key()],
        &redis.events_lines("raid"),
    );
    let (code, table) = doctor(&config);
    assert!(
        table.contains(&format!(
            "over TLS (CA {}, client certificate) as user raid",
            ca.cert.display()
        )),
        "{table}"
    );
    assert_eq!(code, 0, "{table}");
    for check in [
        "docker",
        "gpus",
        "container",
        "queue",
        "store",
        "redis",
        "registry",
        "gateways",
        "disk",
    ] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(check) && l.contains("pass")),
            "{check} in:\n{table}"
        );
    }
    assert!(table.contains("appendonly yes"), "{table}");
}

#[test]
fn redis_as_its_default_user_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (_, table) = doctor(&config_file(dir.path(), true));
    assert!(
        table.lines().any(|l| l.starts_with("redis")
            && l.contains("warn")
            && l.contains("in plain text as user default")
            && l.contains("give each part its own ACL user")),
        "{table}"
    );
}

#[test]
fn an_empty_registry_fails_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (code, table) = doctor(&config_file(dir.path(), false));
    assert_eq!(code, 1, "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("registry") && l.contains("FAIL") && l.contains("has no users")),
        "{table}"
    );
}

#[test]
fn a_worker_that_trusts_no_gateway_is_told_how_to_trust_one() {
    let dir = tempfile::tempdir().unwrap();
    let (code, table) = doctor(&config_file_trusting(dir.path(), true, &[]));
    assert_eq!(code, 1, "{table}");
    assert!(
        table.lines().any(|l| l.starts_with("gateways")
            && l.contains("FAIL")
            && l.contains("raid.gateway_keys")),
        "{table}"
    );
    let (code, table) = doctor(&config_file_trusting(
        dir.path(),
        true,
        &["not-a-key".into()],
    ));
    assert_eq!(code, 1, "{table}");
    assert!(table.contains("rai-keygen gateway-key"), "{table}");
}

/// The worker's config with `raid.gpus` naming one GPU, on `engine` (`None`: the machine's engine).
fn gpu_config(dir: &std::path::Path, engine: Option<&str>) -> std::path::PathBuf {
    let path = config_file(dir, true);
    let text = std::fs::read_to_string(&path).unwrap();
    let docker = engine.map_or_else(String::new, |e| format!("\n  docker: {e}"));
    std::fs::write(
        &path,
        text.replace(
            "  gpus: []",
            &format!("  gpus: [GPU-4f1c2a9e-7d3b-5e8a-9c1f-2b6d4e8a0c31]{docker}"),
        ),
    )
    .unwrap();
    path
}

#[test]
fn the_gpu_engine_check_finds_the_nvidia_driver_or_says_how_to_install_it() {
    let engine = rai_testkit::gpu_engine::GpuEngine::start();
    let dir = tempfile::tempdir().unwrap();
    let (_, table) = doctor(&gpu_config(dir.path(), Some(&engine.host())));
    let line = table
        .lines()
        .find(|l| l.starts_with("gpu engine"))
        .unwrap_or_else(|| panic!("no gpu engine check:\n{table}"));
    assert!(line.contains("pass"), "{table}");
    assert!(
        line.contains("nvidia device driver is present")
            && line.contains("GPU-4f1c2a9e-7d3b-5e8a-9c1f-2b6d4e8a0c31"),
        "{table}"
    );
    assert!(
        engine
            .hook_calls()
            .iter()
            .any(|c| c.visible == "GPU-4f1c2a9e-7d3b-5e8a-9c1f-2b6d4e8a0c31"),
        "the request went through the hook"
    );

    // `raid gpu-use` samples the GPUs as jobs' use is sampled (deploy/gpu/check.sh runs it on a real GPU).
    engine.set_samples(&[(0, "GPU-4f1c2a9e-7d3b-5e8a-9c1f-2b6d4e8a0c31", 64, 3000)]);
    let config = gpu_config(dir.path(), Some(&engine.host()));
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}  gpu:\n    nvidia_smi: {}\n",
            engine.nvidia_smi().display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_raid"))
        .args(["-c", config.to_str().unwrap(), "gpu-use", "--for", "3s"])
        .env("HOME", dir.path())
        .env_remove("RAI_SECRET")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        printed.starts_with(
            "GPU-4f1c2a9e-7d3b-5e8a-9c1f-2b6d4e8a0c31: 64% mean, 64% max, 3000 MiB peak"
        ),
        "{printed}"
    );

    // The machine's engine has no nvidia driver: GPU jobs would fail, and the admin is told what to install.
    let plain = tempfile::tempdir().unwrap();
    let (code, table) = doctor(&gpu_config(plain.path(), None));
    assert_ne!(code, 0, "{table}");
    let line = table
        .lines()
        .find(|l| l.starts_with("gpu engine"))
        .unwrap_or_else(|| panic!("no gpu engine check:\n{table}"));
    assert!(line.contains("FAIL") || line.contains("fail"), "{table}");
    assert!(
        line.contains("every GPU job would fail") && line.contains("NVIDIA Container Toolkit"),
        "{table}"
    );
    // Without GPUs there is nothing to check.
    let none = tempfile::tempdir().unwrap();
    let (_, table) = doctor(&config_file(none.path(), true));
    assert!(!table.contains("gpu engine"), "{table}");
}

#[test]
fn the_profiling_check_reads_the_drivers_setting_and_the_jobs_user() {
    let dir = tempfile::tempdir().unwrap();
    let params = dir.path().join("params");
    let config = gpu_config(dir.path(), None);
    let base = std::fs::read_to_string(&config).unwrap();
    // raid: is the file's last section.
    let with = |gpu: &str, user: &str| {
        std::fs::write(
            &config,
            format!(
                "{base}  gpu:\n    driver_params: {}\n    profiling: {gpu}\n  user: \"{user}\"\n",
                params.display()
            ),
        )
        .unwrap();
        let (_, table) = doctor(&config);
        table
            .lines()
            .find(|l| l.starts_with("profiling"))
            .unwrap_or_else(|| panic!("no profiling check:\n{table}"))
            .to_string()
    };
    // As NVIDIA's driver comes: counters for admins only.
    std::fs::write(&params, "EnableMSI: 1\nRestrictProfilingToAdminUsers: 1\n").unwrap();
    let line = with("driver", "1000:1000");
    assert!(line.contains("warn"), "{line}");
    assert!(
        line.contains("ERR_NVGPUCTRPERM") && line.contains("NVreg_RestrictProfilingToAdminUsers=0"),
        "{line}"
    );
    std::fs::write(&params, "RestrictProfilingToAdminUsers: 0\n").unwrap();
    let line = with("driver", "1000:1000");
    assert!(
        line.contains("pass") && line.contains("work in jobs"),
        "{line}"
    );
    std::fs::remove_file(&params).unwrap();
    let line = with("driver", "1000:1000");
    assert!(
        line.contains("warn") && line.contains("is the NVIDIA driver loaded"),
        "{line}"
    );
    let line = with("capability", "1000:1000");
    assert!(
        line.contains("FAIL") && line.contains("root only"),
        "{line}"
    );
    let line = with("off", "1000:1000");
    assert!(line.contains("pass") && line.contains("off"), "{line}");
}
