//! A worker in the test process, against the test Redis, a temporary fs store and the real Docker engine, plus a
//! student who packs, uploads, signs and queues jobs exactly as `rai` does.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ed25519_dalek::SigningKey;
use rai_common::account::{Account, Registry, Role, encode_public_key, generate_signing_key};
use rai_common::archive::{PackOptions, pack};
use rai_common::events::{Event, EventBody, EventBus, FollowOptions};
use rai_common::job::{InputObject, JobId, JobRequest};
use rai_common::store::upload_key;
use rai_common::{BuildSpec, Config, testenv};
use raid::job::WorkerContext;
use raid::shutdown::Phase;
use tokio::sync::watch;

pub struct Harness {
    pub ctx: Arc<WorkerContext>,
    pub config: Config,
    pub key: SigningKey,
    pub user: String,
    pub phase: watch::Sender<Phase>,
    pub serving: tokio::task::JoinHandle<()>,
    _dirs: Vec<tempfile::TempDir>,
}

pub fn image() -> String {
    testenv::image()
}

/// A config for a test worker: unique queue and names, fs store and registry in temporary directories.
pub fn test_config(dirs: &mut Vec<tempfile::TempDir>) -> Config {
    let mut c = Config::defaults();
    let store = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    c.events.redis_url = testenv::redis_url();
    c.queue.name = testenv::unique("q");
    c.queue.lease = rai_common::units::Span::from_secs(6);
    c.store.path = store.path().to_path_buf();
    c.raid.registry = store.path().join("registry.yml");
    c.raid.work_dir = work.path().join("jobs");
    c.raid.name = Some(testenv::unique("w"));
    c.raid.queues = vec![c.queue.name.clone()];
    c.raid.images = vec!["rai-test/*".into()];
    c.raid.gpus = Some(vec![]);
    c.raid.concurrency = Some(2);
    c.raid.cancel_grace = rai_common::units::Span::from_secs(2);
    c.raid.shutdown_grace = rai_common::units::Span::from_secs(30);
    dirs.push(store);
    dirs.push(work);
    c
}

pub fn write_registry(config: &Config, users: &[(&str, &SigningKey, bool)]) {
    let reg = Registry {
        users: users
            .iter()
            .map(|(name, key, revoked)| Account {
                username: name.to_string(),
                email: format!("{name}@uni.edu"),
                team: "t".into(),
                role: Role::Student,
                public_key: encode_public_key(&key.verifying_key()),
                created: Utc::now(),
                revoked: revoked.then(Utc::now),
            })
            .collect(),
    };
    std::fs::write(&config.raid.registry, reg.to_yaml()).unwrap();
}

impl Harness {
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Harness {
        let mut dirs = Vec::new();
        let mut config = test_config(&mut dirs);
        tweak(&mut config);
        let key = generate_signing_key();
        write_registry(&config, &[("jdoe", &key, false)]);
        Self::start_with(config, key, dirs).await
    }

    pub async fn start_with(
        config: Config,
        key: SigningKey,
        dirs: Vec<tempfile::TempDir>,
    ) -> Harness {
        let ctx = Arc::new(raid::setup::context(config.clone()).await.unwrap());
        let slots = raid::setup::slots(&ctx);
        let (phase, phase_rx) = watch::channel(Phase::Running);
        let (_hup, hup_rx) = watch::channel(0);
        let serving = tokio::spawn(raid::worker::serve(ctx.clone(), slots, phase_rx, hup_rx));
        std::mem::forget(_hup);
        Harness {
            ctx,
            config,
            key,
            user: "jdoe".into(),
            phase,
            serving,
            _dirs: dirs,
        }
    }

    pub fn build_file(commands: &[&str], limits: &str) -> String {
        let list: String = commands
            .iter()
            .map(|c| format!("    - {}\n", yaml_quote(c)))
            .collect();
        format!(
            "rai:\n  version: 0.2\n  image: {}\nresources:\n  limits: {{ {limits} }}\ncommands:\n  build:\n{list}",
            image()
        )
    }

    /// Packs `files` with a build file, uploads and queues a signed job, as `rai submit` does.
    pub async fn submit(&self, commands: &[&str], limits: &str, files: &[(&str, &str)]) -> JobId {
        let (wire, job) = self
            .prepare(commands, limits, files, &self.key, &self.user)
            .await;
        self.ctx.queues[0].send(&wire).await.unwrap();
        job
    }

    /// Uploads a project and returns the signed message (not yet queued) and its job id.
    pub async fn prepare(
        &self,
        commands: &[&str],
        limits: &str,
        files: &[(&str, &str)],
        key: &SigningKey,
        user: &str,
    ) -> (String, JobId) {
        prepare_job(
            self.ctx.store.as_ref(),
            &self.config.queue.name,
            commands,
            limits,
            files,
            key,
            user,
        )
        .await
    }
}

/// Packs a project with a build file, uploads it to `store`, and returns the signed job message and its id.
pub async fn prepare_job(
    store: &dyn rai_common::store::ObjectStore,
    queue: &str,
    commands: &[&str],
    limits: &str,
    files: &[(&str, &str)],
    key: &SigningKey,
    user: &str,
) -> (String, JobId) {
    {
        let dir = tempfile::tempdir().unwrap();
        let build = Harness::build_file(commands, limits);
        std::fs::write(dir.path().join("rai_build.yml"), &build).unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let spec = BuildSpec::parse(&build, "rai_build.yml").unwrap();
        let archive = pack_dir(dir.path());
        let job = JobId::new();
        let key_name = upload_key(user, &job);
        let put = store.put_bytes(&key_name, archive).await.unwrap();
        let request = JobRequest {
            id: job,
            user: user.into(),
            team: "t".into(),
            queue: queue.to_string(),
            created_at: Utc::now(),
            client_version: rai_common::VERSION.into(),
            build: spec,
            input: InputObject {
                key: key_name,
                size: put.size,
                sha256: put.sha256,
            },
        };
        (
            String::from_utf8(request.sign(key).to_bytes()).unwrap(),
            job,
        )
    }
}

impl Harness {
    /// Every event of a job, until its end (fails the test after `limit`).
    pub async fn events(&self, job: JobId, limit: Duration) -> Vec<Event> {
        follow(&self.ctx.bus, job, limit).await
    }

    pub async fn drain_and_stop(self) {
        let _ = self.phase.send(Phase::Drain);
        let _ = tokio::time::timeout(Duration::from_secs(60), self.serving).await;
    }
}

pub async fn follow(bus: &EventBus, job: JobId, limit: Duration) -> Vec<Event> {
    let mut stream = bus.follow(job, 0, FollowOptions::default());
    let mut out = Vec::new();
    let collect = async {
        while let Some(e) = stream.next().await {
            out.push(e.unwrap());
        }
    };
    if tokio::time::timeout(limit, collect).await.is_err() {
        panic!("job {job} did not end within {limit:?}; events so far: {out:#?}");
    }
    out
}

pub fn pack_dir(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    pack(dir, &mut out, &PackOptions::default(), |_| {}).unwrap();
    out
}

fn yaml_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// The text of every event of one kind, joined.
pub fn text(events: &[Event], kind: &str) -> String {
    events
        .iter()
        .filter_map(|e| match (&e.body, kind) {
            (EventBody::Stdout { data }, "stdout")
            | (EventBody::Stderr { data }, "stderr")
            | (EventBody::System { data }, "system") => Some(data.clone()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(if kind == "system" { "\n" } else { "" })
}

/// The end event's status, exit code and reason.
pub fn end(events: &[Event]) -> (String, Option<i64>, Option<String>) {
    match &events.last().expect("events").body {
        EventBody::End {
            status,
            exit_code,
            reason,
        } => (status.to_string(), *exit_code, reason.clone()),
        other => panic!("the last event is not the end: {other:?}"),
    }
}

/// Containers of a job still present.
pub fn containers_of(label: &str) -> usize {
    let out = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={label}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Waits until the job's state says it runs (fails the test after a minute).
pub async fn wait_running(bus: &EventBus, job: JobId) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(s)) = bus.state(&job).await
            && s.status == Some(rai_common::events::JobStatus::Running)
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {job} never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
