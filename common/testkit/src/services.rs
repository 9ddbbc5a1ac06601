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
    tls: Option<RedisTls>,
    /// The address it listens on (127.0.0.1 unless it runs in a host of a [`crate::hosts::Lan`]).
    bind: String,
    /// The network namespace it runs in, if any.
    netns: Option<String>,
}

/// What a TLS-only Redis is reached with: the course CA, a client certificate (mutual TLS), and the passwords of
/// its ACL users.
struct RedisTls {
    ca: std::path::PathBuf,
    client: crate::tls::Issued,
    passwords: std::collections::HashMap<&'static str, String>,
}

impl PrivateRedis {
    /// Starts one with extra `redis-server` arguments (for example `--aclfile PATH`).
    pub fn start_with(extra: &[&str]) -> PrivateRedis {
        let port = crate::env::restartable_port();
        let dir = std::env::temp_dir().join(unique("rai-redis"));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut r = PrivateRedis {
            port,
            dir,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            tls: None,
            bind: "127.0.0.1".into(),
            netns: None,
        };
        r.spawn();
        r
    }

    /// Starts one as a course deploys it: TLS only (no plain port), client certificates required (mutual TLS), the
    /// ACL users of `deploy/redis/users.acl` (the default user off; `raid` and `gateway`), plus an `admin` user
    /// for the test itself. Its certificates come from `ca`.
    pub fn start_tls(ca: &crate::tls::TestCa) -> PrivateRedis {
        let port = crate::env::restartable_port();
        Self::start_tls_at(ca, port, "127.0.0.1", None)
    }

    /// [`PrivateRedis::start_tls`] on `host` of a [`crate::hosts::Lan`], port 6380, as a Redis machine of a course.
    pub fn start_tls_on(ca: &crate::tls::TestCa, host: &crate::hosts::Host) -> PrivateRedis {
        Self::start_tls_at(ca, 6380, &host.addr.to_string(), Some(host.netns.clone()))
    }

    fn start_tls_at(
        ca: &crate::tls::TestCa,
        port: u16,
        bind: &str,
        netns: Option<String>,
    ) -> PrivateRedis {
        let dir = std::env::temp_dir().join(unique("rai-redis"));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let server = ca.issue(&dir, "redis", &[bind, "localhost"]);
        let client = ca.issue(&dir, "redis-client", &["rai-test-client"]);
        let password = || unique("pw").replace('-', "");
        let passwords = std::collections::HashMap::from([
            ("raid", password()),
            ("gateway", password()),
            ("admin", password()),
        ]);
        let make_acl = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/redis/make-acl.sh"
        );
        let acl = std::process::Command::new(make_acl)
            .args([&passwords["raid"], &passwords["gateway"]])
            .output()
            .expect("deploy/redis/make-acl.sh runs");
        assert!(
            acl.status.success(),
            "{}",
            String::from_utf8_lossy(&acl.stderr)
        );
        let mut users = String::from_utf8(acl.stdout).unwrap();
        users.push_str(&format!(
            "user admin on >{} ~* &* +@all\n",
            passwords["admin"]
        ));
        let acl_file = dir.join("users.acl");
        std::fs::write(&acl_file, users).unwrap();
        let path = |p: &std::path::Path| p.display().to_string();
        let extra = vec![
            "--tls-cert-file".to_string(),
            path(&server.cert),
            "--tls-key-file".into(),
            path(&server.key),
            "--tls-ca-cert-file".into(),
            path(&ca.cert),
            "--tls-auth-clients".into(),
            "yes".into(),
            "--aclfile".into(),
            path(&acl_file),
        ];
        let mut r = PrivateRedis {
            port,
            dir,
            child: None,
            extra,
            tls: Some(RedisTls {
                ca: ca.cert.clone(),
                client,
                passwords,
            }),
            bind: bind.to_string(),
            netns,
        };
        r.spawn();
        r
    }

    /// How `user` (`raid`, `gateway` or `admin`) reaches this Redis: its URL with the password and, over TLS, the
    /// CA and client certificate. A plain instance has only its default user.
    pub fn target_for(&self, user: &str) -> rai_backends::redis_link::RedisTarget {
        match &self.tls {
            Some(tls) => rai_backends::redis_link::RedisTarget::new(
                &format!(
                    "rediss://{user}:{}@{}:{}",
                    tls.passwords[user], self.bind, self.port
                ),
                Some(&tls.ca),
                Some(&tls.client.cert),
                Some(&tls.client.key),
            ),
            None => rai_backends::redis_link::RedisTarget::from(self.url().as_str()),
        }
    }

    /// How the test itself reaches this Redis (as `admin` over TLS).
    pub fn target(&self) -> rai_backends::redis_link::RedisTarget {
        self.target_for("admin")
    }

    /// A connection of the test's own (as [`PrivateRedis::target`]), to read or change what the system keeps.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        self.target()
            .client()
            .expect("the test's Redis target is valid")
            .get_multiplexed_async_connection()
            .await
            .expect("the test's Redis accepts a connection")
    }

    /// A config's `events:` lines for `user` (indented for the `events:` section: `redis_url`, and the TLS files).
    pub fn events_lines(&self, user: &str) -> String {
        let target = self.target_for(user);
        match &self.tls {
            Some(tls) => format!(
                "  redis_url: {}\n  ca_file: {}\n  client_cert: {}\n  client_key: {}\n",
                target.url(),
                tls.ca.display(),
                tls.client.cert.display(),
                tls.client.key.display()
            ),
            None => format!("  redis_url: {}\n", target.url()),
        }
    }

    /// Whether this one speaks only TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The CA certificate, client certificate and client key files of a TLS one.
    pub fn tls_files(
        &self,
    ) -> Option<(std::path::PathBuf, std::path::PathBuf, std::path::PathBuf)> {
        self.tls
            .as_ref()
            .map(|t| (t.ca.clone(), t.client.cert.clone(), t.client.key.clone()))
    }

    /// Starts one with default settings.
    pub fn start() -> PrivateRedis {
        Self::start_with(&[])
    }

    /// The URL the test itself uses (over TLS: the `admin` user's, which also needs [`PrivateRedis::target`]'s
    /// certificates).
    pub fn url(&self) -> String {
        match &self.tls {
            Some(tls) => format!(
                "rediss://admin:{}@{}:{}",
                tls.passwords["admin"], self.bind, self.port
            ),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let ports: &[&str] = if self.tls.is_some() {
            &["--port", "0", "--tls-port", &port]
        } else {
            &["--port", &port]
        };
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = std::process::Command::new("ip");
                c.args(["netns", "exec", ns]).arg(redis_server());
                c
            }
            None => std::process::Command::new(redis_server()),
        };
        let child = command
            .args(ports)
            .args(["--bind", &self.bind, "--save", "", "--appendonly", "yes"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            let up = match &self.netns {
                Some(ns) => std::process::Command::new("ip")
                    .args(["netns", "exec", ns, "bash", "-c"])
                    .arg(format!("echo > /dev/tcp/{}/{}", self.bind, self.port))
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()),
                None => std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
            };
            if up {
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
        let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        panic!(
            "redis-server on {}:{} did not come up; its log ends:\n{}",
            self.bind,
            self.port,
            log.lines().rev().take(8).collect::<Vec<_>>().join("\n")
        );
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
