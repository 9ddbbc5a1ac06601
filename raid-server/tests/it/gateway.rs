//! The gateway in this process, in front of a worker in this process, spoken to by `rai_client::Client` as `rai`
//! speaks to it and by hand-made requests as an attacker would: who may do what, each way authentication fails,
//! job ids bound to their owner, the server's clock, attestation, and TLS with a course's own CA.
//!
//! Over 450 lines: one test per rule of the trust boundary, sharing an in-process gateway.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ed25519_dalek::SigningKey;
use rai_client::client::upload::{Archive, Progress};
use rai_client::{Client, ClientError};
use rai_common::account::{Account, Registry, Role, encode_public_key, generate_signing_key};
use rai_common::api::Accepted;
use rai_common::httpsig::{self, RequestParts, SignatureParams};
use rai_common::job::{AttestedJob, InputObject, JobId, JobRequest};
use rai_common::objects::upload_key;
use rai_common::{BuildSpec, Config};
use rai_testkit::jobs::{build_file, pack_dir};
use reqwest::StatusCode;
use sha2::Digest;

use crate::harness::Harness;

const LIMIT: Duration = Duration::from_secs(120);

/// A course: a worker and a gateway in this process; alice and bob in team a, carol in team c, tom a TA.
pub(crate) struct Course {
    pub(crate) h: Harness,
    /// The gateway itself, to move its clock.
    pub(crate) gateway: Arc<raid_gateway::Gateway>,
    pub(crate) url: String,
    registry: PathBuf,
    accounts: Vec<Account>,
    pub(crate) keys: HashMap<String, SigningKey>,
    /// Where the gateway's TLS files and the CA live, when it serves TLS.
    ca: Option<PathBuf>,
}

pub(crate) const PEOPLE: &[(&str, &str, Role)] = &[
    ("alice", "a", Role::Student),
    ("bob", "a", Role::Student),
    ("carol", "c", Role::Student),
    ("tom", "", Role::Ta),
];

impl Course {
    async fn start() -> Course {
        Course::start_with(false).await
    }

    async fn start_with(tls: bool) -> Course {
        Course::start_term(tls, None, PEOPLE, |_| {}).await
    }

    /// A course whose gateway reads `course` (a course file's text; its build files are written beside it first by
    /// `files`).
    pub(crate) async fn start_term(
        tls: bool,
        course: Option<(&str, &[(&str, &str)])>,
        people: &[(&str, &str, Role)],
        tweak: impl FnOnce(&mut Config),
    ) -> Course {
        let mut dirs = Vec::new();
        let config = rai_testkit::jobs::worker_config(&mut dirs);
        let mut keys = HashMap::new();
        let mut accounts = Vec::new();
        for (name, team, role) in people {
            let key = generate_signing_key();
            accounts.push(Account {
                username: name.to_string(),
                email: format!("{name}@uni.edu"),
                team: team.to_string(),
                role: *role,
                public_key: encode_public_key(&key.verifying_key()),
                created: Utc::now(),
                revoked: None,
            });
            keys.insert(name.to_string(), key);
        }
        let registry = config.raid.registry.clone();
        std::fs::write(
            &registry,
            Registry {
                users: accounts.clone(),
            }
            .to_yaml(),
        )
        .unwrap();
        let dir = dirs[0].path().to_path_buf();
        let key_file = dir.join("gateway.key");
        std::fs::write(
            &key_file,
            rai_common::account::gateway_key_file(rai_testkit::jobs::gateway_key()),
        )
        .unwrap();
        let mut gateway_config = config.clone();
        gateway_config.gateway.listen = Some("127.0.0.1:0".into());
        gateway_config.gateway.attestation_key = Some(key_file);
        gateway_config.gateway.queues = vec![config.queue.name.clone()];
        if let Some((text, files)) = course {
            for (name, body) in files {
                std::fs::write(dir.join(name), body).unwrap();
            }
            let path = dir.join("course.yml");
            std::fs::write(&path, text).unwrap();
            gateway_config.gateway.course = Some(path);
        }
        tweak(&mut gateway_config);
        let ca = tls.then(|| {
            let (cert, key, ca) = certificates(&dir);
            gateway_config.gateway.tls_cert = Some(cert);
            gateway_config.gateway.tls_key = Some(key);
            ca
        });
        // The harness's own student is the first person.
        let first = people.first().expect("a course has people").0;
        let h = Harness::start_with(config, keys[first].clone(), dirs).await;
        let gateway = raid_gateway::Gateway::connect(gateway_config)
            .await
            .unwrap();
        let gateway = Arc::new(gateway);
        let listening = raid_gateway::serve(gateway.clone(), std::future::pending())
            .await
            .unwrap();
        Course {
            h,
            gateway,
            url: listening.url,
            registry,
            accounts,
            keys,
            ca,
        }
    }

    fn client_config(&self) -> rai_common::config::ClientConfig {
        let mut c = Config::defaults().client;
        c.gateway = Some(self.url.clone());
        c.ca_file = self.ca.clone();
        c
    }

    pub(crate) fn client(&self, user: &str) -> Client {
        Client::new(&self.client_config(), user, self.keys[user].clone()).unwrap()
    }

    /// Rewrites the registry after `change` (the gateway rereads it on its next request).
    fn edit_registry(&mut self, change: impl FnOnce(&mut Vec<Account>)) {
        change(&mut self.accounts);
        std::fs::write(
            &self.registry,
            Registry {
                users: self.accounts.clone(),
            }
            .to_yaml(),
        )
        .unwrap();
    }

    /// Uploads a project running `commands` as `user` through the gateway; returns the job id and its request.
    pub(crate) async fn upload(
        &self,
        user: &str,
        commands: &[&str],
    ) -> Result<JobRequest, ClientError> {
        self.upload_files(user, commands, &[]).await
    }

    /// [`Course::upload`], with more files in the project.
    pub(crate) async fn upload_files(
        &self,
        user: &str,
        commands: &[&str],
        files: &[(&str, &str)],
    ) -> Result<JobRequest, ClientError> {
        upload_as(
            &self.client(user),
            user,
            &self.h.config.queue.name,
            commands,
            JobId::new(),
            files,
        )
        .await
    }

    /// Uploads and submits `user`'s project (with `files`) for `assignment`.
    pub(crate) async fn submit_for(
        &self,
        user: &str,
        assignment: &str,
        commands: &[&str],
        files: &[(&str, &str)],
    ) -> Result<Accepted, ClientError> {
        let mut request = self.upload_files(user, commands, files).await?;
        request.assignment = Some(assignment.to_string());
        self.client(user)
            .submit(&request.sign(&self.keys[user]))
            .await
    }

    /// Uploads and submits a job of `user` (the request changed by `tweak` before it is signed).
    pub(crate) async fn submit(
        &self,
        user: &str,
        commands: &[&str],
        tweak: impl FnOnce(&mut JobRequest),
    ) -> Result<Accepted, ClientError> {
        let mut request = self.upload(user, commands).await?;
        tweak(&mut request);
        self.client(user)
            .submit(&request.sign(&self.keys[user]))
            .await
    }

    /// A request signed by hand: `user` with `key`, created at `created`, with `nonce` (padded with `-` to the 16
    /// characters a gateway asks for at least).
    pub(crate) fn signed(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &str,
        key: &SigningKey,
        created: i64,
        nonce: &str,
    ) -> reqwest::Request {
        let mut request = reqwest::Client::new()
            .request(method.clone(), format!("{}{path}", self.url))
            .build()
            .unwrap();
        let params = SignatureParams {
            components: rai_common::api::signed_components(false),
            created: Some(created),
            keyid: Some(user.into()),
            nonce: Some(format!("{nonce:-<16}")),
            alg: Some(httpsig::ALG_ED25519.into()),
        };
        let parts = RequestParts {
            method: method.as_str().into(),
            authority: String::new(),
            path: request.url().path().into(),
            query: request.url().query().unwrap_or_default().into(),
            headers: Vec::new(),
        };
        let headers = httpsig::sign(&parts, &params, httpsig::LABEL, key).unwrap();
        request
            .headers_mut()
            .insert("signature-input", headers.signature_input.parse().unwrap());
        request
            .headers_mut()
            .insert("signature", headers.signature.parse().unwrap());
        request
    }
}

/// Packs a project running `commands`, uploads it as job `job` of `user`, and returns the unsigned request for it.
async fn upload_as(
    client: &Client,
    user: &str,
    queue: &str,
    commands: &[&str],
    job: JobId,
    files: &[(&str, &str)],
) -> Result<JobRequest, ClientError> {
    let dir = tempfile::tempdir().unwrap();
    let build = build_file(commands, "time: 60s");
    std::fs::write(dir.path().join("rai_build.yml"), &build).unwrap();
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    let bytes = pack_dir(dir.path());
    let file = dir.path().join("upload.tar.zst");
    std::fs::write(&file, &bytes).unwrap();
    let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
    let archive = Archive {
        path: &file,
        size: bytes.len() as u64,
        sha256: sha256.clone(),
    };
    let progress: Progress = Arc::new(|_| {});
    client.upload(&job, &archive, &[], progress).await?;
    Ok(JobRequest {
        id: job,
        user: user.into(),
        team: String::new(),
        queue: queue.into(),
        created_at: Utc::now(),
        client_version: rai_common::VERSION.into(),
        build: BuildSpec::parse(&build, "rai_build.yml").unwrap(),
        input: InputObject {
            key: upload_key(user, &job),
            size: bytes.len() as u64,
            sha256,
        },
        assignment: None,
        sweep: None,
    })
}

/// A CA, and a certificate it signed for localhost and 127.0.0.1: (certificate, key, CA certificate) files.
fn certificates(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let paths = (
        dir.join("gateway.crt"),
        dir.join("gateway.key.pem"),
        dir.join("course-ca.crt"),
    );
    std::fs::write(&paths.0, cert.pem()).unwrap();
    std::fs::write(&paths.1, key.serialize_pem()).unwrap();
    std::fs::write(&paths.2, ca.pem()).unwrap();
    paths
}

pub(crate) fn refused(
    result: Result<impl std::fmt::Debug, ClientError>,
    status: StatusCode,
    text: &str,
) {
    match result {
        Err(ClientError::Refused {
            status: s,
            code,
            message,
        }) => {
            assert_eq!(s, status, "{message}");
            assert!(message.contains(text), "{text:?} not in {message:?}");
            // Every refusal carries its status's code, or a finer one of the same status.
            use rai_common::api::ErrorCode;
            let finer = match code {
                ErrorCode::NoSuchJob => s == StatusCode::NOT_FOUND,
                ErrorCode::NoSuchQueue => s == StatusCode::BAD_REQUEST,
                _ => false,
            };
            assert!(
                code == ErrorCode::of_status(s.as_u16()) || finer,
                "{code:?} for a {s} refusal: {message}"
            );
        }
        other => panic!("expected a {status} refusal saying {text:?}, got {other:?}"),
    }
}

pub(crate) async fn send(request: reqwest::Request) -> (StatusCode, String) {
    let response = reqwest::Client::new().execute(request).await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// The route table serves every route clients fill in (each written once, in common/api.rs): an unsigned request to
/// each is refused for its signature (401) or its method (405), never as unknown (404), which a drifted template
/// would get.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_every_route_clients_fill_in() {
    let c = Course::start().await;
    let http = reqwest::Client::new();
    for route in rai_common::api::ROUTES {
        let path = route.path(JobId::new());
        for method in [
            reqwest::Method::GET,
            reqwest::Method::POST,
            reqwest::Method::PUT,
        ] {
            let status = http
                .request(method.clone(), format!("{}{path}", c.url))
                .send()
                .await
                .unwrap()
                .status();
            assert!(
                status == StatusCode::UNAUTHORIZED || status == StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} ({}): {status}",
                route.template()
            );
        }
    }
    // A path no route has is unknown, so the check above can fail.
    let status = http
        .get(format!("{}/v1/jobs/{}/nothing", c.url, JobId::new()))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_authentication_failure_is_refused_with_its_own_reason() {
    let mut c = Course::start().await;
    let who = c.client("alice").whoami().await.unwrap();
    assert_eq!(
        (who.user.as_str(), who.team.as_str(), who.role),
        ("alice", "a", Role::Student)
    );
    let now = Utc::now().timestamp();
    let alice = c.keys["alice"].clone();
    let get = reqwest::Method::GET;

    let unsigned = reqwest::Client::new()
        .get(format!("{}/v1/whoami", c.url))
        .build()
        .unwrap();
    let stranger = generate_signing_key();
    let with_nonce = |nonce: &str| c.signed(get.clone(), "/v1/whoami", "alice", &alice, now, nonce);
    let cases = [
        ("unsigned", unsigned, "not signed"),
        (
            "another key",
            c.signed(get.clone(), "/v1/whoami", "alice", &stranger, now, "n1"),
            "bad signature",
        ),
        (
            "ten minutes old",
            c.signed(get.clone(), "/v1/whoami", "alice", &alice, now - 600, "n2"),
            "s ago, more than the 60s allowed",
        ),
        (
            "from the future",
            c.signed(get.clone(), "/v1/whoami", "alice", &alice, now + 600, "n3"),
            "in the future",
        ),
        (
            "unknown user",
            c.signed(get.clone(), "/v1/whoami", "mallory", &stranger, now, "n4"),
            "unknown user",
        ),
        (
            "signed for another path",
            {
                let mut r = c.signed(get.clone(), "/v1/jobs", "alice", &alice, now, "n5");
                *r.url_mut() = format!("{}/v1/whoami", c.url).parse().unwrap();
                r
            },
            "bad signature",
        ),
        (
            "a POST whose signature covers no body",
            c.signed(
                reqwest::Method::POST,
                "/v1/jobs",
                "alice",
                &alice,
                now,
                "n6",
            ),
            "does not cover",
        ),
        // Nonces are kept in Redis for twice the clock skew: large ones would fill it.
        (
            "a 100 KB nonce",
            with_nonce(&"n".repeat(100_000)),
            "longer than 2048 bytes",
        ),
        (
            "a 65-character nonce",
            with_nonce(&"n".repeat(65)),
            "nonce is not 16 to 64 base64url characters",
        ),
        (
            "a nonce of other characters",
            with_nonce("{}{}{}{}{}{}{}{}{}"),
            "nonce is not 16 to 64 base64url characters",
        ),
    ];
    for (what, request, reason) in cases {
        let (status, body) = send(request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert!(body.contains(reason), "{what}: {reason:?} not in {body}");
    }

    // A replay: the same signed request twice.
    let once = c.signed(get.clone(), "/v1/whoami", "alice", &alice, now, "replayed");
    let twice = once.try_clone().unwrap();
    assert_eq!(send(once).await.0, StatusCode::OK);
    let (status, body) = send(twice).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("already made once"), "{body}");

    // A body swapped after signing: its Content-Digest no longer matches.
    let mut swapped = reqwest::Client::new()
        .post(format!("{}/v1/uploads", c.url))
        .body("{\"job\":\"x\"}")
        .build()
        .unwrap();
    rai_client::client::sign::sign(
        &mut swapped,
        "alice",
        &alice,
        Some(httpsig::content_digest(b"{\"something\":\"else\"}")),
    );
    let (status, body) = send(swapped).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body.contains("does not match its signed Content-Digest"),
        "{body}"
    );

    // Revocation holds from the next request, with no restart.
    c.edit_registry(|a| a[0].revoked = Some(Utc::now()));
    refused(
        c.client("alice").whoami().await,
        StatusCode::UNAUTHORIZED,
        "user \"alice\" was revoked",
    );
    c.h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn students_reach_only_their_own_jobs_teammates_read_and_staff_cancel() {
    let c = Course::start().await;
    let accepted = c
        .submit("alice", &["echo started; sleep 60"], |_| {})
        .await
        .unwrap();
    let job = accepted.job;
    let mut events = c.client("alice").follow(job, 0);
    loop {
        let e = events.next().await.unwrap().unwrap();
        if matches!(&e.body, rai_common::event::EventBody::Stdout { data } if data.contains("started"))
        {
            break;
        }
    }
    // carol, of another team, cannot tell the job exists.
    let carol = c.client("carol");
    refused(carol.status(&job).await, StatusCode::NOT_FOUND, "no job");
    refused(carol.cancel(&job).await, StatusCode::NOT_FOUND, "no job");
    refused(
        carol.download(&job).await.map(|_| ()),
        StatusCode::NOT_FOUND,
        "no job",
    );
    refused(
        carol.events_so_far(&job).await,
        StatusCode::NOT_FOUND,
        "no job",
    );
    let mut carol_follows = carol.follow(job, 0);
    refused(
        carol_follows.next().await.unwrap(),
        StatusCode::NOT_FOUND,
        "no job",
    );
    refused(
        carol.history(Some("alice"), 10).await,
        StatusCode::FORBIDDEN,
        "not user \"alice\"'s",
    );
    // bob, alice's teammate, reads but cannot cancel.
    let bob = c.client("bob");
    assert_eq!(
        bob.status(&job).await.unwrap().user.as_deref(),
        Some("alice")
    );
    assert!(!bob.events_so_far(&job).await.unwrap().is_empty());
    bob.history(Some("alice"), 10).await.unwrap();
    refused(bob.cancel(&job).await, StatusCode::NOT_FOUND, "no job");
    // tom, a TA, reads it and cancels it.
    let tom = c.client("tom");
    assert_eq!(
        tom.status(&job).await.unwrap().user.as_deref(),
        Some("alice")
    );
    assert!(!tom.events_so_far(&job).await.unwrap().is_empty());
    tom.cancel(&job).await.unwrap();
    let end = tokio::time::timeout(LIMIT, async {
        loop {
            let e = events.next().await.unwrap().unwrap();
            if let rai_common::event::EventBody::End { status, .. } = e.body {
                return status;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(end, rai_common::event::JobStatus::Cancelled);
    c.h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_a_job_that_was_never_submitted_ends_at_once() {
    let c = Course::start().await;
    let declared = c.upload("alice", &["echo never sent"]).await.unwrap();
    let mut events = c.client("alice").follow(declared.id, 0);
    let first = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("the follow ends instead of waiting for a job that will never run")
        .expect("one answer");
    refused(first, StatusCode::NOT_FOUND, "was never submitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_id_far_from_the_gateways_clock_is_refused() {
    // Ids order staff listings; one from the year 10889 would stay on top (issue 26).
    let c = Course::start().await;
    let queue = c.h.config.queue.name.clone();
    let now = JobId::new().to_string();
    let future: JobId = format!("7zzzzzzzzz{}", &now[10..]).parse().unwrap();
    let past: JobId = format!("0000000001{}", &now[10..]).parse().unwrap();
    for id in [future, past] {
        refused(
            upload_as(&c.client("alice"), "alice", &queue, &["echo x"], id, &[]).await,
            StatusCode::BAD_REQUEST,
            "check your computer's clock",
        );
    }
    c.upload("alice", &["echo now"]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_id_belongs_to_its_first_owner_and_is_accepted_once() {
    let c = Course::start().await;
    let queue = c.h.config.queue.name.clone();
    let victim = c.upload("alice", &["echo mine"]).await.unwrap();
    let id = victim.id;
    // carol takes alice's pending id for an upload of her own: refused.
    refused(
        upload_as(
            &c.client("carol"),
            "carol",
            &queue,
            &["echo yours"],
            id,
            &[],
        )
        .await,
        StatusCode::CONFLICT,
        "already in use",
    );
    // ... or sends a body into alice's pending upload, or completes it: it is not hers.
    let carol = &c.keys["carol"];
    let body = b"not alice's project".to_vec();
    let mut put = reqwest::Client::new()
        .put(format!("{}/v1/uploads/{id}", c.url))
        .body(body.clone())
        .build()
        .unwrap();
    rai_client::client::sign::sign(
        &mut put,
        "carol",
        carol,
        Some(httpsig::content_digest(&body)),
    );
    let complete_body = br#"{"upload_id":"x","parts":[]}"#.to_vec();
    let mut complete = reqwest::Client::new()
        .post(format!("{}/v1/uploads/{id}/complete", c.url))
        .body(complete_body.clone())
        .build()
        .unwrap();
    rai_client::client::sign::sign(
        &mut complete,
        "carol",
        carol,
        Some(httpsig::content_digest(&complete_body)),
    );
    for (what, request) in [("stream", put), ("complete", complete)] {
        let (status, text) = send(request).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{what}: {text}");
        assert!(
            text.contains("no job") && !text.contains("alice"),
            "{what}: {text}"
        );
    }
    // ... or signs a job under that id pointing at her own key: there is no upload of hers for it.
    let mut theft = victim.clone();
    theft.user = "carol".into();
    theft.input.key = upload_key("carol", &id);
    refused(
        c.client("carol")
            .submit(&theft.sign(&c.keys["carol"]))
            .await,
        StatusCode::CONFLICT,
        "has no upload of yours",
    );
    // ... or submits alice's signed job as herself: the signer is not the caller.
    refused(
        c.client("carol")
            .submit(&victim.sign(&c.keys["alice"]))
            .await,
        StatusCode::FORBIDDEN,
        "signed for user \"alice\"",
    );
    // alice's job is accepted once: the same id again is refused by the gateway, which the client reads as the
    // answer to a retry (the first acceptance), and the job runs once.
    let signed = victim.sign(&c.keys["alice"]);
    let first = c.client("alice").submit(&signed).await.unwrap();
    let mut again = reqwest::Client::new()
        .post(format!("{}/v1/jobs", c.url))
        .body(signed.to_bytes())
        .build()
        .unwrap();
    rai_client::client::sign::sign(
        &mut again,
        "alice",
        &c.keys["alice"],
        Some(httpsig::content_digest(&signed.to_bytes())),
    );
    let (status, body) = send(again).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("already submitted"), "{body}");
    let retried = c.client("alice").submit(&signed).await.unwrap();
    assert_eq!(retried.accepted_at, first.accepted_at);
    let events = c.h.events(id, LIMIT).await;
    assert_eq!(rai_testkit::jobs::text(&events, "stdout"), "mine\n");
    c.h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_clock_is_the_one_that_counts() {
    let c = Course::start().await;
    // A job "created" a day before (a student's clock set back to beat a deadline) is accepted now, and the
    // record says when the gateway accepted it.
    let before = Utc::now();
    let accepted = c
        .submit("alice", &["echo late"], |r| {
            r.created_at = Utc::now() - chrono::Duration::days(1)
        })
        .await
        .unwrap();
    assert!(accepted.accepted_at >= before && accepted.accepted_at <= Utc::now());
    let events = c.h.events(accepted.job, LIMIT).await;
    assert_eq!(rai_testkit::jobs::end(&events).0, "succeeded");
    let records = c.client("alice").history(None, 5).await.unwrap();
    let record = records
        .iter()
        .find(|r| r.id == accepted.job.to_string())
        .unwrap();
    assert_eq!(record.accepted_at, accepted.accepted_at);
    c.h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_only_what_a_trusted_gateway_attested() {
    let c = Course::start().await;
    let queue = c.h.ctx.queues[0].clone();
    // A v1 message, as the 2025 client queued it with the shared queue credentials: no attestation.
    let unattested = c.upload("alice", &["echo ran"]).await.unwrap();
    let wire = String::from_utf8(unattested.sign(&c.keys["alice"]).to_bytes()).unwrap();
    queue.send(&wire).await.unwrap();
    // The same job attested by a key no worker trusts.
    let rogue_job = c.upload("alice", &["echo ran"]).await.unwrap();
    let rogue = AttestedJob::attest(
        rogue_job.sign(&c.keys["alice"]),
        rogue_job.id,
        &rai_common::job::Owner {
            user: "alice".into(),
            team: String::new(),
            role: rai_common::account::Role::Student,
        },
        &rogue_job.queue,
        Utc::now(),
        &generate_signing_key(),
    );
    queue
        .send(&String::from_utf8(rogue.to_bytes()).unwrap())
        .await
        .unwrap();
    // A good job after them, so we know the worker got past both.
    let good = c.submit("alice", &["echo good"], |_| {}).await.unwrap();
    let events = c.h.events(good.job, LIMIT).await;
    assert_eq!(rai_testkit::jobs::text(&events, "stdout"), "good\n");
    // Neither ran, and neither could write to its job's channel.
    for job in [unattested.id, rogue_job.id] {
        assert!(c.h.ctx.bus.history(&job, 0, 10).await.unwrap().is_empty());
    }
    // Every message was taken off the queue (the last ack follows the end event by a moment).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while queue.depth().await.unwrap() != rai_backends::queue::Depth::default() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            queue.depth().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_courses_own_ca() {
    let c = Course::start_with(true).await;
    assert!(c.url.starts_with("https://"), "{}", c.url);
    // With the course's CA the client speaks TLS to the gateway; without it, the certificate is not trusted.
    assert_eq!(c.client("alice").whoami().await.unwrap().user, "alice");
    let mut untrusting = c.client_config();
    untrusting.ca_file = None;
    let err = Client::new(&untrusting, "alice", c.keys["alice"].clone())
        .unwrap()
        .whoami()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Unreachable { .. }),
        "expected a TLS failure, got {err:?}"
    );
    // A job goes all the way through TLS.
    let accepted = c.submit("alice", &["echo over tls"], |_| {}).await.unwrap();
    let mut events = c.client("alice").follow(accepted.job, 0);
    let mut out = String::new();
    while let Some(e) = events.next().await {
        if let rai_common::event::EventBody::Stdout { data } = e.unwrap().body {
            out.push_str(&data);
        }
    }
    assert_eq!(out, "over tls\n");
    c.h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acceptance_that_never_finished_is_taken_over_by_the_retry() {
    let c = Course::start().await;
    let request = c.upload("alice", &["echo taken over"]).await.unwrap();
    // A gateway marked the job accepted, then died (or lost Redis) before writing its state or queueing it.
    assert!(
        c.gateway
            .bus
            .mark_accepted(&request.id, Duration::from_secs(3600))
            .await
            .unwrap()
    );
    let accepted = c
        .client("alice")
        .submit(&request.sign(&c.keys["alice"]))
        .await
        .expect("the retry takes the unfinished acceptance over");
    let events = c.h.events(accepted.job, LIMIT).await;
    assert_eq!(rai_testkit::jobs::end(&events).0, "succeeded");
    assert_eq!(rai_testkit::jobs::text(&events, "stdout"), "taken over\n");
    // Once it has a state, the id is accepted once: the client's next retry reads its job as accepted, and it does
    // not run again.
    let again = c
        .client("alice")
        .submit(&request.sign(&c.keys["alice"]))
        .await
        .unwrap();
    assert_eq!(again.job, accepted.job);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(c.h.events(accepted.job, LIMIT).await.len(), events.len());
    c.h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let c = Course::start_term(true, None, PEOPLE, |config| {
        config.gateway.tls_check_every = rai_common::units::Span(Duration::from_millis(200));
    })
    .await;
    let client_trusting = |ca: Option<PathBuf>| {
        let mut config = c.client_config();
        config.ca_file = ca;
        // A certificate it does not trust is an unreachable gateway: no minute of retries.
        config.retry_for = rai_common::units::Span(Duration::from_millis(300));
        Client::new(&config, "alice", c.keys["alice"].clone()).unwrap()
    };
    assert_eq!(
        client_trusting(c.ca.clone()).whoami().await.unwrap().user,
        "alice"
    );
    // The course renews the gateway's certificate (here from a new CA, so the switch shows): the files are replaced.
    let renewed = tempfile::tempdir().unwrap();
    let new_ca = rai_testkit::tls::TestCa::new(renewed.path());
    let issued = new_ca.issue(renewed.path(), "gateway", &["127.0.0.1", "localhost"]);
    let (cert, key) = (
        c.gateway.config.gateway.tls_cert.clone().unwrap(),
        c.gateway.config.gateway.tls_key.clone().unwrap(),
    );
    std::fs::copy(&issued.key, &key).unwrap();
    std::fs::copy(&issued.cert, &cert).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while client_trusting(Some(new_ca.cert.clone()))
        .whoami()
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        client_trusting(c.ca.clone()).whoami().await.is_err(),
        "the old certificate is still served"
    );
    // A renewal that does not load leaves the last good one in use.
    std::fs::write(&cert, "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        client_trusting(Some(new_ca.cert.clone()))
            .whoami()
            .await
            .unwrap()
            .user,
        "alice"
    );
    c.h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_will_not_serve_plain_http_beyond_loopback() {
    let mut dirs = Vec::new();
    let mut config = rai_testkit::jobs::worker_config(&mut dirs);
    std::fs::write(&config.raid.registry, Registry::default().to_yaml()).unwrap();
    let key_file = dirs[0].path().join("gateway.key");
    std::fs::write(
        &key_file,
        rai_common::account::gateway_key_file(rai_testkit::jobs::gateway_key()),
    )
    .unwrap();
    config.gateway.attestation_key = Some(key_file);
    config.gateway.queues = vec![config.queue.name.clone()];
    config.gateway.listen = Some("0.0.0.0:0".into());
    let gateway = Arc::new(raid_gateway::Gateway::connect(config).await.unwrap());
    let err = raid_gateway::serve(gateway, std::future::pending())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("not a loopback address") && err.contains("gateway.tls_cert"),
        "{err}"
    );
}
