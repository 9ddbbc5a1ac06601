//! Encrypted configuration values for rai.
//!
//! Secrets that must sit in configuration files (the AWS keys of a course's client config, a Redis password) are
//! stored encrypted under the course's *app secret*. This crate turns plaintext into such a value and back, and knows
//! where the app secret comes from. It is deliberately small and free of heavy dependencies so that `rai-keygen`,
//! `rai-crypto` and the config loader in `rai-common` can all use it.
//!
//! # Layout
//! - [`value`]: the current format, `enc:v1:<base64url>`: AES-256-GCM with a key derived by HKDF-SHA256 from the app
//!   secret and a per-value salt. This is the only format [`encrypt`] produces.
//! - [`legacy`]: decryption (never encryption) of the original RAI tool's `==AES32==` values, for migration.
//! - [`secret`]: the app secret: where it is looked up (`-s`, `RAI_SECRET`, `~/.rai_secret`, baked in at build time)
//!   and how a strong one is generated.
//! - [`errors`]: the one error type, [`CryptoError`], whose messages are single lines meant for users.

pub mod errors;
pub mod legacy;
pub mod secret;
pub mod value;

pub use errors::CryptoError;
pub use secret::{AppSecret, SecretSource};
pub use value::{ENC_V1_PREFIX, encrypt};

/// Decrypts a value in any format this crate reads: `enc:v1:` or the legacy `==AES32==`.
///
/// A value with neither prefix is refused with [`CryptoError::UnknownFormat`] rather than passed through, so a typo
/// in a prefix can never make a ciphertext look like a plaintext.
pub fn decrypt(secret: &AppSecret, value: &str) -> Result<String, CryptoError> {
    let value = value.trim();
    if value.starts_with(ENC_V1_PREFIX) {
        value::decrypt_v1(secret, value)
    } else if value.starts_with(legacy::LEGACY_PREFIX) {
        legacy::decrypt_legacy(secret, value)
    } else if let Some(version) = value::unknown_enc_version(value) {
        Err(CryptoError::UnknownVersion(version))
    } else {
        Err(CryptoError::UnknownFormat)
    }
}

/// Whether a configuration value is encrypted (in a format [`decrypt`] understands or an `enc:` one it does not).
pub fn is_encrypted(value: &str) -> bool {
    let value = value.trim_start();
    value.starts_with("enc:") || value.starts_with(legacy::LEGACY_PREFIX)
}
