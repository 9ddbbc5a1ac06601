//! The error types of `rai-common`, one per concern, each message written for the person who has to act on it.

use std::path::PathBuf;

use thiserror::Error;

pub use crate::build_spec::BuildSpecError;
pub use crate::yaml::YamlError;

/// Loading the layered configuration failed.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A layer is not valid YAML or does not fit the schema.
    #[error("{0}")]
    Invalid(#[from] YamlError),
    /// A layer exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file named explicitly (for example with `-c`) does not exist.
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    /// An encrypted value could not be decrypted.
    #[error("cannot decrypt {key}: {source}")]
    Decrypt {
        key: String,
        source: rai_crypto::CryptoError,
    },
    /// An encrypted value was found but no app secret was given.
    #[error(
        "{key} is encrypted, but no app secret was given: pass -s SECRET, set RAI_SECRET, or write it to ~/.rai_secret"
    )]
    NoSecret { key: String },
    /// A `--set KEY=VALUE` or similar override names a key that does not exist.
    #[error("unknown config key \"{key}\"{hint}")]
    UnknownKey { key: String, hint: String },
    /// The app secret could not be read.
    #[error("{0}")]
    Secret(#[from] rai_crypto::CryptoError),
}

/// A profile or account registry is unusable.
#[derive(Debug, Error)]
pub enum AccountError {
    #[error(
        "no rai profile at {0}; it is expected at ~/.rai_profile (or pass --profile); ask your instructor for one"
    )]
    NoProfile(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(#[from] YamlError),
    #[error(
        "the secret_key in {0} is not an Ed25519 key (a profile from the old RAI?); ask your instructor for a new profile"
    )]
    BadSecretKey(String),
    #[error("the public key of user \"{0}\" in the account registry is not a valid Ed25519 key")]
    BadPublicKey(String),
    #[error("user \"{0}\" appears more than once in the account registry")]
    DuplicateUser(String),
    #[error(
        "{0} is not a gateway attestation key; make one with `rai-keygen gateway-key --out FILE`"
    )]
    BadGatewayKey(PathBuf),
}

/// Why a job message was refused. Each variant is a distinct reason the worker reports back to the client.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum VerifyError {
    #[error("malformed job message: {0}")]
    Malformed(String),
    #[error("job message format v{0} is not supported by this worker; upgrade rai")]
    UnsupportedVersion(u32),
    #[error(
        "unknown user \"{0}\": not in the account registry; ask your instructor for an account"
    )]
    UnknownUser(String),
    #[error("user \"{user}\" was revoked on {at}; ask your instructor")]
    RevokedUser { user: String, at: String },
    #[error(
        "bad signature: the job was not signed by user \"{0}\"'s key (an edited job, or an old profile)"
    )]
    BadSignature(String),
    #[error(
        "the job is {age_secs}s old (from its acceptance), older than the {max_secs}s a job may wait; submit it again"
    )]
    Stale { age_secs: i64, max_secs: i64 },
    #[error(
        "the job's timestamp is {ahead_secs}s in the future, more than the {max_secs}s allowed; check your computer's clock"
    )]
    FromFuture { ahead_secs: i64, max_secs: i64 },
    #[error(
        "the message carries no gateway attestation: only a gateway may queue jobs (submit with `rai submit`)"
    )]
    NotAttested,
    #[error(
        "the message was attested by a gateway this worker does not trust (see raid.gateway_keys)"
    )]
    UnknownGateway,
    #[error("bad gateway attestation: {0}")]
    BadAttestation(String),
}

/// A build spec that breaks one of the build file's rules, found in a spec that did not come from a file (a signed
/// job's JSON): the key and what is wrong with it.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{key}: {message}")]
pub struct SpecRuleError {
    pub key: String,
    pub message: String,
}

/// A job that says it is one of a sweep but is not one of its build file's matrix.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SweepError {
    #[error("the job says it is one of a sweep, but its build file has no matrix")]
    NoMatrix,
    #[error("the job says its sweep has {said} jobs; its build file's matrix makes {makes}")]
    Size { said: u32, makes: usize },
    #[error("\"{0}\" is not a combination of the build file's matrix")]
    NotACombination(String),
}

/// A job id that is not one.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("\"{0}\" is not a job id (26 letters and digits, as printed by `rai submit`)")]
pub struct JobIdError(pub String);

/// Packing or unpacking an archive failed.
#[derive(Debug, Error)]
pub enum ArchiveError {
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot list the directory: {0}")]
    Walk(String),
    #[error("the directory holds {} of files, over the {} cap; the largest: {}. Add them to .raiignore, or remove them",
        crate::units::Bytes(*.bytes).human(), crate::units::Bytes(*.cap).human(), list_sizes(.largest))]
    TooLarge {
        bytes: u64,
        cap: u64,
        largest: Vec<(PathBuf, u64)>,
    },
    #[error("the directory holds {count} files and folders, over the {cap} cap; the most are in: {}. Add them to .raiignore, or remove them",
        list_counts(.largest))]
    TooManyFiles {
        count: u64,
        cap: u64,
        largest: Vec<(PathBuf, u64)>,
    },
    #[error("unsafe archive: entry \"{entry}\" {reason}")]
    UnsafeEntry { entry: String, reason: String },
    #[error("the archive unpacks to more than {} (stopped at entry \"{entry}\")", crate::units::Bytes(*.cap).human())]
    UnpackTooLarge { cap: u64, entry: String },
    #[error("the archive holds more than {cap} entries (stopped at entry \"{entry}\")")]
    TooManyEntries { cap: u64, entry: String },
    #[error("the archive is corrupt or not tar + zstd: {0}")]
    Corrupt(String),
    /// A GNU long name or link, or a PAX extended header, claims more than the cap; refused before it is read
    /// (the tar crate would read it whole into memory).
    #[error("the archive's {what} claims {}, more than the {} allowed", crate::units::Bytes(*.size).human(), crate::units::Bytes(*.cap).human())]
    HeaderTooLarge {
        what: &'static str,
        size: u64,
        cap: u64,
    },
    /// Everything the archive decompresses to (headers, padding and skipped entries too) is over the cap.
    #[error("the archive decompresses to more than {}, headers and skipped entries included", crate::units::Bytes(*.cap).human())]
    StreamTooLarge { cap: u64 },
    #[error(
        "the archive holds a GNU sparse file (\"{entry}\"); archives may hold only files, directories and links"
    )]
    Sparse { entry: String },
    #[error("compression failed: {0}")]
    Compress(std::io::Error),
}

/// A project manifest a server will not trust (it comes from the student's machine).
#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("the project manifest is not valid JSON of the manifest format: {0}")]
    Parse(#[source] serde_json::Error),
    #[error(
        "the project manifest is format {found}; this server reads format {supported}: upgrade rai or the server"
    )]
    Version { found: u32, supported: u32 },
    #[error("the project manifest lists {} entries, over the {max} allowed; add what the job does not need to .raiignore",
        .count.map_or_else(|| "too many".to_string(), |n| n.to_string()))]
    TooManyEntries { count: Option<usize>, max: usize },
    #[error("the project manifest adds up to {} of files, over the {} allowed; add large data to .raiignore",
        crate::units::Bytes(*.bytes).human(), crate::units::Bytes(*.max).human())]
    TooLarge { bytes: u64, max: u64 },
    #[error("the project manifest names \"{path}\", which cannot be written: {why}")]
    BadPath { path: String, why: &'static str },
    #[error("the project manifest names \"{path}\" twice")]
    Duplicate { path: String },
    #[error("the project manifest is not sorted by path (at \"{path}\"); it was not made by rai")]
    Unsorted { path: String },
    #[error(
        "the project manifest names \"{path}\" but not its folder \"{parent}\" before it (a path under a link or a file is refused)"
    )]
    NoParent { path: String, parent: String },
    #[error("the project manifest's link \"{path}\" points at \"{target}\", outside the project")]
    LinkEscapes { path: String, target: String },
    #[error(
        "the project manifest gives \"{path}\" a chunk {chunk} of {size} bytes; chunks are 1 to {max} bytes"
    )]
    ChunkSize {
        path: String,
        chunk: crate::project::ChunkId,
        size: u64,
        max: u64,
    },
    #[error(
        "the project manifest says \"{path}\" is {size} bytes but its chunks add up to {chunks}"
    )]
    SizesDisagree {
        path: String,
        size: u64,
        chunks: u64,
    },
    #[error("\"{id}\" is not a chunk id (64 hex digits of a BLAKE3 hash)")]
    BadChunkId { id: String },
}

/// A chunk that is not what its manifest says.
#[derive(Debug, Error)]
pub enum ChunkError {
    #[error(
        "chunk {id} cannot be decompressed within the size its manifest declares (broken, or a compression bomb)"
    )]
    Unreadable {
        id: crate::project::ChunkId,
        #[source]
        source: std::io::Error,
    },
    #[error("chunk {id} is {found} bytes; its manifest says {expected}")]
    WrongSize {
        id: crate::project::ChunkId,
        expected: u64,
        found: u64,
    },
    #[error(
        "chunk {id} holds other bytes (their hash is {found}); it was changed or sent under a false name"
    )]
    WrongContent {
        id: crate::project::ChunkId,
        found: crate::project::ChunkId,
    },
    #[error("chunk {id} is said to be {size} bytes; chunks are at most {max}")]
    TooLarge {
        id: crate::project::ChunkId,
        size: u64,
        max: u64,
    },
}

/// A batch of chunks ([`crate::project::batch`]) that cannot be read as one.
#[derive(Debug, Error)]
pub enum BatchError {
    #[error("the batch of chunks is cut short in the frame at byte {at}; send it again whole")]
    Truncated { at: usize },
    #[error(
        "chunk {id} in the batch says it is {len} bytes sealed; a sealed chunk is 1 to {max} bytes"
    )]
    BadLength {
        id: crate::project::ChunkId,
        len: usize,
        max: usize,
    },
    #[error("chunk {0} is in the batch twice; send each chunk once")]
    Repeated(crate::project::ChunkId),
    #[error("the batch holds more than {max} chunks; send the rest in another")]
    TooMany { max: usize },
    #[error("the batch holds no chunk")]
    Empty,
}

/// Describing a project directory as a manifest failed.
#[derive(Debug, Error)]
pub enum ProjectError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{0}: the name is not UTF-8; rename it (a job's paths must read the same on every machine)"
    )]
    NotUtf8(PathBuf),
    #[error(
        "cannot keep the sealed chunks in a temporary file (is the temporary folder full?): {0}"
    )]
    Spool(#[source] std::io::Error),
}

impl ArchiveError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ArchiveError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn list_sizes(items: &[(PathBuf, u64)]) -> String {
    items
        .iter()
        .map(|(p, n)| format!("{} ({})", p.display(), crate::units::Bytes(*n).human()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn list_counts(items: &[(PathBuf, u64)]) -> String {
    items
        .iter()
        .map(|(p, n)| format!("{} ({n})", p.display()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An HTTP message signature (RFC 9421) could not be made or does not hold.
#[derive(Debug, Error)]
pub enum SignatureError {
    /// The `Signature-Input` or `Signature` header is not in the form rai sends.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// The signature covers a component this request does not have.
    #[error("the signature covers \"{0}\", which the request does not carry")]
    MissingComponent(String),
    /// The signature uses something this implementation does not support.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The signature does not match the request and key.
    #[error("the signature does not match the request")]
    BadSignature,
}
