//! The app secret: the one key of a course's deployment from which every encrypted config value's key is derived.
//!
//! It is looked up, first match wins, in: the `-s` flag, the `RAI_SECRET` environment variable, the file
//! `~/.rai_secret`, and finally a value baked into the binary at build time from the `RAI_BUILD_APP_SECRET`
//! environment variable (so a course can hand out a client that needs no secret at all; see docs/security.md for
//! what that does and does not protect).

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use crate::errors::CryptoError;

/// The secret baked in at build time, if the build set `RAI_BUILD_APP_SECRET`.
const BAKED_SECRET: Option<&str> = option_env!("RAI_BUILD_APP_SECRET");

/// Where an [`AppSecret`] came from, for messages such as "wrong app secret (from ~/.rai_secret)".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Flag,
    Environment,
    File(PathBuf),
    Baked,
    Given,
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Flag => write!(f, "the -s flag"),
            SecretSource::Environment => write!(f, "RAI_SECRET"),
            SecretSource::File(p) => write!(f, "{}", p.display()),
            SecretSource::Baked => write!(f, "the secret built into this binary"),
            SecretSource::Given => write!(f, "the caller"),
        }
    }
}

/// The app secret. Its text is zeroed on drop and never printed by `Debug`.
#[derive(Clone)]
pub struct AppSecret {
    text: Zeroizing<String>,
    source: SecretSource,
}

impl fmt::Debug for AppSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppSecret")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl AppSecret {
    /// A secret given directly (tests, or a caller that has its own source).
    pub fn new(text: impl Into<String>) -> Self {
        Self::with_source(text, SecretSource::Given)
    }

    fn with_source(text: impl Into<String>, source: SecretSource) -> Self {
        AppSecret {
            text: Zeroizing::new(text.into()),
            source,
        }
    }

    /// The secret's text.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// Where this secret came from.
    pub fn source(&self) -> &SecretSource {
        &self.source
    }

    /// Looks the secret up in the documented order. `home` is the user's home directory (for `~/.rai_secret`);
    /// `env` reads an environment variable (injected so tests do not touch the process environment).
    /// Returns `Ok(None)` when no source has one.
    pub fn resolve(
        flag: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
        home: Option<&Path>,
    ) -> Result<Option<AppSecret>, CryptoError> {
        if let Some(s) = flag {
            return Ok(Some(Self::with_source(s, SecretSource::Flag)));
        }
        if let Some(s) = env("RAI_SECRET").filter(|s| !s.is_empty()) {
            return Ok(Some(Self::with_source(s, SecretSource::Environment)));
        }
        if let Some(home) = home {
            let path = home.join(".rai_secret");
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let text = text.trim();
                    if !text.is_empty() {
                        return Ok(Some(Self::with_source(text, SecretSource::File(path))));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(CryptoError::SecretFile {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        Ok(BAKED_SECRET
            .filter(|s| !s.is_empty())
            .map(|s| Self::with_source(s, SecretSource::Baked)))
    }
}

/// Fills `buf` from the operating system's random number generator.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<(), CryptoError> {
    getrandom::fill(buf).map_err(|e| CryptoError::Random(e.to_string()))
}

/// A new strong secret: 256 random bits, base64url without padding (43 characters).
pub fn generate_secret() -> Result<String, CryptoError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    random_bytes(bytes.as_mut())?;
    Ok(URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_256_bits_and_distinct() {
        let a = generate_secret().unwrap();
        let b = generate_secret().unwrap();
        assert_eq!(a.len(), 43);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn lookup_order_is_flag_env_file() {
        let dir = std::env::temp_dir().join(format!("rai-secret-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(".rai_secret"), "from-file\n").unwrap();
        let env_with = |k: &str| (k == "RAI_SECRET").then(|| "from-env".to_string());
        let env_without = |_: &str| None;

        let s = AppSecret::resolve(Some("from-flag"), env_with, Some(&dir))
            .unwrap()
            .unwrap();
        assert_eq!((s.expose(), s.source()), ("from-flag", &SecretSource::Flag));
        let s = AppSecret::resolve(None, env_with, Some(&dir))
            .unwrap()
            .unwrap();
        assert_eq!(s.expose(), "from-env");
        let s = AppSecret::resolve(None, env_without, Some(&dir))
            .unwrap()
            .unwrap();
        assert_eq!(s.expose(), "from-file");
        assert!(matches!(s.source(), SecretSource::File(_)));
        std::fs::remove_dir_all(&dir).unwrap();
        if BAKED_SECRET.is_none() {
            assert!(
                AppSecret::resolve(None, env_without, Some(&dir))
                    .unwrap()
                    .is_none()
            );
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let s = AppSecret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
