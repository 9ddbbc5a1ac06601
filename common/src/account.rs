//! Accounts: the student's profile (`~/.rai_profile`, holding a private key) and the account registry (every
//! user's public key, team, role and revocation, read by every worker).
//!
//! The profile keeps the 2017 YAML shape under `profile:`, so the old file name and layout still work; its
//! `secret_key` is now an Ed25519 private key (base64url of the 32-byte seed) and `access_key` the matching public
//! key. The registry holds public keys only: leaking it lets nobody sign a job.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
pub use ed25519_dalek::SigningKey;
pub use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::errors::AccountError;
use crate::yaml::{self, Limits, quote};

/// What a user may do. Only students' jobs are bound by per-user quotas (later); all roles may submit.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Student,
    Ta,
    Instructor,
    Admin,
}

impl Role {
    pub const NAMES: &'static [&'static str] = &["student", "ta", "instructor", "admin"];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Ta => "ta",
            Role::Instructor => "instructor",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "student" => Ok(Role::Student),
            "ta" => Ok(Role::Ta),
            "instructor" => Ok(Role::Instructor),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role \"{other}\" (expected one of {})",
                Role::NAMES.join(", ")
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `team: {name: ...}` as in the 2017 profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    #[serde(default)]
    pub name: String,
}

/// A student's (or any user's) credentials and identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default)]
    pub firstname: String,
    #[serde(default)]
    pub lastname: String,
    pub username: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub affiliation: String,
    #[serde(default)]
    pub team: Team,
    #[serde(default = "default_role")]
    pub role: Role,
    /// The public key, base64url.
    pub access_key: String,
    /// The private key (Ed25519 seed), base64url.
    pub secret_key: String,
    /// The 2017 client's Docker Hub credentials (for pushing built images): read and ignored, so old profiles load;
    /// [`Profile::ignored_keys`] names it for a warning.
    #[serde(default, skip_serializing, deserialize_with = "present")]
    pub dockerhub: bool,
}

/// Reads any value and says it was there.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

fn default_role() -> Role {
    Role::Student
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    profile: Profile,
}

/// A new Ed25519 key pair from the operating system's random number generator.
pub fn generate_signing_key() -> SigningKey {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).expect("the operating system's random number generator failed");
    SigningKey::from_bytes(&seed)
}

/// The text form of a public key.
pub fn encode_public_key(key: &VerifyingKey) -> String {
    URL_SAFE_NO_PAD.encode(key.as_bytes())
}

/// Reads a public key from its text form.
pub fn decode_public_key(text: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = URL_SAFE_NO_PAD.decode(text.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// The first line of a gateway attestation key file, so a profile or a public key is never mistaken for one.
const GATEWAY_KEY_HEADER: &str =
    "# rai gateway attestation key (private: keep it readable by raid only)";

/// A gateway attestation key file's text: a header, then the private key.
pub fn gateway_key_file(key: &SigningKey) -> String {
    format!(
        "{GATEWAY_KEY_HEADER}\n# public key: {}\n{}\n",
        encode_public_key(&key.verifying_key()),
        URL_SAFE_NO_PAD.encode(key.to_bytes())
    )
}

/// Reads a gateway attestation key file made by [`gateway_key_file`].
pub fn load_gateway_key(path: &Path) -> Result<SigningKey, AccountError> {
    let text = std::fs::read_to_string(path).map_err(|source| AccountError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = || AccountError::BadGatewayKey(path.to_path_buf());
    if text.lines().next() != Some(GATEWAY_KEY_HEADER) {
        return Err(bad());
    }
    let line = text
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .ok_or_else(bad)?;
    let seed: [u8; 32] = URL_SAFE_NO_PAD
        .decode(line.trim())
        .map_err(|_| bad())?
        .try_into()
        .map_err(|_| bad())?;
    Ok(SigningKey::from_bytes(&seed))
}

impl Profile {
    /// A profile for a new key pair.
    pub fn new(key: &SigningKey, username: &str) -> Profile {
        Profile {
            firstname: String::new(),
            lastname: String::new(),
            username: username.to_string(),
            email: String::new(),
            affiliation: String::new(),
            team: Team::default(),
            role: Role::Student,
            access_key: encode_public_key(&key.verifying_key()),
            secret_key: URL_SAFE_NO_PAD.encode(key.to_bytes()),
            dockerhub: false,
        }
    }

    /// Reads a profile's text; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Profile, AccountError> {
        let file: ProfileFile = yaml::from_str(text, source, &Limits::SMALL)?;
        let p = file.profile;
        if p.username.trim().is_empty() {
            let mut e = yaml::YamlError::new("the username is empty").in_source(source);
            e.path = "profile.username".into();
            return Err(AccountError::Invalid(e));
        }
        p.signing_key(source)?;
        Ok(p)
    }

    /// The keys of the 2017 profile this profile holds that rai reads but ignores, for a warning.
    pub fn ignored_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.dockerhub {
            keys.push("dockerhub");
        }
        keys
    }

    /// Reads the profile at `path`, with the "ask your instructor" error when it is missing.
    pub fn load(path: &Path) -> Result<Profile, AccountError> {
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => AccountError::NoProfile(path.to_path_buf()),
            _ => AccountError::Read {
                path: path.to_path_buf(),
                source: e,
            },
        })?;
        Profile::parse(&text, &path.display().to_string())
    }

    /// The private key. `source` names the profile in the error.
    pub fn signing_key(&self, source: &str) -> Result<SigningKey, AccountError> {
        let bad = || AccountError::BadSecretKey(source.to_string());
        let seed: [u8; 32] = URL_SAFE_NO_PAD
            .decode(self.secret_key.trim())
            .map_err(|_| bad())?
            .try_into()
            .map_err(|_| bad())?;
        let key = SigningKey::from_bytes(&seed);
        if encode_public_key(&key.verifying_key()) != self.access_key.trim() {
            return Err(bad());
        }
        Ok(key)
    }

    /// The profile as YAML, in the 2017 layout.
    pub fn to_yaml(&self) -> String {
        format!(
            "profile:\n  firstname: {}\n  lastname: {}\n  username: {}\n  email: {}\n  affiliation: {}\n  team:\n    name: {}\n  role: {}\n  access_key: {}\n  secret_key: {}\n",
            quote(&self.firstname),
            quote(&self.lastname),
            quote(&self.username),
            quote(&self.email),
            quote(&self.affiliation),
            quote(&self.team.name),
            self.role,
            quote(&self.access_key),
            quote(&self.secret_key),
        )
    }
}

/// One user in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub username: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub team: String,
    pub role: Role,
    pub public_key: String,
    pub created: DateTime<Utc>,
    #[serde(default)]
    pub revoked: Option<DateTime<Utc>>,
}

impl Account {
    pub fn verifying_key(&self) -> Result<VerifyingKey, AccountError> {
        decode_public_key(&self.public_key)
            .ok_or_else(|| AccountError::BadPublicKey(self.username.clone()))
    }
}

/// The account registry: who may submit jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    #[serde(default)]
    pub users: Vec<Account>,
}

/// A registry can hold a whole university; these bounds still stop a hostile file.
const REGISTRY_LIMITS: Limits = Limits {
    max_bytes: 64 << 20,
    max_depth: 8,
    max_nodes: 4_000_000,
};

impl Registry {
    /// Reads a registry's text; `source` names it in errors. Duplicate users and bad public keys are errors.
    pub fn parse(text: &str, source: &str) -> Result<Registry, AccountError> {
        let reg: Registry = if text.trim().is_empty() {
            Registry::default()
        } else {
            yaml::from_str(text, source, &REGISTRY_LIMITS)?
        };
        let mut seen = std::collections::HashSet::new();
        for a in &reg.users {
            if !seen.insert(a.username.as_str()) {
                return Err(AccountError::DuplicateUser(a.username.clone()));
            }
            a.verifying_key()?;
        }
        Ok(reg)
    }

    /// Reads the registry at `path`; a missing file is an empty registry.
    pub fn load(path: &Path) -> Result<Registry, AccountError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Registry::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registry::default()),
            Err(e) => Err(AccountError::Read {
                path: path.to_path_buf(),
                source: e,
            }),
        }
    }

    pub fn get(&self, username: &str) -> Option<&Account> {
        self.users.iter().find(|a| a.username == username)
    }

    pub fn get_mut(&mut self, username: &str) -> Option<&mut Account> {
        self.users.iter_mut().find(|a| a.username == username)
    }

    /// The registry as YAML, one block per user, every string quoted.
    pub fn to_yaml(&self) -> String {
        let mut out = String::with_capacity(64 + self.users.len() * 256);
        out.push_str("# rai account registry: written by rai-keygen; public keys only.\n");
        if self.users.is_empty() {
            out.push_str("users: []\n");
            return out;
        }
        out.push_str("users:\n");
        for a in &self.users {
            out.push_str(&format!(
                "  - username: {}\n    email: {}\n    team: {}\n    role: {}\n    public_key: {}\n    created: {}\n    revoked: {}\n",
                quote(&a.username),
                quote(&a.email),
                quote(&a.team),
                a.role,
                quote(&a.public_key),
                quote(&a.created.to_rfc3339()),
                a.revoked.map_or_else(|| "null".to_string(), |t| quote(&t.to_rfc3339())),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_key_file_round_trips_and_nothing_else_reads_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate_signing_key();
        let path = dir.path().join("gateway.key");
        std::fs::write(&path, gateway_key_file(&key)).unwrap();
        assert_eq!(load_gateway_key(&path).unwrap().to_bytes(), key.to_bytes());
        // A profile, or a bare public key, is refused with what to do.
        std::fs::write(&path, Profile::new(&key, "jdoe").to_yaml()).unwrap();
        let err = load_gateway_key(&path).unwrap_err().to_string();
        assert!(err.contains("rai-keygen gateway-key"), "{err}");
        std::fs::write(&path, encode_public_key(&key.verifying_key())).unwrap();
        assert!(matches!(
            load_gateway_key(&path),
            Err(AccountError::BadGatewayKey(_))
        ));
    }

    #[test]
    fn profile_round_trips_through_yaml() {
        let key = generate_signing_key();
        let mut p = Profile::new(&key, "alice");
        p.firstname = "Alice \"Al\"".into();
        p.team.name = "team: 1".into();
        let back = Profile::parse(&p.to_yaml(), "p").unwrap();
        assert_eq!(back, p);
        assert_eq!(back.signing_key("p").unwrap().to_bytes(), key.to_bytes());
    }

    #[test]
    fn mismatched_keys_are_refused() {
        let mut p = Profile::new(&generate_signing_key(), "bob");
        p.access_key = encode_public_key(&generate_signing_key().verifying_key());
        let e = Profile::parse(&p.to_yaml(), "~/.rai_profile").unwrap_err();
        assert!(e.to_string().contains("not an Ed25519 key"), "{e}");
    }

    #[test]
    fn old_style_profile_gets_a_clear_error() {
        let text = "profile:\n  firstname: A\n  lastname: B\n  username: ab\n  email: a@b.c\n  access_key: AKIAXXXX\n  secret_key: abcdefghij\n  affiliation: uni\n  team:\n    name: t\n";
        let e = Profile::parse(text, "~/.rai_profile").unwrap_err();
        assert!(
            e.to_string()
                .contains("ask your instructor for a new profile"),
            "{e}"
        );
    }

    #[test]
    fn registry_round_trips_and_refuses_duplicates() {
        let k = generate_signing_key();
        let acct = Account {
            username: "carol".into(),
            email: "c@x.edu".into(),
            team: "t1".into(),
            role: Role::Ta,
            public_key: encode_public_key(&k.verifying_key()),
            created: Utc::now(),
            revoked: None,
        };
        let reg = Registry {
            users: vec![acct.clone()],
        };
        let back = Registry::parse(&reg.to_yaml(), "r").unwrap();
        assert_eq!(back.get("carol").unwrap().public_key, acct.public_key);
        let dup = Registry {
            users: vec![acct.clone(), acct],
        };
        assert!(matches!(
            Registry::parse(&dup.to_yaml(), "r"),
            Err(AccountError::DuplicateUser(_))
        ));
        assert_eq!(
            Registry::parse(&Registry::default().to_yaml(), "r").unwrap(),
            Registry::default()
        );
    }

    #[test]
    fn a_2017_profile_with_dockerhub_credentials_loads() {
        let key = generate_signing_key();
        let mut text = Profile::new(&key, "jdoe").to_yaml();
        text.push_str("  dockerhub:\n    username: jdoe\n    password: ==AES32==c2VjcmV0\n");
        let p = Profile::parse(&text, "p").unwrap();
        assert_eq!(p.ignored_keys(), ["dockerhub"]);
        assert!(!p.to_yaml().contains("dockerhub"), "never written back");
        assert!(
            Profile::parse(&Profile::new(&key, "jdoe").to_yaml(), "p")
                .unwrap()
                .ignored_keys()
                .is_empty()
        );
    }
}
