//! Jobs made and followed straight through the backends, as `rai submit` makes them: a project packed with a build
//! file, uploaded, signed and queued; then its events followed to the end. Used by the in-process worker tests and
//! by the hostile catalogue (which changes a signed job before it is queued).

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use ed25519_dalek::SigningKey;
use rai_backends::events::{EventBus, FollowOptions};
use rai_backends::store::ObjectStore;
use rai_common::account::{Account, Registry, Role, encode_public_key};
use rai_common::archive::{PackOptions, pack};
use rai_common::event::{Event, EventBody, JobStatus};
use rai_common::job::{AttestedJob, InputObject, JobId, JobRequest, SignedJob};
use rai_common::objects::upload_key;
use rai_common::{BuildSpec, Config};

/// A build file on the test image running `commands`, with `limits` (`time: 20s, memory: 64m`).
pub fn build_file(commands: &[&str], limits: &str) -> String {
    let list: String = commands
        .iter()
        .map(|c| format!("    - {}\n", serde_json::to_string(c).unwrap()))
        .collect();
    format!(
        "rai:\n  version: 0.2\n  image: {}\nresources:\n  limits: {{ {limits} }}\ncommands:\n  build:\n{list}",
        crate::image()
    )
}

/// A config for a test worker: unique queue and names, fs store and registry in temporary directories (kept
/// alive in `dirs`).
pub fn worker_config(dirs: &mut Vec<tempfile::TempDir>) -> Config {
    let mut c = Config::defaults();
    let store = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    c.events.redis_url = crate::redis_url();
    c.queue.name = crate::unique("q");
    c.queue.lease = rai_common::units::Span::from_secs(6);
    c.store.path = store.path().to_path_buf();
    c.raid.registry = store.path().join("registry.yml");
    c.raid.work_dir = work.path().join("jobs");
    c.raid.name = Some(crate::unique("w"));
    c.raid.queues = vec![c.queue.name.clone()];
    c.raid.images = vec!["rai-test/*".into()];
    c.raid.gpus = Some(vec![]);
    c.raid.gateway_keys = vec![gateway_public_key()];
    c.raid.concurrency = Some(2);
    c.raid.cancel_grace = rai_common::units::Span::from_secs(2);
    c.raid.shutdown_grace = rai_common::units::Span::from_secs(30);
    // Tests share user names (alice, jdoe) in one Redis, and some leave uploads unsubmitted on purpose: the upload
    // caps would carry over from test to test. They have their own test, with names of its own.
    c.gateway.uploads.max_pending = 0;
    c.gateway.uploads.bytes_per_day = rai_common::units::Bytes(0);
    dirs.push(store);
    dirs.push(work);
    c
}

/// The gateway attestation key of this test process: every test worker trusts it, and [`attest`] signs with it.
pub fn gateway_key() -> &'static SigningKey {
    static KEY: std::sync::LazyLock<SigningKey> =
        std::sync::LazyLock::new(rai_common::account::generate_signing_key);
    &KEY
}

/// The public half of [`gateway_key`], as `raid.gateway_keys` lists it.
pub fn gateway_public_key() -> String {
    encode_public_key(&gateway_key().verifying_key())
}

/// A student's signed message (`wire`) as a gateway queues it: attested for the job, user and queue its payload
/// names, accepted now. The student's signature is not checked here (the worker checks it), so forged messages can
/// still reach the worker's own checks.
pub fn attest(wire: &str) -> String {
    attest_at(wire, Utc::now())
}

/// [`attest`] of a graded submission, with the gateway's judgement `graded`.
pub fn attest_graded(wire: &str, graded: rai_common::job::Graded) -> String {
    attest_full(wire, Utc::now(), Some(graded))
}

/// [`attest`], as if the gateway had accepted the job at `at`.
pub fn attest_at(wire: &str, at: chrono::DateTime<Utc>) -> String {
    attest_full(wire, at, None)
}

fn attest_full(
    wire: &str,
    at: chrono::DateTime<Utc>,
    graded: Option<rai_common::job::Graded>,
) -> String {
    let signed: SignedJob = serde_json::from_str(wire).expect("a signed job message");
    let request: JobRequest = serde_json::from_str(&signed.payload).expect("a job request");
    // A stand-in gateway with no registry: it stamps the team the request names (the tests' registries agree).
    let owner = rai_common::job::Owner {
        user: request.user.clone(),
        team: request.team.clone(),
        role: rai_common::account::Role::Student,
    };
    let attested = AttestedJob::attest_graded(
        signed,
        request.id,
        &owner,
        &request.queue,
        at,
        graded,
        gateway_key(),
    );
    String::from_utf8(attested.to_bytes()).unwrap()
}

/// Writes the worker's account registry: `(name, key, revoked)` students.
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

/// Puts `archive` into `store` as `user`'s upload of a new job and returns the signed job message (after `tweak`
/// changed the request) and its id. The message is not queued.
pub async fn sign_upload(
    store: &dyn ObjectStore,
    queue: &str,
    user: &str,
    key: &SigningKey,
    build: &str,
    archive: Vec<u8>,
    tweak: impl FnOnce(&mut JobRequest),
) -> (String, JobId) {
    let job = JobId::new();
    let upload = upload_key(user, &job);
    let put = store.put_bytes(&upload, archive).await.unwrap();
    let mut request = JobRequest {
        id: job,
        user: user.into(),
        team: "t".into(),
        queue: queue.to_string(),
        created_at: Utc::now(),
        client_version: rai_common::VERSION.into(),
        build: BuildSpec::parse(build, "rai_build.yml").unwrap(),
        input: InputObject {
            key: upload,
            size: put.size,
            sha256: put.sha256,
        },
        assignment: None,
        sweep: None,
    };
    tweak(&mut request);
    let wire = String::from_utf8(request.sign(key).to_bytes()).unwrap();
    (wire, request.id)
}

/// Packs a project of `files` with a build file running `commands`, uploads it to `store`, and returns the signed
/// job message (not yet queued) and its id.
pub async fn prepare_job(
    store: &dyn ObjectStore,
    queue: &str,
    commands: &[&str],
    limits: &str,
    files: &[(&str, &str)],
    key: &SigningKey,
    user: &str,
) -> (String, JobId) {
    let dir = tempfile::tempdir().unwrap();
    let build = build_file(commands, limits);
    std::fs::write(dir.path().join("rai_build.yml"), &build).unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    sign_upload(
        store,
        queue,
        user,
        key,
        &build,
        pack_dir(dir.path()),
        |_| {},
    )
    .await
}

/// A directory packed as rai packs a project.
pub fn pack_dir(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    pack(dir, &mut out, &PackOptions::default(), |_| {}).unwrap();
    out
}

/// Every event of a job, until its end (fails the test after `limit`).
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

/// The text of every event of one kind (`stdout`, `stderr`, `system`), joined.
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

/// Makes an idle container as a run of `job` on `worker` leaves it (its name and labels), as if a killed worker's
/// create had finished after it died.
pub fn leftover_container(job: &str, worker: &str) {
    let made = std::process::Command::new("docker")
        .args([
            "create",
            "--name",
            &format!("rai-job-{job}"),
            "--label",
            &format!("rai.job={job}"),
            "--label",
            &format!("rai.worker={worker}"),
            &crate::image(),
            "sleep",
            "600",
        ])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
}

/// How many containers with `label` are still present.
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
            && s.status == Some(JobStatus::Running)
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
