//! Who is asking: every API request carries an RFC 9421 signature (label `rai`) made with the student's Ed25519
//! key, its `keyid` the username. The [`Caller`] extractor checks, in order, that the signature is there and covers
//! what [`api::signed_components`] demands, that it was made within `gateway.clock_skew` of the gateway's clock,
//! that its user is in the registry and not revoked, that it verifies with that user's key, and that its nonce was
//! not seen within the window (a replay). Each failure is its own 401 with what to do.
//!
//! A body is tied to the signature by its `Content-Digest` header, which the signature covers; [`SignedJson`]
//! checks that the body matches it, and the upload stream checks it while it streams. A batch of chunks may be tied
//! by its frames' index instead (`api::BATCH_INDEX`), which the chunks route checks. A digest header the signature
//! does not cover is removed before any handler runs.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use rai_common::account::{Account, Role};
use rai_common::api;
use rai_common::httpsig::{self, ReceivedSignature, RequestParts};
use serde::de::DeserializeOwned;

use crate::{ApiError, Gateway};

/// The authenticated user of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: String,
    pub team: String,
    pub role: Role,
}

impl Caller {
    /// Course staff (ta, instructor, admin) read and cancel every job.
    pub fn is_staff(&self) -> bool {
        !matches!(self.role, Role::Student)
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The parts of a request a signature can cover.
fn request_parts(parts: &Parts) -> RequestParts {
    RequestParts {
        method: parts.method.as_str().to_string(),
        authority: parts
            .uri
            .authority()
            .map(|a| a.to_string())
            .or_else(|| header(&parts.headers, "host").map(str::to_string))
            .unwrap_or_default(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers: parts
            .headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
    }
}

impl FromRequestParts<Arc<Gateway>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        gateway: &Arc<Gateway>,
    ) -> Result<Caller, ApiError> {
        let account = authenticate(parts, gateway).await.inspect_err(|e| {
            tracing::info!(path = %parts.uri.path(), reason = %e.message, "refused an unauthenticated request");
        })?;
        Ok(Caller {
            user: account.username,
            team: account.team,
            role: account.role,
        })
    }
}

/// The longest `Signature-Input` or `Signature` header read: `rai`'s are under 300 bytes.
const MAX_SIGNATURE_HEADER: usize = 2048;

/// The longest nonce kept: `rai` sends 22 characters (16 random bytes). Every nonce is stored in Redis for twice
/// the clock skew, so an unbounded one would let a student fill Redis with a few large requests (issue 26).
const MAX_NONCE: usize = 64;

/// A nonce `rai` could have made: base64url, 16 to [`MAX_NONCE`] characters.
fn nonce_ok(nonce: &str) -> bool {
    (16..=MAX_NONCE).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn authenticate(parts: &mut Parts, gateway: &Gateway) -> Result<Account, ApiError> {
    let (Some(input), Some(signature)) = (
        header(&parts.headers, "signature-input"),
        header(&parts.headers, "signature"),
    ) else {
        return Err(ApiError::unauthorized(
            "the request is not signed; use `rai` 2.0 or newer, with your profile in ~/.rai_profile",
        ));
    };
    if input.len() > MAX_SIGNATURE_HEADER || signature.len() > MAX_SIGNATURE_HEADER {
        return Err(ApiError::unauthorized(format!(
            "the request's signature headers are longer than {MAX_SIGNATURE_HEADER} bytes; sign it with `rai`"
        )));
    }
    let received = ReceivedSignature::parse(input, signature, httpsig::LABEL).map_err(|e| {
        ApiError::unauthorized(format!("the request's signature is unreadable: {e}"))
    })?;
    let params = &received.params;
    let has_body = api::method_has_body(parts.method.as_str());
    // The route the router matched (the batch route takes a batch's index in place of its Content-Digest).
    let route = parts.extensions.get::<axum::extract::MatchedPath>();
    let by_index = has_body
        && parts.method == axum::http::Method::PUT
        && route.is_some_and(|r| r.as_str() == api::PROJECT_CHUNKS.template())
        && params.components.iter().any(|c| c == api::BATCH_INDEX);
    let needed = if by_index {
        api::batch_signed_components()
    } else {
        api::signed_components(has_body)
    };
    if let Some(missing) = needed.iter().find(|c| !params.components.contains(c)) {
        return Err(ApiError::unauthorized(format!(
            "the request's signature does not cover \"{missing}\"; upgrade rai"
        )));
    }
    let (Some(created), Some(nonce), Some(user)) = (params.created, &params.nonce, &params.keyid)
    else {
        return Err(ApiError::unauthorized(
            "the request's signature lacks created, nonce or keyid; upgrade rai",
        ));
    };
    if !nonce_ok(nonce) {
        return Err(ApiError::unauthorized(format!(
            "the request's nonce is not 16 to {MAX_NONCE} base64url characters; sign it with `rai`"
        )));
    }
    let skew = gateway.config.gateway.clock_skew.as_duration().as_secs() as i64;
    let now = chrono::Utc::now().timestamp();
    if created < now - skew {
        return Err(ApiError::unauthorized(format!(
            "the request was signed {}s ago, more than the {skew}s allowed; check your computer's clock (or a proxy held it)",
            now - created
        )));
    }
    if created > now + skew {
        return Err(ApiError::unauthorized(format!(
            "the request was signed {}s in the future, more than the {skew}s allowed; check your computer's clock",
            created - now
        )));
    }
    let registry = gateway.registry.current();
    let account = registry.get(user).ok_or_else(|| {
        ApiError::unauthorized(format!(
            "unknown user \"{user}\": not in the course's account registry; ask your instructor for an account"
        ))
    })?;
    if let Some(at) = account.revoked {
        return Err(ApiError::unauthorized(format!(
            "user \"{user}\" was revoked on {}; ask your instructor",
            at.format("%Y-%m-%d %H:%M UTC")
        )));
    }
    let key = account
        .verifying_key()
        .map_err(|e| ApiError::unauthorized(e.to_string()))?;
    received
        .verify(&request_parts(parts), &key)
        .map_err(|e| ApiError::unauthorized(format!(
            "bad signature: the request was not signed by user \"{user}\"'s key ({e}); check that ~/.rai_profile is the one your instructor sent"
        )))?;
    // A body is checked against whichever of its digests the signature covers: one it does not cover is dropped
    // here, so no handler can take an unsigned digest for the signed one.
    for tie in ["content-digest", api::BATCH_INDEX] {
        if !params.components.iter().any(|c| c == tie) {
            parts.headers.remove(tie);
        }
    }
    // Only a verified request may spend a nonce, so nobody can burn another student's nonces.
    let first = gateway
        .bus
        .first_use_of_nonce(
            user,
            nonce,
            gateway.config.gateway.clock_skew.as_duration() * 2,
        )
        .await
        .map_err(|e| ApiError::unavailable("check the request's nonce", e))?;
    if !first {
        return Err(ApiError::unauthorized(
            "this request was already made once (a replayed nonce); send a new request",
        ));
    }
    Ok(account.clone())
}

/// A JSON body whose bytes match the signed `Content-Digest`.
pub struct SignedJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<Gateway>> for SignedJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, gateway: &Arc<Gateway>) -> Result<Self, ApiError> {
        let digest = header(req.headers(), "content-digest").map(str::to_string);
        let bytes = axum::body::Bytes::from_request(req, gateway)
            .await
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        e.status(),
                        "the request's body is larger than the gateway takes on this route; send less \
                         (for a project: add what the job does not need to .raiignore)",
                    )
                } else {
                    ApiError::new(e.status(), e.body_text())
                }
            })?;
        if digest.as_deref() != Some(httpsig::content_digest(&bytes).as_str()) {
            return Err(ApiError::unauthorized(
                "the request's body does not match its signed Content-Digest (changed on the way?)",
            ));
        }
        serde_json::from_slice(&bytes).map(SignedJson).map_err(|e| {
            ApiError::bad_request(format!(
                "the request's body is not what the API expects: {e}"
            ))
        })
    }
}
