//! Requests to a gateway signed by hand with a student's key, as anyone holding that key could send them: signed
//! as `rai` signs them (RFC 9421, label `rai`), with none of the client's checks in between. The hostile catalogue
//! sends its forged manifests and chunk batches this way. Tests of `rai` itself use the client library in
//! rai-client's own tests; the test kit does not link the client, so it sits below everything it tests.

use rai_common::JobId;
use rai_common::account::SigningKey;
use rai_common::api::{self, ErrorBody};
use rai_common::httpsig::{self, RequestParts, SignatureParams};
use reqwest::Method;

/// One student's signed requests to one gateway.
pub struct SignedHttp {
    pub(crate) http: reqwest::Client,
    /// `https://host:port` of the gateway.
    pub(crate) url: String,
    pub(crate) user: String,
    pub(crate) key: SigningKey,
}

/// What the gateway answered.
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub body: Vec<u8>,
}

impl Answer {
    /// What a person reads: the refusal's message (the `error` of its [`ErrorBody`]), or the status alone.
    pub fn said(&self) -> String {
        if self.status.is_success() {
            return format!("{}", self.status);
        }
        match serde_json::from_slice::<ErrorBody>(&self.body) {
            Ok(body) => body.error,
            Err(_) => format!("{}: {}", self.status, String::from_utf8_lossy(&self.body)),
        }
    }

    /// The body as `T`; panics (a failed test) if the gateway answered otherwise.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the gateway's answer ({}) is not what was expected: {e}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

impl SignedHttp {
    /// `method path` with `value` as its JSON body.
    pub async fn json(&self, method: Method, path: &str, value: &impl serde::Serialize) -> Answer {
        let body = serde_json::to_vec(value).expect("a value the API takes is JSON");
        self.send(method, path, "application/json", body).await
    }

    /// `method path` with `bytes` as its body, tied to the signature by its whole `Content-Digest` (a chunk batch
    /// as clients before `api::BATCH_INDEX` send it).
    pub async fn bytes(&self, method: Method, path: &str, bytes: Vec<u8>) -> Answer {
        self.send(method, path, "application/octet-stream", bytes)
            .await
    }

    /// `PUT path` with a chunk batch `body`, tied to the signature by `index` as `api::BATCH_INDEX` (as `rai`
    /// sends a batch); `index` need not be the body's.
    pub async fn batch(&self, path: &str, body: Vec<u8>, index: String) -> Answer {
        let tie = (api::BATCH_INDEX, index);
        let components = api::batch_signed_components();
        self.send_tied(
            Method::PUT,
            path,
            "application/octet-stream",
            body,
            tie,
            components,
        )
        .await
    }

    /// `PUT path` with `sent` as its body, signed with the `Content-Digest` of `signed` (a body changed on the way),
    /// with `unsigned` headers added after signing.
    pub async fn bytes_signed_for(
        &self,
        path: &str,
        signed: &[u8],
        sent: Vec<u8>,
        unsigned: &[(&str, String)],
    ) -> Answer {
        let tie = ("content-digest", httpsig::content_digest(signed));
        let components = api::signed_components(true);
        let mut request = self.request_tied(
            Method::PUT,
            path,
            "application/octet-stream",
            sent,
            tie,
            components,
        );
        for (name, value) in unsigned {
            request.headers_mut().insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                value.parse().expect("an ASCII value"),
            );
        }
        self.execute(request).await
    }

    /// Sends `method path` with `body`, signed now with a fresh nonce.
    async fn send(&self, method: Method, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
        let tie = ("content-digest", httpsig::content_digest(&body));
        let components = api::signed_components(true);
        self.send_tied(method, path, content_type, body, tie, components)
            .await
    }

    /// Sends `method path` with `body` and the header `tie` (a digest), signed over `components` now with a fresh
    /// nonce.
    async fn send_tied(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        tie: (&str, String),
        components: Vec<String>,
    ) -> Answer {
        let request = self.request_tied(method, path, content_type, body, tie, components);
        self.execute(request).await
    }

    /// The request [`Self::send_tied`] sends.
    fn request_tied(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        (tie, digest): (&str, String),
        components: Vec<String>,
    ) -> reqwest::Request {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .header("content-type", content_type)
            .build()
            .expect("a gateway URL and a route path make a URL");
        request.headers_mut().insert(
            reqwest::header::HeaderName::from_bytes(tie.as_bytes()).expect("a header name"),
            digest.parse().expect("a digest is ASCII"),
        );
        let params = SignatureParams {
            components,
            created: Some(chrono::Utc::now().timestamp()),
            keyid: Some(self.user.clone()),
            // A ULID: 26 characters, unique, past the gateway's least.
            nonce: Some(JobId::new().to_string()),
            alg: Some(httpsig::ALG_ED25519.into()),
        };
        let parts = RequestParts {
            method: method.as_str().into(),
            authority: request.url().authority().into(),
            path: request.url().path().into(),
            query: request.url().query().unwrap_or_default().into(),
            headers: vec![(tie.to_string(), digest)],
        };
        let signed = httpsig::sign(&parts, &params, httpsig::LABEL, &self.key)
            .expect("every component signed is present");
        let headers = request.headers_mut();
        headers.insert("signature-input", signed.signature_input.parse().unwrap());
        headers.insert("signature", signed.signature.parse().unwrap());
        *request.body_mut() = Some(body.into());
        request
    }

    async fn execute(&self, request: reqwest::Request) -> Answer {
        let answer = self
            .http
            .execute(request)
            .await
            .expect("the gateway answers");
        Answer {
            status: answer.status(),
            body: answer.bytes().await.expect("the answer's body").to_vec(),
        }
    }
}
