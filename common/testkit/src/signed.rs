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

    /// `method path` with `bytes` as its body (a chunk batch).
    pub async fn bytes(&self, method: Method, path: &str, bytes: Vec<u8>) -> Answer {
        self.send(method, path, "application/octet-stream", bytes)
            .await
    }

    /// Sends `method path` with `body`, signed now with a fresh nonce.
    async fn send(&self, method: Method, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .header("content-type", content_type)
            .build()
            .expect("a gateway URL and a route path make a URL");
        let digest = httpsig::content_digest(&body);
        request
            .headers_mut()
            .insert("content-digest", digest.parse().expect("a digest is ASCII"));
        let params = SignatureParams {
            components: api::signed_components(true),
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
            headers: vec![("content-digest".to_string(), digest)],
        };
        let signed = httpsig::sign(&parts, &params, httpsig::LABEL, &self.key)
            .expect("every component signed is present");
        let headers = request.headers_mut();
        headers.insert("signature-input", signed.signature_input.parse().unwrap());
        headers.insert("signature", signed.signature.parse().unwrap());
        *request.body_mut() = Some(body.into());
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
