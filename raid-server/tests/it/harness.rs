//! A worker in the test process, against the test Redis, a temporary fs store and the real Docker engine, plus a
//! student who packs, uploads, signs and queues jobs exactly as `rai` does (through `rai_testkit::jobs`). Also
//! used by the overhead benchmark.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use rai_common::Config;
use rai_common::account::generate_signing_key;
use rai_common::event::Event;
use rai_common::job::JobId;
use rai_testkit::jobs::{worker_config, write_registry};
use raid::context::WorkerContext;
use raid::shutdown::Shutdown;

pub struct Harness {
    pub ctx: Arc<WorkerContext>,
    pub config: Config,
    pub key: SigningKey,
    pub user: String,
    pub shutdown: Shutdown,
    pub serving: tokio::task::JoinHandle<()>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Harness {
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Harness {
        let mut dirs = Vec::new();
        let mut config = worker_config(&mut dirs);
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
        let shutdown = Shutdown::new();
        let serving = tokio::spawn(raid::worker::serve(ctx.clone(), slots, shutdown.clone()));
        Harness {
            ctx,
            config,
            key,
            user: "jdoe".into(),
            shutdown,
            serving,
            _dirs: dirs,
        }
    }

    /// Packs `files` with a build file, uploads and queues a signed job, as `rai submit` does.
    pub async fn submit(&self, commands: &[&str], limits: &str, files: &[(&str, &str)]) -> JobId {
        let (wire, job) = self
            .prepare(commands, limits, files, &self.key, &self.user)
            .await;
        self.ctx.queues[0]
            .send(&rai_testkit::jobs::attest(&wire))
            .await
            .unwrap();
        job
    }

    /// Packs, uploads, signs and queues a project directory as it is (its own build file), after `tweak` changed
    /// the request.
    pub async fn submit_dir(
        &self,
        dir: &std::path::Path,
        tweak: impl FnOnce(&mut rai_common::job::JobRequest),
    ) -> JobId {
        let build = std::fs::read_to_string(dir.join("rai_build.yml")).unwrap();
        let (wire, job) = rai_testkit::jobs::sign_upload(
            self.ctx.store.as_ref(),
            &self.config.queue.name,
            &self.user,
            &self.key,
            &build,
            rai_testkit::jobs::pack_dir(dir),
            tweak,
        )
        .await;
        self.ctx.queues[0]
            .send(&rai_testkit::jobs::attest(&wire))
            .await
            .unwrap();
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
        rai_testkit::jobs::prepare_job(
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

impl Harness {
    /// Every event of a job, until its end (fails the test after `limit`).
    pub async fn events(&self, job: JobId, limit: Duration) -> Vec<Event> {
        rai_testkit::jobs::follow(&self.ctx.bus, job, limit).await
    }

    pub async fn drain_and_stop(self) {
        self.shutdown.drain();
        let _ = tokio::time::timeout(Duration::from_secs(60), self.serving).await;
    }
}
