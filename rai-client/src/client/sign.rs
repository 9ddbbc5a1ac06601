//! Signing each request with the student's key (RFC 9421, label `rai`): the method, path and query, and for a
//! request with a body its `Content-Digest` (a batch of chunks: its frames' index instead, `api::BATCH_INDEX`); `created` is now, `nonce` is fresh, `keyid` is the username. The
//! gateway refuses anything else (raid-server's `gateway::auth`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rai_common::account::SigningKey;
use rai_common::api;
use rai_common::httpsig::{self, RequestParts, SignatureParams};
use reqwest::header::{HeaderName, HeaderValue};

/// Adds `Content-Digest` (when `digest` is given), `Signature-Input` and `Signature` to `request`.
pub fn sign(request: &mut reqwest::Request, user: &str, key: &SigningKey, digest: Option<String>) {
    let components = api::signed_components(digest.is_some());
    sign_with(
        request,
        user,
        key,
        digest.map(|d| ("content-digest", d)),
        components,
    );
}

/// Signs a batch of chunks by its frames: `index` ([`rai_common::project::batch::index_digest`]) as
/// [`api::BATCH_INDEX`] instead of a `Content-Digest` of the whole body, which would hash every byte once more
/// only to be signed (the gateway checks each chunk against its id anyway).
pub fn sign_batch(request: &mut reqwest::Request, user: &str, key: &SigningKey, index: String) {
    let components = api::batch_signed_components();
    sign_with(
        request,
        user,
        key,
        Some((api::BATCH_INDEX, index)),
        components,
    );
}

fn sign_with(
    request: &mut reqwest::Request,
    user: &str,
    key: &SigningKey,
    tie: Option<(&'static str, String)>,
    components: Vec<String>,
) {
    if let Some((name, value)) = &tie {
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
