//! Decryption of the original RAI tool's `==AES32==` values, so that old course configs can be migrated.
//!
//! The old format, byte for byte: `"==AES32==" + base64(X)`, where `X = "==AES32==" + IV (16 random bytes) +
//! AES-256-CFB(base64(plaintext))` with 128-bit feedback and the IV as the initial vector. The key is the secret's
//! bytes right-padded with `=` to 32 bytes (a longer secret is cut to 32). Older values carry `X` without its own
//! `==AES32==` prefix, and the oldest put `X` itself (not base64) after the outer prefix.
//!
//! CFB has no authentication, so a wrong secret is detected only because the decrypted bytes are not the base64 text
//! the format promises. Nothing here produces such values: rai writes only `enc:v1:`.

use aes::Aes256;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use cfb_mode::cipher::{AsyncStreamCipher, KeyIvInit};
use zeroize::Zeroizing;

use crate::errors::CryptoError;
use crate::secret::AppSecret;

/// The prefix of legacy values (outer and, in newer ones, inner).
pub const LEGACY_PREFIX: &str = "==AES32==";
const IV_LEN: usize = 16;

/// The legacy key: the secret's bytes right-padded with `=` to 32 bytes.
pub fn legacy_key(secret: &AppSecret) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([b'='; 32]);
    let bytes = secret.expose().as_bytes();
    let n = bytes.len().min(32);
    key[..n].copy_from_slice(&bytes[..n]);
    key
}

fn decode_any_base64(text: &[u8]) -> Option<Vec<u8>> {
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

/// Decrypts a `==AES32==` value; the caller has checked the prefix.
pub(crate) fn decrypt_legacy(secret: &AppSecret, value: &str) -> Result<String, CryptoError> {
    decrypt_legacy_bytes(secret, value.as_bytes())
}

/// Decrypts a legacy value given as bytes: the oldest values put raw ciphertext after the prefix, which is not always
/// valid text.
pub fn decrypt_legacy_bytes(secret: &AppSecret, value: &[u8]) -> Result<String, CryptoError> {
    if secret.expose().is_empty() {
        return Err(CryptoError::EmptySecret);
    }
    let after = value
        .strip_prefix(LEGACY_PREFIX.as_bytes())
        .ok_or(CryptoError::UnknownFormat)?;
    // Newer values base64 the whole of X; the oldest wrote X itself after the prefix.
    let x = decode_any_base64(after).unwrap_or_else(|| after.to_vec());
    let x = x
        .strip_prefix(LEGACY_PREFIX.as_bytes())
        .map(<[u8]>::to_vec)
        .unwrap_or(x);
    if x.len() < IV_LEN {
        return Err(CryptoError::Truncated {
            got: x.len(),
            need: IV_LEN,
        });
    }
    let (iv, ciphertext) = x.split_at(IV_LEN);
    let key = legacy_key(secret);
    let mut buf = ciphertext.to_vec();
    cfb_mode::Decryptor::<Aes256>::new(key.as_ref().into(), iv.into()).decrypt(&mut buf);
    // A wrong key yields bytes that are not base64 text: that is the only check the old format allows.
    let plain = decode_any_base64(&buf).ok_or(CryptoError::WrongSecretOrCorrupted)?;
    String::from_utf8(plain).map_err(|_| CryptoError::WrongSecretOrCorrupted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decrypt;
    use cfb_mode::cipher::AsyncStreamCipher;

    /// The original tool's encryption, written here from its description and used only to make test vectors.
    fn legacy_encrypt(secret: &str, plaintext: &str, iv: [u8; 16], inner_prefix: bool) -> Vec<u8> {
        let key = legacy_key(&AppSecret::new(secret));
        let mut buf = STANDARD.encode(plaintext).into_bytes();
        cfb_mode::Encryptor::<Aes256>::new(key.as_ref().into(), (&iv).into()).encrypt(&mut buf);
        let mut x = Vec::new();
        if inner_prefix {
            x.extend_from_slice(LEGACY_PREFIX.as_bytes());
        }
        x.extend_from_slice(&iv);
        x.extend_from_slice(&buf);
        x
    }

    #[test]
    fn current_legacy_values_decrypt() {
        let x = legacy_encrypt("rai-secret", "AKIAIOSFODNN7EXAMPLE", [7; 16], true);
        let value = format!("{LEGACY_PREFIX}{}", STANDARD.encode(&x));
        let s = AppSecret::new("rai-secret");
        assert_eq!(decrypt(&s, &value).unwrap(), "AKIAIOSFODNN7EXAMPLE");
    }

    #[test]
    fn older_values_without_inner_prefix_decrypt() {
        let x = legacy_encrypt("short", "wJalrXUtnFEMI/K7MDENG", [42; 16], false);
        let value = format!("{LEGACY_PREFIX}{}", STANDARD.encode(&x));
        assert_eq!(
            decrypt(&AppSecret::new("short"), &value).unwrap(),
            "wJalrXUtnFEMI/K7MDENG"
        );
    }

    #[test]
    fn oldest_values_with_raw_x_decrypt() {
        // An IV with bytes that are not base64 text keeps the raw form from parsing as base64.
        let x = legacy_encrypt("raw-secret", "bucket-name", [0xff; 16], false);
        let mut value = LEGACY_PREFIX.as_bytes().to_vec();
        value.extend_from_slice(&x);
        assert!(decode_any_base64(&value[LEGACY_PREFIX.len()..]).is_none());
        let s = AppSecret::new("raw-secret");
        assert_eq!(decrypt_legacy_bytes(&s, &value).unwrap(), "bucket-name");
    }

    #[test]
    fn long_secrets_are_cut_to_32_bytes() {
        let long = "0123456789abcdef0123456789abcdefEXTRA";
        let x = legacy_encrypt(long, "v", [1; 16], true);
        let value = format!("{LEGACY_PREFIX}{}", STANDARD.encode(&x));
        assert_eq!(decrypt(&AppSecret::new(long), &value).unwrap(), "v");
    }

    #[test]
    fn wrong_secret_is_detected() {
        let x = legacy_encrypt("right", "some longer plaintext value here", [3; 16], true);
        let value = format!("{LEGACY_PREFIX}{}", STANDARD.encode(&x));
        assert_eq!(
            decrypt(&AppSecret::new("wrong"), &value),
            Err(CryptoError::WrongSecretOrCorrupted)
        );
    }

    #[test]
    fn truncated_value_is_reported() {
        let value = format!("{LEGACY_PREFIX}{}", STANDARD.encode(b"short"));
        assert!(matches!(
            decrypt(&AppSecret::new("k"), &value),
            Err(CryptoError::Truncated { .. })
        ));
    }
}
