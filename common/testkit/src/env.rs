//! What the test suites need from `deploy/local/test.sh`, read in one place.
//!
//! Tests that use Redis, moto or Docker take their addresses from the environment the script sets. When a variable
//! is missing the test fails with a message that says how to run it; it never skips, so a CI machine that lost a
//! service fails loudly instead of passing on nothing.

/// The value of a variable `deploy/local/test.sh` sets, or a panic that says how to get it.
pub fn required(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set: this test needs the local services. Run the tests with deploy/local/test.sh, \
             or start them with `eval \"$(deploy/local/stack.sh up)\"` first"
        ),
    }
}

/// `redis://127.0.0.1:PORT` of the shared test Redis.
pub fn redis_url() -> String {
    required("RAI_TEST_REDIS_URL")
}

/// `http://127.0.0.1:PORT` of moto's server.
pub fn aws_endpoint() -> String {
    required("RAI_TEST_AWS_ENDPOINT")
}

/// A configuration's `aws` section pointed at moto with dummy credentials.
pub fn aws_config() -> rai_common::config::AwsConfig {
    rai_common::config::AwsConfig {
        endpoint_url: Some(aws_endpoint()),
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
        ..rai_common::Config::defaults().aws
    }
}

/// The local test image (busybox-static).
pub fn image() -> String {
    required("RAI_TEST_IMAGE")
}

/// The redis-server binary, for tests that start (and restart) a Redis of their own.
pub fn redis_server() -> String {
    required("RAI_TEST_REDIS_SERVER")
}

/// A name no other test (or test run) uses: for queues, buckets, keys and containers.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", rai_common::JobId::new())
}

/// A free loopback port for a server the kit may stop and start again on the same port (Redis, a gateway).
///
/// Not from the kernel's ephemeral range, where `bind(0)` would pick: while such a server is down, a client retrying
/// its connection may be given that very port as its source port and connect to itself (TCP simultaneous open),
/// and the restarted server then cannot bind. The chaos run's Redis restarts met this (2026-12-07). Ports below the
/// range are never source ports.
pub fn restartable_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (
        ephemeral_low.saturating_sub(20_000).max(1024),
        ephemeral_low,
    );
    for _ in 0..1000 {
        // A fresh RandomState is keyed at random, so the hash of nothing is a random number.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let port = low + (random % u64::from(high - low)) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {low}..{high}");
}

/// `http://127.0.0.1:PORT` of chromedriver (the dashboard's browser tests).
pub fn webdriver() -> String {
    required("RAI_TEST_WEBDRIVER")
}

/// A Python with aiosmtpd, for tests that start an SMTP server of their own.
pub fn smtp_python() -> String {
    required("RAI_TEST_SMTP_PYTHON")
}

/// The minimal Debian image `deploy/local/test.sh` makes with debootstrap (systemd, coreutils, bash).
pub fn debian_image() -> String {
    required("RAI_TEST_DEBIAN_IMAGE")
}

/// The folder holding the release packages and downloads `deploy/package.sh` made for this commit.
pub fn dist_dir() -> std::path::PathBuf {
    required("RAI_TEST_DIST").into()
}
