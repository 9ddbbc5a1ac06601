//! The `enc:v1:` value format.
//!
//! `enc:v1:` + base64url (no padding) of `salt (16) || nonce (12) || AES-256-GCM ciphertext and tag (16)`.
//! The key is HKDF-SHA256 of the app secret with the value's own salt, so no two values share a key and a
//! secret is never used as a key directly. The prefix is authenticated as associated data: a value cannot be
//! relabelled as another version. Why HKDF and not Argon2id is explained in docs/security.md.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::errors::CryptoError;
use crate::secret::{AppSecret, random_bytes};

/// The prefix of every value this crate produces.
pub const ENC_V1_PREFIX: &str = "enc:v1:";

const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HKDF_INFO: &[u8] = b"rai config value enc:v1";

fn derive_key(secret: &AppSecret, salt: &[u8]) -> Result<Aes256Gcm, CryptoError> {
    if secret.expose().is_empty() {
        return Err(CryptoError::EmptySecret);
    }
    let hk = Hkdf::<Sha256>::new(Some(salt), secret.expose().as_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    hk.expand(HKDF_INFO, key.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    Ok(Aes256Gcm::new_from_slice(key.as_ref()).expect("AES-256 takes a 32-byte key"))
}

/// Encrypts `plaintext` under `secret` as an `enc:v1:` value.
pub fn encrypt(secret: &AppSecret, plaintext: &str) -> Result<String, CryptoError> {
    let mut header = [0u8; SALT_LEN + NONCE_LEN];
    random_bytes(&mut header)?;
    let (salt, nonce) = header.split_at(SALT_LEN);
    let cipher = derive_key(secret, salt)?;
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: plaintext.as_bytes(),
                aad: ENC_V1_PREFIX.as_bytes(),
            },
        )
        .map_err(|_| CryptoError::WrongSecretOrCorrupted)?;
    let mut body = Vec::with_capacity(header.len() + sealed.len());
    body.extend_from_slice(&header);
    body.extend_from_slice(&sealed);
    Ok(format!("{ENC_V1_PREFIX}{}", URL_SAFE_NO_PAD.encode(body)))
}

/// Decrypts an `enc:v1:` value; the caller has checked the prefix.
pub(crate) fn decrypt_v1(secret: &AppSecret, value: &str) -> Result<String, CryptoError> {
    let encoded = &value[ENC_V1_PREFIX.len()..];
    let body = URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .map_err(|e| CryptoError::BadBase64(e.to_string()))?;
    let need = SALT_LEN + NONCE_LEN + TAG_LEN;
    if body.len() < need {
        return Err(CryptoError::Truncated {
            got: body.len(),
            need,
        });
    }
    let (salt, rest) = body.split_at(SALT_LEN);
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let cipher = derive_key(secret, salt)?;
    let plain = cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: ENC_V1_PREFIX.as_bytes(),
            },
        )
        .map_err(|_| CryptoError::WrongSecretOrCorrupted)?;
    String::from_utf8(plain).map_err(|_| CryptoError::NotUtf8)
}

/// For a value like `enc:v7:...`, the version label (`v7`); `None` when the value is not of the `enc:` family.
pub(crate) fn unknown_enc_version(value: &str) -> Option<String> {
    let rest = value.strip_prefix("enc:")?;
    let version: String = rest.chars().take_while(|c| *c != ':').take(16).collect();
    Some(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decrypt;

    fn secret(s: &str) -> AppSecret {
        AppSecret::new(s)
    }

    #[test]
    fn round_trip_and_fresh_salt_each_time() {
        let s = secret("course-secret");
        let a = encrypt(&s, "hello").unwrap();
        let b = encrypt(&s, "hello").unwrap();
        assert!(a.starts_with(ENC_V1_PREFIX));
        assert_ne!(a, b, "two encryptions of one plaintext must differ");
        assert_eq!(decrypt(&s, &a).unwrap(), "hello");
        assert_eq!(decrypt(&s, &b).unwrap(), "hello");
    }

    #[test]
    fn wrong_secret_is_rejected() {
        let v = encrypt(&secret("right"), "payload").unwrap();
        assert_eq!(
            decrypt(&secret("wrong"), &v),
            Err(CryptoError::WrongSecretOrCorrupted)
        );
    }

    #[test]
    fn any_flipped_byte_is_rejected() {
        let s = secret("k");
        let v = encrypt(&s, "some secret value").unwrap();
        let body = URL_SAFE_NO_PAD.decode(&v[ENC_V1_PREFIX.len()..]).unwrap();
        for i in 0..body.len() {
            let mut tampered = body.clone();
            tampered[i] ^= 0x01;
            let t = format!("{ENC_V1_PREFIX}{}", URL_SAFE_NO_PAD.encode(&tampered));
            assert_eq!(
                decrypt(&s, &t),
                Err(CryptoError::WrongSecretOrCorrupted),
                "byte {i}"
            );
        }
    }

    #[test]
    fn truncated_unknown_version_and_bad_base64() {
        let s = secret("k");
        let v = encrypt(&s, "x").unwrap();
        let short = &v[..ENC_V1_PREFIX.len() + 20];
        assert!(matches!(
            decrypt(&s, short),
            Err(CryptoError::Truncated { .. })
        ));
        assert_eq!(
            decrypt(&s, "enc:v9:abcd"),
            Err(CryptoError::UnknownVersion("v9".into()))
        );
        assert!(matches!(
            decrypt(&s, "enc:v1:not*base64!"),
            Err(CryptoError::BadBase64(_))
        ));
        assert_eq!(decrypt(&s, "plain text"), Err(CryptoError::UnknownFormat));
    }

    #[test]
    fn empty_secret_is_refused() {
        assert_eq!(encrypt(&secret(""), "x"), Err(CryptoError::EmptySecret));
    }
}
