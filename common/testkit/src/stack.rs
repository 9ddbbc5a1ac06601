//! A whole rai system for end-to-end tests: a private Redis, `raid` worker processes, students with their own
//! home directories (profile and config), and the `rai` binary run as a student runs it.
//!
//! Two stacks: [`Kind::Local`] (Redis Streams queue, fs store: the embedded setup) and [`Kind::Aws`] (SQS FIFO
//! queue, S3 bucket and STS student credentials, all on the test moto). Both use a Redis of the stack's own, so a
//! test may restart it without disturbing any other test.
//!
//! Over 450 lines: one type, a whole rai system: its services, workers, gateways and students.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::tls::{Issued, TestCa};
use crate::{PrivateMoto, PrivateRedis};
use rai_common::account::{
    Account, Profile, Registry, Role, encode_public_key, generate_signing_key,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Redis Streams queue and fs store.
    Local,
    /// SQS queue, S3 store and STS, on moto.
    Aws,
}

/// How a stack is set up.
pub struct Options {
    pub workers: usize,
    pub users: usize,
    /// Jobs each worker runs at once.
    pub concurrency: usize,
    /// The queue lease (a killed worker's job comes back after about this long).
    pub lease: &'static str,
    /// Students whose accounts are revoked in the registry.
    pub revoked: &'static [usize],
    /// Users who are course staff (instructors) rather than students.
    pub staff: &'static [usize],
    /// Each user's team in the registry and their profile ("" for none); users past the list are in "team".
    pub teams: &'static [&'static str],
    /// Extra lines for the `raid:` section of each worker's config (indented by two spaces).
    pub raid_extra: &'static str,
    /// Extra lines for the `client:` section of the students' config (indented by two spaces).
    pub client_extra: &'static str,
    /// A moto of the stack's own (for pausing it), instead of the shared test moto.
    pub private_moto: bool,
    /// `raid gateway` processes; students use the first, with the others as fallbacks.
    pub gateways: usize,
    /// Extra lines for the `gateway:` section of each gateway's config (indented by two spaces).
    pub gateway_extra: &'static str,
    /// Extra lines for the `events:` section of every server's config (indented by two spaces).
    pub events_extra: &'static str,
    /// Gateways serve plain HTTP on loopback instead of HTTPS: only where plain HTTP is itself what is tested.
    pub plain_gateway: bool,
    /// Redis speaks plain text with no users instead of TLS with deploy/redis's ACL users: only where plain Redis
    /// is itself what is measured (a benchmark's reference).
    pub plain_redis: bool,
    /// The workers run on a GPU engine ([`crate::gpu_engine::GpuEngine`]) with these GPUs; `None`: on the
    /// machine's engine, with none.
    pub gpus: Option<WorkerGpus>,
    /// The fs store on a disk of its own of this many bytes ([`crate::disk`]; root only), as a store shared by
    /// mount is on another host's disk, not beside the workers' job folders: for benchmarks that time the store.
    pub store_disk: Option<u64>,
}

/// Workers on a GPU engine: its Docker host, the GPUs they hand out and the `nvidia-smi` that samples them.
#[derive(Clone, Debug)]
pub struct WorkerGpus {
    pub docker: String,
    pub devices: Vec<String>,
    pub nvidia_smi: PathBuf,
}

impl WorkerGpus {
    /// `devices` on `engine`, sampled by its stand-in `nvidia-smi`.
    pub fn on(engine: &crate::gpu_engine::GpuEngine, devices: &[&str]) -> WorkerGpus {
        WorkerGpus {
            docker: engine.host(),
            devices: devices.iter().map(|d| d.to_string()).collect(),
            nvidia_smi: engine.nvidia_smi(),
        }
    }

    /// The worker config's lines for them (in `raid:`).
    fn lines(&self) -> String {
        format!(
            "  gpus: [{}]\n  docker: {}\n  gpu:\n    nvidia_smi: {}\n",
            self.devices.join(", "),
            self.docker,
            self.nvidia_smi.display()
        )
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            workers: 1,
            users: 1,
            concurrency: 2,
            lease: "60s",
            revoked: &[],
            staff: &[],
            teams: &[],
            raid_extra: "",
            client_extra: "",
            private_moto: false,
            gateways: 1,
            gateway_extra: "",
            events_extra: "",
            plain_gateway: false,
            plain_redis: false,
            gpus: None,
            store_disk: None,
        }
    }
}

/// A course file whose assignments are given as YAML under `assignments:` (each `due` written as `{due}`, an hour
/// from now), in a folder that lives as long as the returned value; and the `gateway:` line that names it.
pub fn course_file(assignments: &str) -> (tempfile::TempDir, &'static str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("course.yml");
    let due = (chrono::Utc::now() + chrono::Duration::hours(1)).format("%Y-%m-%d %H:%M:%S");
    std::fs::write(
        &file,
        format!(
            "time_zone: UTC\nassignments:\n{}",
            assignments.replace("{due}", &due.to_string())
        ),
    )
    .unwrap();
    let line: &'static str = Box::leak(format!("  course: {}\n", file.display()).into_boxed_str());
    (dir, line)
}

/// One `raid gateway` process, on a port it keeps across restarts.
pub struct Gateway {
    pub url: String,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// One `raid` process.
pub struct Worker {
    pub name: String,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

pub struct Stack {
    pub kind: Kind,
    pub redis: PrivateRedis,
    pub moto: Option<PrivateMoto>,
    pub aws_endpoint: String,
    pub queue: String,
    pub bucket: String,
    /// Students' home directories: `.rai_profile` and `.rai_config.yml`, usernames `student0`, `student1`, ...
    pub homes: Vec<tempfile::TempDir>,
    pub workers: Vec<Worker>,
    pub gateways: Vec<Gateway>,
    /// Store, registry, worker configs, job directories, logs.
    pub dir: tempfile::TempDir,
    /// The course's CA: it signed the gateways' certificate, and `rai` trusts it (`client.ca_file`).
    pub ca: TestCa,
    /// The gateways' certificate (for 127.0.0.1 and localhost), `None` when they serve plain HTTP.
    gateway_tls: Option<Issued>,
    concurrency: usize,
    lease: &'static str,
    raid_extra: &'static str,
    client_extra: &'static str,
    gateway_extra: &'static str,
    events_extra: &'static str,
    gpus: Option<WorkerGpus>,
    /// The store's own disk, when [`Options::store_disk`] asked for one; unmounted once the processes are gone.
    store_disk: Option<crate::disk::Disk>,
}

fn aws_lines(endpoint: &str) -> String {
    let aws = crate::aws_config();
    format!(
        "aws:\n  region: {}\n  endpoint_url: {}\n  access_key_id: {}\n  secret_access_key: {}\n",
        aws.region,
        endpoint,
        aws.access_key_id.unwrap_or_default(),
        aws.secret_access_key.unwrap_or_default(),
    )
}

impl Stack {
    pub async fn start(kind: Kind, options: Options) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("store")).unwrap();
        let store_disk = options.store_disk.map(|bytes| {
            crate::disk::Disk::mount(
                &dir.path().join("store.img"),
                bytes,
                &dir.path().join("store"),
            )
        });
        let ca = TestCa::new(dir.path());
        // As a course deploys it: TLS only, mutual TLS, deploy/redis's ACL users (raid for workers, gateway for
        // gateways), the default user off.
        let redis = if options.plain_redis {
            PrivateRedis::start()
        } else {
            PrivateRedis::start_tls(&ca)
        };
        let queue = crate::unique("e2e");
        let bucket = queue.clone();
        let moto = (kind == Kind::Aws && options.private_moto).then(PrivateMoto::start);
        let aws_endpoint = moto
            .as_ref()
            .map_or_else(crate::aws_endpoint, PrivateMoto::endpoint);
        if kind == Kind::Aws {
            let aws = rai_common::config::AwsConfig {
                endpoint_url: Some(aws_endpoint.clone()),
                ..crate::aws_config()
            };
            let sdk = rai_backends::aws::sdk_config(&aws).await;
            rai_backends::aws::s3_client(&sdk)
                .create_bucket()
                .bucket(&bucket)
                .send()
                .await
                .unwrap();
            rai_backends::queue::SqsQueue::create(
                rai_backends::aws::sqs_client(&sdk),
                aws_endpoint.clone(),
                &queue,
                Duration::from_secs(60),
                5,
            )
            .await
            .unwrap();
        }
        let mut users = Vec::new();
        let mut homes = Vec::new();
        for i in 0..options.users {
            let name = format!("student{i}");
            let key = generate_signing_key();
            let home = tempfile::tempdir().unwrap();
            let team = options.teams.get(i).copied().unwrap_or("team");
            let mut profile = Profile::new(&key, &name);
            profile.team.name = team.into();
            std::fs::write(home.path().join(".rai_profile"), profile.to_yaml()).unwrap();
            users.push(Account {
                username: name,
                email: String::new(),
                team: team.into(),
                role: if options.staff.contains(&i) {
                    Role::Instructor
                } else {
                    Role::Student
                },
                public_key: encode_public_key(&key.verifying_key()),
                created: chrono::Utc::now(),
                revoked: options.revoked.contains(&i).then(chrono::Utc::now),
            });
            homes.push(home);
        }
        std::fs::write(
            dir.path().join("registry.yml"),
            Registry { users }.to_yaml(),
        )
        .unwrap();
        let gateway_tls = (!options.plain_gateway)
            .then(|| ca.issue(dir.path(), "gateway", &["127.0.0.1", "localhost"]));
        let mut stack = Stack {
            ca,
            gateway_tls,
            kind,
            redis,
            moto,
            aws_endpoint,
            queue,
            bucket,
            homes,
            workers: Vec::new(),
            gateways: Vec::new(),
            dir,
            concurrency: options.concurrency,
            lease: options.lease,
            raid_extra: options.raid_extra,
            client_extra: options.client_extra,
            gateway_extra: options.gateway_extra,
            events_extra: options.events_extra,
            gpus: options.gpus,
            store_disk,
        };
        std::fs::write(
            stack.dir.path().join("gateway.key"),
            rai_common::account::gateway_key_file(crate::jobs::gateway_key()),
        )
        .unwrap();
        for _ in 0..options.gateways.max(1) {
            stack.add_gateway().await;
        }
        for home in &stack.homes {
            std::fs::write(home.path().join(".rai_config.yml"), stack.client_config()).unwrap();
        }
        for _ in 0..options.workers {
            stack.add_worker();
        }
        stack
    }

    /// The backends part of a server's config, for Redis's ACL user `user` (`raid` or `gateway`).
    fn backends(&self, user: &str) -> String {
        let events = format!(
            "events:\n{}{}",
            self.redis.events_lines(user),
            self.events_extra
        );
        match self.kind {
            Kind::Local => format!(
                "{events}queue:\n  backend: redis\n  name: {}\n  lease: {}\nstore:\n  backend: fs\n  path: {}\n",
                self.queue,
                self.lease,
                self.dir.path().join("store").display()
            ),
            Kind::Aws => format!(
                "{events}queue:\n  backend: sqs\n  name: {}\n  lease: {}\nstore:\n  backend: s3\n  bucket: {}\n{}",
                self.queue,
                self.lease,
                self.bucket,
                aws_lines(&self.aws_endpoint)
            ),
        }
    }

    /// A student's config: the gateways and the queue, nothing else (no Redis, no AWS).
    fn client_config(&self) -> String {
        let fallbacks: Vec<&str> = self.gateways[1..].iter().map(|g| g.url.as_str()).collect();
        format!(
            "client:\n  gateway: {}\n  fallback_gateways: [{}]\n  ca_file: {}\n{}queue:\n  name: {}\n",
            self.gateways[0].url,
            fallbacks.join(", "),
            self.ca.cert.display(),
            self.client_extra,
            self.queue
        )
    }

    /// Starts one more `raid gateway` on a free loopback port; returns its index.
    pub async fn add_gateway(&mut self) -> usize {
        let i = self.gateways.len();
        let port = crate::env::restartable_port();
        let config = self.dir.path().join(format!("gateway-{i}.yml"));
        let tls = self.gateway_tls.as_ref().map_or_else(String::new, |t| {
            format!(
                "  tls_cert: {}\n  tls_key: {}\n",
                t.cert.display(),
                t.key.display()
            )
        });
        std::fs::write(
            &config,
            format!(
                // The gateway applies the course's policy (raid.images, raid.limits) as the workers do.
                "{}gateway:\n  listen: 127.0.0.1:{port}\n{tls}  attestation_key: {}\n  queues: [{}]\n{}raid:\n  registry: {}\n  images: [\"rai-test/*\"]\n{}",
                self.backends("gateway"),
                self.dir.path().join("gateway.key").display(),
                self.queue,
                self.gateway_extra,
                self.dir.path().join("registry.yml").display(),
                self.raid_extra,
            ),
        )
        .unwrap();
        let scheme = if self.gateway_tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mut gateway = Gateway {
            url: format!("{scheme}://127.0.0.1:{port}"),
            config,
            log: self.dir.path().join(format!("gateway-{i}.log")),
            child: None,
        };
        gateway.spawn();
        self.gateways.push(gateway);
        i
    }

    /// Student `user`'s client configuration, as their `rai` has it (every gateway, the course's CA), and their
    /// name and key: what rai-client's tests make a `Client` of.
    pub fn student(
        &self,
        user: usize,
    ) -> (
        rai_common::config::ClientConfig,
        String,
        rai_common::account::SigningKey,
    ) {
        let profile = Profile::load(&self.home(user).join(".rai_profile")).unwrap();
        let key = profile.signing_key("profile").unwrap();
        let config = rai_common::config::ClientConfig {
            gateway: Some(self.gateways[0].url.clone()),
            fallback_gateways: self.gateways[1..].iter().map(|g| g.url.clone()).collect(),
            ca_file: Some(self.ca.cert.clone()),
            ..rai_common::Config::defaults().client
        };
        (config, profile.username, key)
    }

    /// Student `user`'s requests to the first gateway, signed by hand (no client in between).
    pub fn signed(&self, user: usize) -> crate::signed::SignedHttp {
        let (_, user, key) = self.student(user);
        crate::signed::SignedHttp {
            http: self.http(),
            url: self.gateways[0].url.clone(),
            user,
            key,
        }
    }

    /// An HTTP client that trusts the course's CA, for tests that speak to a gateway without `rai`.
    pub fn http(&self) -> reqwest::Client {
        self.ca.http()
    }

    /// The process id of gateway `i`, while it runs.
    pub fn gateway_pid(&self, i: usize) -> Option<u32> {
        self.gateways[i].child.as_ref().map(Child::id)
    }

    /// kill -9 of gateway `i`.
    pub fn kill_gateway(&mut self, i: usize) {
        if let Some(mut child) = self.gateways[i].child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// kill -9 of gateway `i`, then the same gateway started again on its port.
    pub fn kill9_gateway_and_restart(&mut self, i: usize) {
        self.kill_gateway(i);
        self.gateways[i].spawn();
    }

    /// Starts one more `raid` process; returns its index.
    pub fn add_worker(&mut self) -> usize {
        let i = self.workers.len();
        let name = crate::unique(&format!("w{i}"));
        let config = self.dir.path().join(format!("raid-{i}.yml"));
        std::fs::write(
            &config,
            format!(
                "{}raid:\n  name: {name}\n  gateway_keys: [{}]\n  queues: [{}]\n  images: [\"rai-test/*\"]\n{}  concurrency: {}\n  shutdown_grace: 2s\n  cancel_grace: 2s\n  registry: {}\n  work_dir: {}\n{}",
                self.backends("raid"),
                crate::jobs::gateway_public_key(),
                self.queue,
                self.gpus
                    .as_ref()
                    .map_or_else(|| "  gpus: []\n".to_string(), WorkerGpus::lines),
                self.concurrency,
                self.dir.path().join("registry.yml").display(),
                self.dir.path().join(format!("jobs-{i}")).display(),
                self.raid_extra,
            ),
        )
        .unwrap();
        let mut worker = Worker {
            name,
            config,
            log: self.dir.path().join(format!("raid-{i}.log")),
            child: None,
        };
        worker.spawn();
        self.workers.push(worker);
        i
    }

    /// kill -9 of the worker named `name`: it dies holding whatever it leased.
    pub fn kill9(&mut self, name: &str) {
        if let Some(mut child) = self.worker(name).child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// A home for someone the registry has never heard of, with a valid-looking profile and the course config.
    pub fn stranger(&mut self, name: &str) -> usize {
        let home = tempfile::tempdir().unwrap();
        let profile = Profile::new(&generate_signing_key(), name);
        std::fs::write(home.path().join(".rai_profile"), profile.to_yaml()).unwrap();
        std::fs::write(home.path().join(".rai_config.yml"), self.client_config()).unwrap();
        self.homes.push(home);
        self.homes.len() - 1
    }

    /// Sends a signal (`STOP`, `CONT`, ...) to the worker named `name`, if it runs.
    pub fn signal_worker(&mut self, name: &str, signal: &str) {
        if let Some(child) = &self.worker(name).child {
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), &child.id().to_string()])
                .status();
        }
    }

    /// kill -9 of the worker named `name`, then the same worker started again (it clears its own leftovers).
    pub fn kill9_and_restart(&mut self, name: &str) {
        self.kill9(name);
        self.worker(name).spawn();
    }

    /// Starts the worker named `name` again after [`Stack::kill9`].
    pub fn restart(&mut self, name: &str) {
        self.worker(name).spawn();
    }

    /// SIGTERM to the worker named `name` (it drains, handing its jobs back), then started again once it exited.
    pub fn sigterm_and_restart(&mut self, name: &str) {
        let w = self.worker(name);
        if let Some(mut child) = w.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(60);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        w.spawn();
    }

    fn worker(&mut self, name: &str) -> &mut Worker {
        self.workers
            .iter_mut()
            .find(|w| w.name == name)
            .unwrap_or_else(|| panic!("no worker {name}"))
    }

    /// The resident memory (KiB) of each running worker.
    pub fn worker_rss_kib(&self) -> Vec<u64> {
        self.worker_status_kib("VmRSS:")
    }

    /// The peak resident memory (KiB) of each running worker since it started.
    pub fn worker_peak_rss_kib(&self) -> Vec<u64> {
        self.worker_status_kib("VmHWM:")
    }

    fn worker_status_kib(&self, field: &str) -> Vec<u64> {
        self.workers
            .iter()
            .filter_map(|w| w.child.as_ref())
            .filter_map(|c| std::fs::read_to_string(format!("/proc/{}/status", c.id())).ok())
            .filter_map(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(field))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .collect()
    }

    /// Whether worker `i` is the process first started (not exited, not restarted).
    pub fn worker_alive(&mut self, i: usize) -> bool {
        self.workers[i]
            .child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Job directories any worker still has (each worker keeps its jobs under `jobs-<i>/<worker>/`).
    pub fn job_dirs_left(&self) -> Vec<PathBuf> {
        (0..self.workers.len())
            .filter_map(|i| std::fs::read_dir(self.dir.path().join(format!("jobs-{i}"))).ok())
            .flatten()
            .flatten()
            // A worker's content cache (`<name>.cache`) is kept between jobs by design.
            .filter(|w| !w.file_name().to_string_lossy().ends_with(".cache"))
            .filter_map(|w| std::fs::read_dir(w.path()).ok())
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    }

    /// The stack's job queue, opened as a worker opens it.
    pub async fn queue(&self) -> std::sync::Arc<dyn rai_backends::queue::JobQueue> {
        let mut config = rai_common::Config::defaults();
        let raid = self.redis.target_for("raid");
        config.events.redis_url = raid.url().to_string();
        if let Some((ca, cert, key)) = self.redis.tls_files() {
            config.events.ca_file = Some(ca);
            config.events.client_cert = Some(cert);
            config.events.client_key = Some(key);
        }
        config.queue.name = self.queue.clone();
        if self.kind == Kind::Aws {
            config.queue.backend = rai_common::config::QueueBackend::Sqs;
            config.aws = rai_common::config::AwsConfig {
                endpoint_url: Some(self.aws_endpoint.clone()),
                ..crate::aws_config()
            };
        }
        rai_backends::connect::open_queue(&config, &self.queue, None)
            .await
            .unwrap()
    }

    /// The stack's object store, opened as a worker opens it.
    pub async fn store(&self) -> std::sync::Arc<dyn rai_backends::store::ObjectStore> {
        let mut config = rai_common::Config::defaults();
        match self.kind {
            Kind::Local => {
                config.store.backend = rai_common::config::StoreBackend::Fs;
                config.store.path = self.dir.path().join("store");
            }
            Kind::Aws => {
                config.store.backend = rai_common::config::StoreBackend::S3;
                config.store.bucket = Some(self.bucket.clone());
                config.aws = rai_common::config::AwsConfig {
                    endpoint_url: Some(self.aws_endpoint.clone()),
                    ..crate::aws_config()
                };
            }
        }
        rai_backends::connect::open_store(&config, None, true)
            .await
            .unwrap()
    }

    pub fn home(&self, user: usize) -> &Path {
        self.homes[user].path()
    }

    /// Runs `rai ARGS` as student `user` and waits for it.
    pub async fn rai(&self, user: usize, args: &[&str]) -> Output {
        let mut cmd = rai_command(self.home(user), args);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    /// Runs `rai ARGS` as student `user` from a thread that may block.
    pub fn rai_blocking(&self, user: usize, args: &[&str]) -> Output {
        rai_command(self.home(user), args).output().unwrap()
    }

    /// Runs `rai ARGS` as student `user` with its standard output a pipe nobody reads (closed at once), as in
    /// `rai history | head -0`; returns its exit status and standard error.
    pub fn rai_into_closed_pipe(
        &self,
        user: usize,
        args: &[&str],
    ) -> (std::process::ExitStatus, String) {
        let mut child = rai_command(self.home(user), args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Starts `rai ARGS` as student `user`, capturing its output as it comes.
    pub fn spawn_rai(&self, user: usize, args: &[&str]) -> Running {
        Running::spawn(rai_command(self.home(user), args))
    }

    /// What the workers and gateways logged, for failure messages.
    pub fn worker_logs(&self) -> String {
        let workers = self.workers.iter().map(|w| (w.name.clone(), &w.log));
        let gateways = self
            .gateways
            .iter()
            .map(|g| (format!("gateway {}", g.url), &g.log));
        workers
            .chain(gateways)
            .map(|(name, log)| {
                format!(
                    "--- {name} ---\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                )
            })
            .collect()
    }

    /// Job containers any worker of this stack still has.
    pub fn containers_left(&self) -> Vec<String> {
        self.workers
            .iter()
            .flat_map(|w| containers_of(&w.name))
            .collect()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for g in &mut self.gateways {
            if let Some(mut child) = g.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for w in &mut self.workers {
            if let Some(mut child) = w.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            for c in containers_of(&w.name) {
                let _ = Command::new("docker")
                    .args(["rm", "-f", &c])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        if std::thread::panicking() {
            eprintln!("{}", self.worker_logs());
        }
        drop(self.store_disk.take());
    }
}

fn containers_of(worker: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=rai.worker={worker}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

impl Gateway {
    /// Starts the process and waits until it serves (its log says where).
    fn spawn(&mut self) {
        let logged_before = std::fs::read_to_string(&self.log).unwrap_or_default().len();
        let mut child = spawn_raid(&["gateway"], &self.config, &self.log);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text[logged_before.min(text.len())..].contains("gateway listening on") {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("raid gateway exited ({status}) before serving:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "raid gateway did not serve within 30 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
    }
}

impl Worker {
    fn spawn(&mut self) {
        self.child = Some(spawn_raid(&[], &self.config, &self.log));
    }
}

/// `raid ARGS -c CONFIG`, its log appended to `log`, its home the config's folder.
fn spawn_raid(args: &[&str], config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(crate::binary("raid"))
        .args(args)
        .args(["-c", config.to_str().unwrap()])
        .env_remove("RAI_SECRET")
        .env("HOME", config.parent().unwrap())
        // raid's log filter (`RAI_LOG`); `RAI_TEST_RAID_LOG` raises it for a measurement (a bench reads the
        // gateway's debug lines).
        .env(
            "RAI_LOG",
            std::env::var("RAI_TEST_RAID_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// A `rai` command as `home`'s student runs it.
pub fn rai_command(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(crate::binary("rai"));
    cmd.args(args)
        .env("HOME", home)
        .env_remove("RAI_PROFILE")
        .env_remove("RAI_SECRET")
        // The student's machine has no AWS settings of its own: everything comes from the profile and config.
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_REGION");
    cmd
}

/// A `rai` process still running, its stdout and stderr collected by two threads.
pub struct Running {
    pub child: Child,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout: Arc<Mutex<String>> = Arc::default();
        let stderr: Arc<Mutex<String>> = Arc::default();
        let readers = vec![
            collect(child.stdout.take().unwrap(), stdout.clone()),
            collect(child.stderr.take().unwrap(), stderr.clone()),
        ];
        Running {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// Waits until stderr has a line containing `text`; returns that line.
    pub async fn wait_stderr(&self, text: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self
                .stderr
                .lock()
                .unwrap()
                .lines()
                .find(|l| l.contains(text))
            {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} on rai's stderr within {limit:?}:\n{}",
                self.stderr.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends a signal (`INT`, `TERM`, ...) to the process.
    pub fn signal(&self, name: &str) {
        assert!(
            Command::new("kill")
                .args([&format!("-{name}"), &self.child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Waits for the process to end; returns its exit code, stdout and stderr.
    pub async fn finish(self) -> (Option<i32>, String, String) {
        let Running {
            mut child,
            stdout,
            stderr,
            readers,
        } = self;
        tokio::task::spawn_blocking(move || {
            let status = child.wait().unwrap();
            for r in readers {
                r.join().unwrap();
            }
            (
                status.code(),
                stdout.lock().unwrap().clone(),
                stderr.lock().unwrap().clone(),
            )
        })
        .await
        .unwrap()
    }
}

fn collect(
    pipe: impl std::io::Read + Send + 'static,
    into: Arc<Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            into.lock().unwrap().push_str(&line);
            line.clear();
        }
    })
}

/// A project directory with a build file running `commands` in the test image, and `files`.
pub fn project(commands: &[&str], files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = gpu_project(&crate::image(), 0, commands);
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// A project directory whose build file asks for `gpus` GPUs (none: no `gpu:` at all) and runs `commands` in
/// `image`, within a minute.
pub fn gpu_project(image: &str, gpus: u32, commands: &[&str]) -> tempfile::TempDir {
    let gpu = if gpus > 0 {
        format!("  gpu: {{ count: {gpus} }}\n")
    } else {
        String::new()
    };
    project_asking(image, &gpu, commands)
}

/// A project directory whose build file has the `resources:` lines `resources` (each indented by two spaces) and
/// a minute's time limit, and runs `commands` in `image`.
pub fn project_asking(image: &str, resources: &str, commands: &[&str]) -> tempfile::TempDir {
    project_with(
        image,
        &format!("resources:\n{resources}  limits: {{ time: 60s }}\n"),
        commands,
    )
}

/// A project directory whose build file has the sections `sections` (whole YAML lines, such as a `matrix:`)
/// between `rai:` and `commands:`, and runs `commands` in `image`.
pub fn project_with(image: &str, sections: &str, commands: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let list: String = commands
        .iter()
        .map(|c| format!("    - {}\n", serde_json::to_string(c).unwrap()))
        .collect();
    std::fs::write(
        dir.path().join("rai_build.yml"),
        format!("rai:\n  version: 0.2\n  image: {image}\n{sections}commands:\n  build:\n{list}"),
    )
    .unwrap();
    dir
}

/// The job id from rai's `✱ Job <id> ...` line.
pub fn job_id(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("✱ Job ")
                .map(|r| r.split_whitespace().next().unwrap().to_string())
        })
        .unwrap_or_else(|| panic!("no job id in: {stderr}"))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
