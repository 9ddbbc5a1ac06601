//! The gateway's client: what `rai` does for a student, as a library the commands only render.
//!
//! A [`Client`] holds the student's key and the course's gateway addresses; every request it makes is signed
//! ([`sign`]). It refuses plain HTTP to anything but a loopback address, trusts the system's CAs plus the course's
//! `client.ca_file`, and when a gateway cannot be reached tries the next of `client.fallback_gateways`.
//!
//! # Layout
//! - here: the client, its requests, and the small calls (whoami, submit, status, cancel, history, download);
//! - [`upload`]: a project archive to the gateway (fs) or in parallel parts straight to S3;
//! - [`events`]: a job's events over SSE, resumed with `Last-Event-ID` after any drop, from any gateway;
//! - [`sign`]: RFC 9421 signatures on each request; [`error`]: what can go wrong.
//!
//! Over 450 lines: the request plumbing (fallback, retries, signing) beside the small calls that use it.

pub mod error;
pub mod events;
pub mod project;
pub mod sign;
pub mod upload;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rai_common::account::SigningKey;
use rai_common::api::{self, Accepted, ErrorBody, ErrorCode, History, WhoAmI};
use rai_common::config::ClientConfig;
use rai_common::job::{JobId, SignedJob};
use rai_common::record::JobRecord;
use rai_common::state::JobState;
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;

pub use error::ClientError;
pub use events::JobEvents;

/// Whose jobs a history lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose<'a> {
    Me,
    User(&'a str),
    Team(&'a str),
    All,
}

/// How long to wait for a gateway to accept a connection before trying the next.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A signed-in student's connection to the course's gateways.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    gateways: Vec<Url>,
    /// The gateway that answered last; requests start there.
    current: AtomicUsize,
    http: reqwest::Client,
    user: String,
    key: SigningKey,
    /// How long a request keeps retrying unreachable or unavailable gateways.
    retry_for: Duration,
}

/// Whether `url` may be spoken to in plain HTTP: only a loopback address, where nothing crosses a network.
fn loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn parse_gateway(text: &str) -> Result<Url, ClientError> {
    let url = Url::parse(text.trim()).map_err(|e| ClientError::BadGatewayUrl {
        url: text.to_string(),
        reason: e.to_string(),
    })?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback(&url) => Ok(url),
        "http" => Err(ClientError::PlainHttp(text.to_string())),
        other => Err(ClientError::BadGatewayUrl {
            url: text.to_string(),
            reason: format!("the scheme must be https, not {other}"),
        }),
    }
}

impl Client {
    /// A client for `user` signing with `key`, to the gateways `config` names.
    pub fn new(config: &ClientConfig, user: &str, key: SigningKey) -> Result<Client, ClientError> {
        let mut gateways = Vec::new();
        for text in config.gateway.iter().chain(&config.fallback_gateways) {
            gateways.push(parse_gateway(text)?);
        }
        if gateways.is_empty() {
            return Err(ClientError::NoGateway);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            // Redirects (a presigned download link) are followed by hand, without the signature headers.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(format!("rai/{}", rai_common::VERSION));
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|source| ClientError::CaFile {
                path: path.clone(),
                source,
            })?;
            let cert =
                reqwest::Certificate::from_pem(&pem).map_err(|source| ClientError::BadCa {
                    path: path.clone(),
                    source,
                })?;
            builder = builder.tls_certs_merge([cert]);
        }
        let http = builder.build().map_err(ClientError::Tls)?;
        Ok(Client {
            inner: Arc::new(Inner {
                gateways,
                current: AtomicUsize::new(0),
                http,
                user: user.to_string(),
                key,
                retry_for: config.retry_for.as_duration(),
            }),
        })
    }

    /// The user this client signs as.
    pub fn user(&self) -> &str {
        &self.inner.user
    }

    /// The gateway requests go to first.
    pub fn gateway(&self) -> &Url {
        &self.inner.gateways[self.inner.current.load(Ordering::Relaxed) % self.inner.gateways.len()]
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// Sends a signed request to the first gateway that can be reached (starting with the one that answered
    /// last), retrying with backoff through unreachable gateways and `503`s (a gateway whose Redis restarts) for up
    /// to `client.retry_for`; a refusal (any other non-2xx, non-redirect answer) is an error carrying the
    /// gateway's message. Every body can be sent again: a file is read anew for each try.
    pub(crate) async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<RequestBody>,
        headers: &[(&str, String)],
    ) -> Result<reqwest::Response, ClientError> {
        let deadline = tokio::time::Instant::now() + self.inner.retry_for;
        let mut delay = Duration::from_millis(200);
        loop {
            let failed = match self
                .attempt(&method, path_and_query, body.as_ref(), headers)
                .await
            {
                Ok(response) => match refusal(response).await {
                    Err(e) if e.status() == Some(reqwest::StatusCode::SERVICE_UNAVAILABLE) => e,
                    done => return done,
                },
                Err(e @ ClientError::Unreachable { .. }) => e,
                Err(e) => return Err(e),
            };
            if tokio::time::Instant::now() + delay > deadline {
                return Err(failed);
            }
            tracing::debug!(error = %failed, "retrying the gateway");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// One try over every gateway, in order from the one that answered last.
    async fn attempt(
        &self,
        method: &Method,
        path_and_query: &str,
        body: Option<&RequestBody>,
        headers: &[(&str, String)],
    ) -> Result<reqwest::Response, ClientError> {
        let n = self.inner.gateways.len();
        let start = self.inner.current.load(Ordering::Relaxed);
        let mut last_error = None;
        for i in 0..n {
            let index = (start + i) % n;
            let base = &self.inner.gateways[index];
            let url = base
                .join(path_and_query)
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            let mut builder = self.inner.http.request(method.clone(), url);
            for (name, value) in headers {
                builder = builder.header(*name, value);
            }
            let digest = |d| Some(sign::BodyTie::ContentDigest(d));
            let tie = match body {
                Some(RequestBody::Json(bytes)) => {
                    builder = builder
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(bytes.clone());
                    digest(rai_common::httpsig::content_digest(bytes))
                }
                Some(RequestBody::Chunks { body, index }) => {
                    builder = builder
                        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .body(body.clone());
                    Some(sign::BodyTie::BatchIndex(index.clone()))
                }
                Some(RequestBody::File {
                    path,
                    size,
                    digest: file_digest,
                    progress,
                }) => {
                    let file = upload::open(path).await?;
                    builder = builder.header(reqwest::header::CONTENT_LENGTH, *size).body(
                        reqwest::Body::wrap_stream(upload::counted(file, progress.clone())),
                    );
                    digest(file_digest.clone())
                }
                None if api::method_has_body(method.as_str()) => {
                    digest(rai_common::httpsig::content_digest(b""))
                }
                None => None,
            };
            let mut request = builder
                .build()
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            sign::sign_tied(&mut request, &self.inner.user, &self.inner.key, tie);
            match self.inner.http.execute(request).await {
                Ok(response) => {
                    self.inner.current.store(index, Ordering::Relaxed);
                    return Ok(response);
                }
                Err(e) => {
                    tracing::debug!(gateway = %base, error = %e, "gateway unreachable; trying the next");
                    let unreachable = e.is_connect() || e.is_timeout();
                    last_error = Some(ClientError::Unreachable {
                        url: base.to_string(),
                        source: e,
                    });
                    if !unreachable {
                        break;
                    }
                }
            }
        }
        Err(last_error.expect("at least one gateway was tried"))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let response = self
            .send(method, path_and_query, body.map(RequestBody::Json), &[])
            .await?;
        response
            .json()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Who the gateway says this key belongs to.
    pub async fn whoami(&self) -> Result<WhoAmI, ClientError> {
        self.call(Method::GET, api::WHOAMI, None).await
    }

    /// Queues a signed job whose upload is done; the answer carries the gateway's `accepted_at`. Submitting is
    /// idempotent: when a retry finds the job accepted already (the answer to an earlier try was lost), the
    /// gateway's record of it is the answer.
    pub async fn submit(&self, job: &SignedJob) -> Result<Accepted, ClientError> {
        match self
            .call(Method::POST, api::JOBS, Some(job.to_bytes()))
            .await
        {
            Err(e) if e.status() == Some(reqwest::StatusCode::CONFLICT) => {
                let Some(id) = SignedJob::claimed_id(&job.to_bytes()) else {
                    return Err(e);
                };
                match self.status(&id).await {
                    Ok(JobState {
                        user: Some(user),
                        queue: Some(queue),
                        submitted_at: Some(accepted_at),
                        ..
                    }) if user == self.inner.user => Ok(Accepted {
                        job: id,
                        queue,
                        accepted_at,
                        note: None,
                    }),
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    /// A job's state.
    pub async fn status(&self, job: &JobId) -> Result<JobState, ClientError> {
        self.call(Method::GET, &api::JOB.path(job), None).await
    }

    /// The job's scores, as much of them as this user may see now.
    pub async fn results(&self, job: &JobId) -> Result<api::JobResults, ClientError> {
        self.call(Method::GET, &api::JOB_RESULTS.path(job), None)
            .await
    }

    /// Asks the job's worker to stop it.
    pub async fn cancel(&self, job: &JobId) -> Result<(), ClientError> {
        self.send(Method::POST, &api::JOB_CANCEL.path(job), None, &[])
            .await
            .map(|_| ())
    }

    /// The jobs of one of this user's sweeps, with their states, in the matrix's order.
    pub async fn sweep(&self, sweep: &JobId) -> Result<api::Sweep, ClientError> {
        self.call(Method::GET, &api::SWEEP.path(sweep), None).await
    }

    /// Asks the workers to stop every job of one of this user's sweeps; returns its jobs as they were.
    pub async fn cancel_sweep(&self, sweep: &JobId) -> Result<api::Sweep, ClientError> {
        self.call(Method::POST, &api::SWEEP_CANCEL.path(sweep), None)
            .await
    }

    /// Finished jobs of `user` (this client's user when `None`), newest first.
    pub async fn history(
        &self,
        user: Option<&str>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, ClientError> {
        self.history_of(user.map_or(Whose::Me, Whose::User), limit)
            .await
    }

    /// Finished jobs of `whose`, newest first (another user's, a team's or everyone's: staff, or the team's own).
    pub async fn history_of(
        &self,
        whose: Whose<'_>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, ClientError> {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let mut path = format!("{}?limit={limit}", api::JOBS);
        match whose {
            Whose::Me => {}
            Whose::User(u) => path.push_str(&format!("&user={}", enc(u))),
            Whose::Team(t) => path.push_str(&format!("&team={}", enc(t))),
            Whose::All => path.push_str("&all=true"),
        }
        let history: History = self.call(Method::GET, &path, None).await?;
        Ok(history.records)
    }

    /// Graded submissions: the caller's team's (staff: `team`'s, or every team's), newest first.
    pub async fn submissions(
        &self,
        assignment: Option<&str>,
        team: Option<&str>,
    ) -> Result<api::Submissions, ClientError> {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let mut query = Vec::new();
        if let Some(a) = assignment {
            query.push(format!("assignment={}", enc(a)));
        }
        if let Some(t) = team {
            query.push(format!("team={}", enc(t)));
        }
        let mut path = api::SUBMISSIONS.to_string();
        if !query.is_empty() {
            path = format!("{path}?{}", query.join("&"));
        }
        self.call(Method::GET, &path, None).await
    }

    /// Jobs, GPU-hours, failures and waits, grouped `by` (`user`, `team`, `assignment`, `day`), since a day.
    pub async fn usage(
        &self,
        by: Option<&str>,
        since: Option<&str>,
    ) -> Result<rai_common::usage::Usage, ClientError> {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let mut query = Vec::new();
        if let Some(b) = by {
            query.push(format!("by={}", enc(b)));
        }
        if let Some(s) = since {
            query.push(format!("since={}", enc(s)));
        }
        let path = if query.is_empty() {
            api::USAGE.to_string()
        } else {
            format!("{}?{}", api::USAGE, query.join("&"))
        };
        self.call(Method::GET, &path, None).await
    }

    /// Runs an assignment's submissions again with the course's build file of now (staff).
    pub async fn regrade(&self, ask: &api::RegradeRequest) -> Result<api::Regrades, ClientError> {
        let body = serde_json::to_vec(ask).expect("a regrade request serializes");
        self.call(Method::POST, api::REGRADES, Some(body)).await
    }

    /// The jobs workers gave up on (staff).
    pub async fn dead_letters(&self) -> Result<api::DeadLetters, ClientError> {
        self.call(Method::GET, api::DEAD_LETTERS, None).await
    }

    /// Sends a dead letter's job back to its queue (staff).
    pub async fn requeue_dead_letter(&self, job: &JobId) -> Result<(), ClientError> {
        let path = api::DEAD_LETTER_REQUEUE.path(job);
        self.send(Method::POST, &path, None, &[]).await.map(|_| ())
    }

    /// Ends a dead letter's job as `error` (staff).
    pub async fn drop_dead_letter(&self, job: &JobId) -> Result<(), ClientError> {
        let path = api::DEAD_LETTER_DROP.path(job);
        self.send(Method::POST, &path, None, &[]).await.map(|_| ())
    }

    /// An assignment's extensions (staff).
    pub async fn extensions(&self, assignment: &str) -> Result<api::Extensions, ClientError> {
        self.call(Method::GET, &api::EXTENSIONS.path(assignment), None)
            .await
    }

    /// Every worker's last heartbeat (staff).
    pub async fn workers(&self) -> Result<api::Workers, ClientError> {
        self.call(Method::GET, api::WORKERS, None).await
    }

    /// The datasets the course offers to jobs.
    pub async fn datasets(&self) -> Result<api::Datasets, ClientError> {
        self.call(Method::GET, api::DATASETS, None).await
    }

    /// An assignment's leaderboard, its top `n` (and the caller's team wherever it is).
    pub async fn ranking(
        &self,
        assignment: &str,
        n: usize,
    ) -> Result<api::Leaderboard, ClientError> {
        let name = url::form_urlencoded::byte_serialize(assignment.as_bytes()).collect::<String>();
        let path = format!("{}?n={n}", api::RANKING.path(&name));
        self.call(Method::GET, &path, None).await
    }

    /// A job's stored `/build` (a zstd tar), as a byte stream.
    pub async fn download(
        &self,
        job: &JobId,
    ) -> Result<impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + use<>, ClientError>
    {
        let response = self
            .send(Method::GET, &api::JOB_ARTIFACT.path(job), None, &[])
            .await?;
        let response = if response.status().is_redirection() {
            // A presigned store link: fetched plainly (it carries its own authorization).
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| ClientError::Protocol("a redirect without a Location".into()))?
                .to_string();
            let fetched = self
                .inner
                .http
                .get(&location)
                .send()
                .await
                .map_err(|source| ClientError::Unreachable {
                    url: location.clone(),
                    source,
                })?;
            refusal(fetched).await?
        } else {
            response
        };
        Ok(response.bytes_stream())
    }
}

/// A request body: small JSON (digested here), or a file whose size and digest are known already (streamed from
/// disk, read anew for each try).
pub(crate) enum RequestBody {
    Json(Vec<u8>),
    /// A batch of sealed chunks ([`rai_common::project::batch`]), in memory (shared, not copied, by a retry), and
    /// the index its signature covers.
    Chunks {
        body: bytes::Bytes,
        index: String,
    },
    File {
        path: std::path::PathBuf,
        size: u64,
        digest: String,
        progress: upload::Progress,
    },
}

/// The response, or the gateway's refusal as an error (its JSON message when it sent one).
async fn refusal(response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = response.status();
    if status.is_success() || status.is_redirection() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    let (code, message) = serde_json::from_str::<ErrorBody>(&text)
        .map(|b| (b.code, b.error))
        .unwrap_or_else(|_| {
            let text = text.trim();
            let message = if text.is_empty() {
                format!("the gateway answered {status}")
            } else {
                format!(
                    "the gateway answered {status}: {}",
                    text.chars().take(300).collect::<String>()
                )
            };
            (ErrorCode::of_status(status.as_u16()), message)
        });
    Err(ClientError::Refused {
        status,
        code,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(parse_gateway("http://127.0.0.1:8080").is_ok());
        assert!(parse_gateway("http://localhost:8080").is_ok());
        assert!(parse_gateway("http://[::1]:8080").is_ok());
        assert!(parse_gateway("https://rai.example.edu").is_ok());
        assert!(matches!(
            parse_gateway("http://rai.example.edu"),
            Err(ClientError::PlainHttp(_))
        ));
        assert!(matches!(
            parse_gateway("http://10.0.0.5:8080"),
            Err(ClientError::PlainHttp(_))
        ));
        assert!(matches!(
            parse_gateway("ftp://rai.example.edu"),
            Err(ClientError::BadGatewayUrl { .. })
        ));
    }

    /// A gateway answering 503 to an upload (its Redis restarting) gets the whole file again, not a lost job.
    #[tokio::test]
    async fn a_file_body_is_sent_again_after_a_503() {
        use std::sync::Mutex;
        use std::sync::atomic::AtomicUsize;
        let hits = Arc::new(AtomicUsize::new(0));
        let bodies: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let app = axum::Router::new().route(
            "/v1/uploads/x",
            axum::routing::put({
                let (hits, bodies) = (hits.clone(), bodies.clone());
                move |body: axum::body::Bytes| async move {
                    bodies.lock().unwrap().push(body.to_vec());
                    if hits.fetch_add(1, Ordering::SeqCst) == 0 {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        axum::http::StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upload.tar.zst");
        let bytes = vec![7u8; 300_000];
        std::fs::write(&path, &bytes).unwrap();
        let mut config = rai_common::Config::defaults().client;
        config.gateway = Some(format!("http://{addr}"));
        let client = Client::new(
            &config,
            "alice",
            rai_common::account::generate_signing_key(),
        )
        .unwrap();
        let body = RequestBody::File {
            path,
            size: bytes.len() as u64,
            digest: rai_common::httpsig::content_digest(&bytes),
            progress: Arc::new(|_| {}),
        };
        let response = client
            .send(Method::PUT, "/v1/uploads/x", Some(body), &[])
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert_eq!(*bodies.lock().unwrap(), [bytes.clone(), bytes]);
    }

    #[test]
    fn no_gateway_is_a_clear_error() {
        let config = rai_common::Config::defaults().client;
        let key = rai_common::account::generate_signing_key();
        assert!(matches!(
            Client::new(&config, "alice", key),
            Err(ClientError::NoGateway)
        ));
    }
}
