//! Errors of the crypto crate. Each message is one line that says what went wrong and, where it can, what to do;
//! none of them echoes key material or plaintext.

use thiserror::Error;

/// Why a value could not be encrypted or decrypted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// Authentication failed: the secret is not the one the value was made with, or the value was altered.
    #[error("wrong app secret or corrupted value")]
    WrongSecretOrCorrupted,
    /// The value is shorter than its format's fixed parts (salt, nonce, tag).
    #[error("the value is truncated ({got} bytes after decoding, at least {need} expected)")]
    Truncated { got: usize, need: usize },
    /// `enc:vN:` with a version this build does not know.
    #[error(
        "unknown encrypted value version \"{0}\" (this build reads enc:v1 and legacy ==AES32==); upgrade rai"
    )]
    UnknownVersion(String),
    /// Neither `enc:` nor `==AES32==`.
    #[error("not an encrypted value (expected it to start with \"enc:v1:\" or \"==AES32==\")")]
    UnknownFormat,
    /// The body is not valid base64.
    #[error("the value is not valid base64: {0}")]
    BadBase64(String),
    /// The plaintext is not UTF-8 (configuration values are text).
    #[error("the decrypted value is not UTF-8 text")]
    NotUtf8,
    /// An empty secret would make every value decryptable by anyone.
    #[error(
        "the app secret is empty; pass -s SECRET, set RAI_SECRET, or write it to ~/.rai_secret"
    )]
    EmptySecret,
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(String),
    /// Reading a secret file failed.
    #[error("cannot read the app secret from {path}: {reason}")]
    SecretFile { path: String, reason: String },
}
