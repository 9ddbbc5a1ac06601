//! Signing each request with the student's key (RFC 9421, label `rai`): the method, path and query, and for a
//! request with a body its `Content-Digest` (a batch of chunks: its frames' index instead, `api::BATCH_INDEX`);
//! `created` is now, `nonce` is fresh, `keyid` is the username. The gateway refuses anything else (raid-server's
//! `gateway::auth`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rai_common::account::SigningKey;
use rai_common::api;
use rai_common::httpsig::{self, RequestParts, SignatureParams};
use reqwest::header::{HeaderName, HeaderValue};

/// How a request's body is tied to its signature.
pub enum BodyTie {
    /// `Content-Digest`: the SHA-256 of the whole body.
    ContentDigest(String),
    /// A batch of chunks by its frames ([`api::BATCH_INDEX`], [`rai_common::project::batch::index_digest`]): a
    /// `Content-Digest` would hash every byte once more only to be signed, and the gateway checks each chunk
    /// against its id anyway.
    BatchIndex(String),
}

/// Adds `Content-Digest` (when `digest` is given), `Signature-Input` and `Signature` to `request`.
pub fn sign(request: &mut reqwest::Request, user: &str, key: &SigningKey, digest: Option<String>) {
    sign_tied(request, user, key, digest.map(BodyTie::ContentDigest));
}

/// Adds the body's tie (when there is a body), `Signature-Input` and `Signature` to `request`.
pub fn sign_tied(
    request: &mut reqwest::Request,
    user: &str,
    key: &SigningKey,
    tie: Option<BodyTie>,
) {
    let (components, header) = match tie {
        None => (api::signed_components(false), None),
        Some(BodyTie::ContentDigest(d)) => {
            (api::signed_components(true), Some(("content-digest", d)))
        }
        Some(BodyTie::BatchIndex(i)) => {
            (api::batch_signed_components(), Some((api::BATCH_INDEX, i)))
        }
    };
    if let Some((name, value)) = &header {
        request.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("a digest is ASCII"),
        );
    }
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).expect("the operating system's random number generator failed");
    let params = SignatureParams {
        components,
        created: Some(chrono::Utc::now().timestamp()),
        keyid: Some(user.to_string()),
        nonce: Some(URL_SAFE_NO_PAD.encode(nonce)),
        alg: Some(httpsig::ALG_ED25519.into()),
    };
    let url = request.url();
    let parts = RequestParts {
        method: request.method().as_str().to_string(),
        authority: url.authority().to_string(),
        path: url.path().to_string(),
        query: url.query().unwrap_or_default().to_string(),
        headers: request
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
    };
    let signed = httpsig::sign(&parts, &params, httpsig::LABEL, key)
        .expect("the client signs only components it has");
    let headers = request.headers_mut();
    headers.insert(
        HeaderName::from_static("signature-input"),
        HeaderValue::from_str(&signed.signature_input).expect("signature params are ASCII"),
    );
    headers.insert(
        HeaderName::from_static("signature"),
        HeaderValue::from_str(&signed.signature).expect("a signature is ASCII"),
    );
}
