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
pub fn aws_config() -> crate::config::AwsConfig {
    crate::config::AwsConfig {
        endpoint_url: Some(aws_endpoint()),
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
        ..crate::Config::defaults().aws
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
    format!("{prefix}-{}", crate::job::JobId::new())
}

/// A redis-server of a test's own, on a free loopback port, for tests that kill connections or restart Redis
/// without disturbing other tests. Its data lives in a temporary directory with `appendonly yes`, so a restart keeps
/// it. Stopped when dropped.
pub struct PrivateRedis {
    pub port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
    extra: Vec<String>,
}

impl PrivateRedis {
    /// Starts one with extra `redis-server` arguments (for example `--aclfile PATH`).
    pub fn start_with(extra: &[&str]) -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let dir = std::env::temp_dir().join(unique("rai-redis"));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut r = PrivateRedis {
            port,
            dir,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        r.spawn();
        r
    }

    /// Starts one with default settings.
    pub fn start() -> PrivateRedis {
        Self::start_with(&[])
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = std::process::Command::new(redis_server())
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "redis-server on port {} exited at once ({status}); its arguments: {:?}",
                    self.port, self.extra
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not come up", self.port);
    }

    /// Stops the server (its data stays) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM: Redis flushes its append-only file and exits cleanly.
            let _ = std::process::Command::new("kill")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    /// Stops and starts again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A moto server of a test's own (S3, SQS, STS), for tests that pause it (SIGSTOP) without stalling every other
/// test. Runs `deploy/local/moto_server.py` with the Python of moto's virtualenv (`RAI_TEST_MOTO_PYTHON`). Stopped
/// when dropped.
pub struct PrivateMoto {
    pub port: u16,
    child: std::process::Child,
}

impl PrivateMoto {
    pub fn start() -> PrivateMoto {
        let python = required("RAI_TEST_MOTO_PYTHON");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/local/moto_server.py"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = std::process::Command::new(&python)
            .args([script, "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto with {python}: {e}"));
        // Owned from here on: a panic below still stops the process (Drop).
        let mut moto = PrivateMoto { port, child };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return moto;
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto on port {port} exited at once ({status})");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("moto on port {port} did not come up within 60 s");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process id, to pause it with SIGSTOP and resume it with SIGCONT.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for PrivateMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One figure of a benchmark, for the one-table report of `deploy/local/report.sh`.
pub struct Figure<'a> {
    /// What was measured ("hello end to end, p50").
    pub name: &'a str,
    /// The figure, with its unit.
    pub value: String,
    /// The same thing done without rai (or the bound it is held to), measured in the same run; empty if none.
    pub reference: String,
    /// value / reference, where both are numbers.
    pub ratio: Option<f64>,
    /// The target, as the issue states it ("ratio <= 1.5").
    pub target: &'a str,
    pub met: bool,
}

/// Appends `figure` to the file named by `RAI_REPORT_FILE` (tab-separated), when the report runs the benchmark;
/// a benchmark run by hand prints its own table only.
pub fn report(figure: Figure<'_>) {
    use std::io::Write;
    let Ok(path) = std::env::var("RAI_REPORT_FILE") else {
        return;
    };
    let clean = |s: &str| s.replace(['\t', '\n'], " ");
    let line = format!(
        "{}\t{}\t{}\t{}\t{}\t{}\n",
        clean(figure.name),
        clean(&figure.value),
        clean(&figure.reference),
        figure.ratio.map(|r| format!("{r:.2}")).unwrap_or_default(),
        clean(figure.target),
        if figure.met { "yes" } else { "NO" }
    );
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("cannot add to the report file {path}: {e}");
    }
}

/// A tar header with any name and link target, even ones the `tar` crate refuses to write (`../x`, `/etc/x`): for
/// tests that build hostile archives.
#[cfg(feature = "backends")]
pub fn raw_tar_header(
    name: &[u8],
    kind: tar::EntryType,
    size: u64,
    mode: u32,
    link: Option<&[u8]>,
) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    if let Some(link) = link {
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_cksum();
    h
}
