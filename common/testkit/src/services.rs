//! Services of a test's own: a Redis it may restart and a moto it may pause, without disturbing other tests that
//! share the stack's services.

use crate::env::{redis_server, required, unique};

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
            "/../../deploy/local/moto_server.py"
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
