//! The shipped deploy files fit the code: the example worker config loads against the schema, and the systemd
//! unit runs raid the way the docs say.

use rai_common::Config;
use rai_common::config::{ConfigSources, QueueBackend, StoreBackend};

#[test]
fn the_example_worker_config_is_valid() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/raid.example.yml"
    ))
    .unwrap();
    // The example's encrypted values are placeholders; put plain ones in their place.
    let text: String = text
        .lines()
        .map(|l| match l.split_once("enc:v1:REPLACE") {
            Some((head, _)) => format!("{head}placeholder"),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raid.yml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&ConfigSources {
        explicit: Some(path),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        (config.queue.backend, config.store.backend),
        (QueueBackend::Sqs, StoreBackend::S3)
    );
    assert_eq!(config.raid.queues, ["rai-gpu"]);
}

#[test]
fn the_systemd_unit_notifies_drains_and_keeps_the_secret_off_the_command_line() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/systemd/raid.service"
    ))
    .unwrap();
    for line in [
        "Type=notify",
        "EnvironmentFile=/etc/rai/raid.env",
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "WatchdogSec=",
    ] {
        assert!(unit.lines().any(|l| l.starts_with(line)), "{line}");
    }
    assert!(
        !unit.contains(" -s "),
        "the secret must not be on the command line"
    );
}

#[test]
fn the_example_gateway_config_is_valid() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/gateway.example.yml"
    ))
    .unwrap()
    .replace("enc:v1:REPLACE-", "")
    .replace("enc:v1:REPLACE", "placeholder");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&ConfigSources {
        explicit: Some(path),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(config.gateway.listen.as_deref(), Some("0.0.0.0:443"));
    assert!(config.gateway.tls_cert.is_some() && config.gateway.tls_key.is_some());
    assert_eq!(config.gateway.queues, ["rai-gpu"]);
}

#[test]
fn the_gateway_unit_is_unprivileged_and_keeps_the_secret_off_the_command_line() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/systemd/raid-gateway.service"
    ))
    .unwrap();
    for line in [
        "Type=notify",
        "EnvironmentFile=/etc/rai/raid.env",
        "ExecStart=/usr/bin/raid gateway ",
        "User=rai-gateway",
        "NoNewPrivileges=true",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "MemoryMax=",
    ] {
        assert!(unit.lines().any(|l| l.starts_with(line)), "{line}");
    }
    assert!(
        !unit.contains(" -s "),
        "the secret must not be on the command line"
    );
    assert!(!unit.contains("docker"), "the gateway needs no Docker");
}
