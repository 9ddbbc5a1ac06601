//! The staff dashboard's one-time login link: `rai dashboard` signs it with the staff member's own key, the gateway
//! trades it once for a session cookie.
//!
//! The link carries the user, an expiry a few minutes ahead, a random nonce and an Ed25519 signature over all three
//! and the gateway's host, so a link is good for one gateway, one use (the gateway keeps the nonce), and a short
//! time; nothing secret is stored in it beyond what a signed API request already shows. A link is a bearer token
//! while it lives: `rai dashboard` opens it in the browser rather than print it, unless asked.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use thiserror::Error;

/// The path the gateway takes login links on.
pub const LOGIN_PATH: &str = "/ui/login";

/// The longest a link may live, whatever its expiry says.
pub const MAX_LIFETIME: std::time::Duration = std::time::Duration::from_secs(300);

/// How long `rai dashboard`'s links live.
pub const LIFETIME: std::time::Duration = std::time::Duration::from_secs(120);

/// A signed login link's fields.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoginLink {
    pub user: String,
    /// Unix seconds.
    pub exp: i64,
    pub nonce: String,
    /// Base64url, no padding.
    pub sig: String,
}

/// Why a link is refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LinkError {
    #[error("the login link has expired; run `rai dashboard` again")]
    Expired,
    #[error("the login link claims to live longer than rai's links do; run `rai dashboard` again")]
    TooLong,
    #[error(
        "the login link's signature does not verify with {user}'s key; run `rai dashboard` again"
    )]
    BadSignature { user: String },
    #[error("the login link is malformed ({0}); run `rai dashboard` again")]
    Malformed(&'static str),
}

fn message(host: &str, user: &str, exp: i64, nonce: &str) -> Vec<u8> {
    format!("rai-dashboard-login\n{host}\n{user}\n{exp}\n{nonce}").into_bytes()
}

impl LoginLink {
    /// A link for `user` on the gateway at `host` (`name:port` as in the gateway's URL), valid from `now`.
    pub fn sign(key: &SigningKey, user: &str, host: &str, now: DateTime<Utc>) -> LoginLink {
        let exp = now.timestamp() + LIFETIME.as_secs() as i64;
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).expect("the OS has randomness");
        let nonce = URL_SAFE_NO_PAD.encode(random);
        let sig = key.sign(&message(host, user, exp, &nonce));
        LoginLink {
            user: user.to_string(),
            exp,
            nonce,
            sig: URL_SAFE_NO_PAD.encode(sig.to_bytes()),
        }
    }

    /// The link on `gateway` (its base URL).
    pub fn url(&self, gateway: &str) -> String {
        let enc = |s: &str| url_escape(s);
        format!(
            "{}{LOGIN_PATH}?user={}&exp={}&nonce={}&sig={}",
            gateway.trim_end_matches('/'),
            enc(&self.user),
            self.exp,
            enc(&self.nonce),
            enc(&self.sig)
        )
    }

    /// Checks the link's time and signature for the gateway at `host` (the nonce is the gateway's to check).
    pub fn verify(
        &self,
        key: &VerifyingKey,
        host: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LinkError> {
        if self.exp < now.timestamp() {
            return Err(LinkError::Expired);
        }
        if self.exp - now.timestamp() > MAX_LIFETIME.as_secs() as i64 {
            return Err(LinkError::TooLong);
        }
        if self.nonce.len() < 16 || self.nonce.len() > 64 {
            return Err(LinkError::Malformed("nonce"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(&self.sig)
            .map_err(|_| LinkError::Malformed("signature"))?;
        let sig = Signature::from_slice(&bytes).map_err(|_| LinkError::Malformed("signature"))?;
        key.verify(&message(host, &self.user, self.exp, &self.nonce), &sig)
            .map_err(|_| LinkError::BadSignature {
                user: self.user.clone(),
            })
    }
}

/// Percent-escapes everything but unreserved characters.
fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::generate_signing_key;

    #[test]
    fn a_link_verifies_once_signed_and_not_when_anything_changes() {
        let key = generate_signing_key();
        let now = Utc::now();
        let link = LoginLink::sign(&key, "ta1", "gw:8443", now);
        let public = key.verifying_key();
        assert_eq!(link.verify(&public, "gw:8443", now), Ok(()));
        assert!(
            link.url("https://gw:8443/")
                .starts_with("https://gw:8443/ui/login?user=ta1&exp=")
        );
        // Another gateway, another user, a stretched expiry, another key: each refused.
        assert!(matches!(
            link.verify(&public, "other:8443", now),
            Err(LinkError::BadSignature { .. })
        ));
        let other_user = LoginLink {
            user: "instructor".into(),
            ..link.clone()
        };
        assert!(matches!(
            other_user.verify(&public, "gw:8443", now),
            Err(LinkError::BadSignature { .. })
        ));
        let stretched = LoginLink {
            exp: link.exp + 60,
            ..link.clone()
        };
        assert!(matches!(
            stretched.verify(&public, "gw:8443", now),
            Err(LinkError::BadSignature { .. })
        ));
        assert!(matches!(
            link.verify(&generate_signing_key().verifying_key(), "gw:8443", now),
            Err(LinkError::BadSignature { .. })
        ));
        // Time: expired, or claiming too long a life.
        let later = now + chrono::Duration::seconds(LIFETIME.as_secs() as i64 + 1);
        assert_eq!(
            link.verify(&public, "gw:8443", later),
            Err(LinkError::Expired)
        );
        let early = now - chrono::Duration::seconds(600);
        assert_eq!(
            link.verify(&public, "gw:8443", early),
            Err(LinkError::TooLong)
        );
    }
}
