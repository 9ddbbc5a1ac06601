//! The job model: ids, the request a student signs, and its verification by a worker.
//!
//! A [`JobRequest`] is serialized once, by the client, into its canonical bytes (compact JSON in the struct's field
//! order); those exact bytes travel inside a [`SignedJob`] envelope next to their Ed25519 signature. The worker
//! verifies the bytes it received, never a re-serialization, so no two implementations ever have to agree on a
//! canonical form for verification to work. The signature covers a domain tag too, so a signature made for a job can
//! never be replayed as one for anything else.
//!
//! Over 450 lines: signing, attesting and verifying a job are one chain of trust, read best together.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ulid::Ulid;

use crate::account::{Registry, Role};
use crate::build_spec::BuildSpec;
use crate::errors::{JobIdError, VerifyError};

/// The envelope format version.
pub const SIGNED_JOB_VERSION: u32 = 1;
const SIGNATURE_DOMAIN: &[u8] = b"rai-job-v1\0";

/// A job's id: a ULID, so ids sort by creation time (48-bit milliseconds) and cannot be guessed (80 random bits from
/// the operating system's generator). Printed as 26 lower-case Crockford base32 characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(Ulid);

impl JobId {
    /// A new id for now.
    pub fn new() -> JobId {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random)
            .expect("the operating system's random number generator failed");
        let random = u128::from_be_bytes(random) & ((1u128 << 80) - 1);
        let ms = Utc::now().timestamp_millis().max(0) as u64;
        JobId(Ulid::from_parts(ms, random))
    }

    /// When the id was made.
    pub fn created(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0.timestamp_ms() as i64).unwrap_or_default()
    }
}

impl Default for JobId {
    fn default() -> Self {
        JobId::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_string().to_ascii_lowercase())
    }
}

impl FromStr for JobId {
    type Err = JobIdError;

    fn from_str(s: &str) -> Result<JobId, JobIdError> {
        let t = s.trim();
        if t.len() != 26 {
            return Err(JobIdError(s.to_string()));
        }
        Ulid::from_string(&t.to_ascii_uppercase())
            .map(JobId)
            .map_err(|_| JobIdError(s.to_string()))
    }
}

impl Serialize for JobId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<JobId, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The uploaded project: where it is and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputObject {
    /// The store key, `uploads/<user>/<job-id>.tar.zst`.
    pub key: String,
    pub size: u64,
    /// Hex SHA-256 of the stored bytes.
    pub sha256: String,
}

/// What a student asks a worker to do. Every field is covered by the signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    pub id: JobId,
    pub user: String,
    pub team: String,
    pub queue: String,
    pub created_at: DateTime<Utc>,
    pub client_version: String,
    pub build: BuildSpec,
    pub input: InputObject,
    /// The assignment this job is submitted for (`rai submit --submit NAME`); the gateway judges it against the
    /// course file and says so in its acceptance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<String>,
    /// The job's place in a sweep (`matrix:` in the build file), if it is one of a sweep's jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepMember>,
}

/// One job of a sweep: which sweep, and the combination of values it runs with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepMember {
    /// The sweep's id (`rai cancel`, `rai status` take it for all its jobs).
    pub id: JobId,
    /// Its values, in the matrix's order: one of `build.matrix`'s combinations.
    pub combination: crate::build_spec::Combination,
    /// How many jobs the sweep has.
    pub size: u32,
}

impl SweepMember {
    /// Whether this is a combination of `matrix` and the sweep is its size: `Err` says what is not.
    pub fn check(
        &self,
        matrix: &crate::build_spec::Matrix,
    ) -> Result<(), crate::errors::SweepError> {
        use crate::errors::SweepError;
        if matrix.is_empty() {
            return Err(SweepError::NoMatrix);
        }
        if self.size as usize != matrix.size() {
            return Err(SweepError::Size {
                said: self.size,
                makes: matrix.size(),
            });
        }
        if !matrix.combinations().contains(&self.combination) {
            return Err(SweepError::NotACombination(self.combination.to_string()));
        }
        Ok(())
    }
}

impl JobRequest {
    /// The canonical bytes: compact JSON in field order.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a job request always serializes")
    }

    /// Signs the canonical bytes with the user's private key.
    pub fn sign(&self, key: &SigningKey) -> SignedJob {
        let payload = String::from_utf8(self.canonical_bytes()).expect("JSON is UTF-8");
        let sig = key.sign(&signed_bytes(&payload));
        SignedJob {
            v: SIGNED_JOB_VERSION,
            payload,
            sig: URL_SAFE_NO_PAD.encode(sig.to_bytes()),
        }
    }
}

fn signed_bytes(payload: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNATURE_DOMAIN.len() + payload.len());
    m.extend_from_slice(SIGNATURE_DOMAIN);
    m.extend_from_slice(payload.as_bytes());
    m
}

/// The message on the queue: the request's exact bytes and their signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedJob {
    pub v: u32,
    pub payload: String,
    pub sig: String,
}

/// How old (or how far in the future) a job's timestamp may be.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    /// Jobs may wait in a queue this long before a worker refuses them as stale.
    pub max_age: Duration,
    /// Clocks may disagree this much.
    pub max_future: Duration,
}

impl Default for Freshness {
    fn default() -> Self {
        Freshness {
            max_age: Duration::from_secs(24 * 3600),
            max_future: Duration::from_secs(5 * 60),
        }
    }
}

/// Largest message a worker reads; SQS's own limit is 256 KiB.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

impl SignedJob {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serializes")
    }

    /// Reads an envelope without verifying it.
    pub fn parse(bytes: &[u8]) -> Result<SignedJob, VerifyError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(VerifyError::Malformed(format!(
                "{} bytes, more than the {MAX_MESSAGE_BYTES} allowed",
                bytes.len()
            )));
        }
        let env: SignedJob =
            serde_json::from_slice(bytes).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        if env.v != SIGNED_JOB_VERSION {
            return Err(VerifyError::UnsupportedVersion(env.v));
        }
        Ok(env)
    }

    /// The job id, read without trusting anything, so a refusal can be reported on the job's channel.
    pub fn claimed_id(bytes: &[u8]) -> Option<JobId> {
        #[derive(Deserialize)]
        struct IdOnly {
            id: JobId,
        }
        let env: SignedJob = serde_json::from_slice(bytes).ok()?;
        serde_json::from_str::<IdOnly>(&env.payload)
            .ok()
            .map(|x| x.id)
    }

    /// Verifies a message against the registry at time `now`: well-formed, known and unrevoked user, valid
    /// signature, fresh timestamp; in that order, so a forger learns nothing about timing rules.
    pub fn verify(
        bytes: &[u8],
        registry: &Registry,
        now: DateTime<Utc>,
        freshness: Freshness,
    ) -> Result<JobRequest, VerifyError> {
        let env = SignedJob::parse(bytes)?;
        let request = env.verify_signature(registry)?;
        freshness.check(request.created_at, now)?;
        Ok(request)
    }

    /// Checks the envelope's signature against the registry (known, unrevoked user; the user's key), without
    /// looking at any time.
    pub fn verify_signature(&self, registry: &Registry) -> Result<JobRequest, VerifyError> {
        let request: JobRequest = serde_json::from_str(&self.payload)
            .map_err(|e| VerifyError::Malformed(format!("payload: {e}")))?;
        let account = registry
            .get(&request.user)
            .ok_or_else(|| VerifyError::UnknownUser(request.user.clone()))?;
        if let Some(at) = account.revoked {
            return Err(VerifyError::RevokedUser {
                user: request.user.clone(),
                at: at.format("%Y-%m-%d %H:%M UTC").to_string(),
            });
        }
        let bad_sig = || VerifyError::BadSignature(request.user.clone());
        let key = account.verifying_key().map_err(|_| bad_sig())?;
        let sig: [u8; 64] = URL_SAFE_NO_PAD
            .decode(self.sig.trim())
            .map_err(|_| bad_sig())?
            .try_into()
            .map_err(|_| bad_sig())?;
        key.verify_strict(&signed_bytes(&self.payload), &Signature::from_bytes(&sig))
            .map_err(|_| bad_sig())?;
        Ok(request)
    }
}

impl Freshness {
    /// Whether a job stamped `at` may still run at `now`.
    pub fn check(&self, at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), VerifyError> {
        let age = now.signed_duration_since(at).num_seconds();
        let max_age = self.max_age.as_secs() as i64;
        let max_future = self.max_future.as_secs() as i64;
        if age > max_age {
            return Err(VerifyError::Stale {
                age_secs: age,
                max_secs: max_age,
            });
        }
        if -age > max_future {
            return Err(VerifyError::FromFuture {
                ahead_secs: -age,
                max_secs: max_future,
            });
        }
        Ok(())
    }
}

/// The queue message format version: a student's signed job with a gateway's attestation.
pub const ATTESTED_JOB_VERSION: u32 = 2;
const ATTESTATION_DOMAIN: &[u8] = b"rai-accepted-v1\0";

/// What a gateway states about a job it accepted. Only gateways hold an attestation key, so only a gateway can put
/// work on a queue; `accepted_at` is the server's clock, the only time deadlines and records trust.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acceptance {
    pub job: JobId,
    /// The authenticated user the job is bound to.
    pub user: String,
    /// The user's team and role in the registry when the gateway accepted the job: records and usage count the job
    /// under these, never under what the student's request (their profile) says. Empty: no team, a team of one.
    /// Absent in messages from gateways before issue 26, read as no team.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub team: String,
    #[serde(default)]
    pub role: Role,
    pub queue: String,
    pub accepted_at: DateTime<Utc>,
    /// Hex SHA-256 of the student's signed payload: the acceptance is for those bytes alone.
    pub payload_sha256: String,
    /// The accepting gateway's public key (base64), so workers know which key to check.
    pub gateway: String,
    /// A graded submission: what the gateway decided about it from the course file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graded: Option<Graded>,
    /// When staff sent the job back to its queue from the dead letters: its age counts from then (everything else,
    /// `accepted_at` and the judgement included, stays as the first acceptance said).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requeued_at: Option<DateTime<Utc>>,
}

/// The gateway's judgement of a graded submission, which the worker trusts as it trusts the acceptance: the
/// assignment, whether it came late (the gateway's clock), and the instructor's build that runs instead of the
/// student's. The assignment's queue, when it has one, is the acceptance's queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Graded {
    pub assignment: String,
    pub late: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildSpec>,
    /// The course requires `/build/results.json`: a run that ends without readable results has failed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub results_required: bool,
    /// A regrade (staff's `rai regrade`): the submission it runs again. The student's signed job is that one's, so
    /// its id is the original's while the acceptance names the regrade's own; its upload is the original's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regrade_of: Option<JobId>,
}

/// The message on the queue: the student's signed job, the gateway's acceptance, and the gateway's signature over
/// the acceptance's exact bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestedJob {
    pub v: u32,
    pub job: SignedJob,
    pub acceptance: String,
    pub sig: String,
}

/// A queue message that passed every check: the student's request and the gateway's acceptance of it.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptedJob {
    pub request: JobRequest,
    pub acceptance: Acceptance,
}

fn attested_bytes(acceptance: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(ATTESTATION_DOMAIN.len() + acceptance.len());
    m.extend_from_slice(ATTESTATION_DOMAIN);
    m.extend_from_slice(acceptance.as_bytes());
    m
}

/// Hex SHA-256 of a signed job's payload.
pub fn payload_sha256(job: &SignedJob) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(job.payload.as_bytes()))
}

/// Who a gateway accepted a job from, as its registry says: the user it authenticated, and their team and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub user: String,
    /// Empty: no team (a team of one).
    pub team: String,
    pub role: Role,
}

impl AttestedJob {
    /// A gateway's attestation of `job` (already verified) for `owner` on `queue` at `accepted_at`.
    pub fn attest(
        job: SignedJob,
        id: JobId,
        owner: &Owner,
        queue: &str,
        accepted_at: DateTime<Utc>,
        gateway_key: &SigningKey,
    ) -> AttestedJob {
        Self::attest_graded(job, id, owner, queue, accepted_at, None, gateway_key)
    }

    /// [`AttestedJob::attest`] of a graded submission: the gateway's judgement travels in the acceptance, and
    /// `queue` may be the assignment's rather than the one the student named.
    pub fn attest_graded(
        job: SignedJob,
        id: JobId,
        owner: &Owner,
        queue: &str,
        accepted_at: DateTime<Utc>,
        graded: Option<Graded>,
        gateway_key: &SigningKey,
    ) -> AttestedJob {
        let acceptance = Acceptance {
            job: id,
            user: owner.user.clone(),
            team: owner.team.clone(),
            role: owner.role,
            queue: queue.to_string(),
            accepted_at,
            payload_sha256: payload_sha256(&job),
            gateway: crate::account::encode_public_key(&gateway_key.verifying_key()),
            graded,
            requeued_at: None,
        };
        Self::sign(job, &acceptance, gateway_key)
    }

    fn sign(job: SignedJob, acceptance: &Acceptance, gateway_key: &SigningKey) -> AttestedJob {
        let acceptance =
            serde_json::to_string(acceptance).expect("an acceptance always serializes");
        let sig = gateway_key.sign(&attested_bytes(&acceptance));
        AttestedJob {
            v: ATTESTED_JOB_VERSION,
            job,
            acceptance,
            sig: URL_SAFE_NO_PAD.encode(sig.to_bytes()),
        }
    }

    /// A dead letter (`bytes`) accepted again by `gateway_key` at `now`, for staff who send it back to its queue.
    /// It must verify as any queued job does (a trusted gateway's attestation of the student's signed job), except
    /// for its age; the new acceptance keeps every field of the first and says when it was requeued.
    pub fn requeue(
        bytes: &[u8],
        registry: &Registry,
        gateway_keys: &[VerifyingKey],
        now: DateTime<Utc>,
        gateway_key: &SigningKey,
    ) -> Result<(AttestedJob, Acceptance), VerifyError> {
        let any_age = Freshness {
            max_age: Duration::from_secs(100 * 365 * 24 * 3600),
            ..Freshness::default()
        };
        let accepted = Self::verify(bytes, registry, gateway_keys, now, any_age)?;
        let env: AttestedJob =
            serde_json::from_slice(bytes).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        let acceptance = Acceptance {
            requeued_at: Some(now),
            gateway: crate::account::encode_public_key(&gateway_key.verifying_key()),
            ..accepted.acceptance
        };
        Ok((Self::sign(env.job, &acceptance, gateway_key), acceptance))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an attested job always serializes")
    }

    /// The job id the gateway accepted, once its attestation is checked: a refusal may be reported on the job's
    /// channel only then, so a forged message can never write to another student's job.
    pub fn attested_id(bytes: &[u8], gateway_keys: &[VerifyingKey]) -> Option<JobId> {
        let env: AttestedJob = serde_json::from_slice(bytes).ok()?;
        env.check_attestation(gateway_keys).ok().map(|a| a.job)
    }

    fn check_attestation(&self, gateway_keys: &[VerifyingKey]) -> Result<Acceptance, VerifyError> {
        let acceptance: Acceptance = serde_json::from_str(&self.acceptance)
            .map_err(|e| VerifyError::BadAttestation(format!("acceptance: {e}")))?;
        let key = gateway_keys
            .iter()
            .find(|k| crate::account::encode_public_key(k) == acceptance.gateway)
            .ok_or(VerifyError::UnknownGateway)?;
        let sig: [u8; 64] = URL_SAFE_NO_PAD
            .decode(self.sig.trim())
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| VerifyError::BadAttestation("the signature is not 64 bytes".into()))?;
        key.verify_strict(
            &attested_bytes(&self.acceptance),
            &Signature::from_bytes(&sig),
        )
        .map_err(|_| {
            VerifyError::BadAttestation("the gateway's signature does not match".into())
        })?;
        Ok(acceptance)
    }

    /// Verifies a queue message: the gateway's attestation (a trusted key, over these bytes), then the student's
    /// signature against the registry, then that both speak of the same job, user and queue, then the age of the
    /// gateway's `accepted_at`.
    pub fn verify(
        bytes: &[u8],
        registry: &Registry,
        gateway_keys: &[VerifyingKey],
        now: DateTime<Utc>,
        freshness: Freshness,
    ) -> Result<AcceptedJob, VerifyError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(VerifyError::Malformed(format!(
                "{} bytes, more than the {MAX_MESSAGE_BYTES} allowed",
                bytes.len()
            )));
        }
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        let version: Version =
            serde_json::from_slice(bytes).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        if version.v == SIGNED_JOB_VERSION {
            return Err(VerifyError::NotAttested);
        }
        if version.v != ATTESTED_JOB_VERSION {
            return Err(VerifyError::UnsupportedVersion(version.v));
        }
        let env: AttestedJob =
            serde_json::from_slice(bytes).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        let acceptance = env.check_attestation(gateway_keys)?;
        if env.job.v != SIGNED_JOB_VERSION {
            return Err(VerifyError::UnsupportedVersion(env.job.v));
        }
        let mut request = env.job.verify_signature(registry)?;
        // A regrade carries the original submission's signed job under an id of its own.
        let regrade_of = acceptance.graded.as_ref().and_then(|g| g.regrade_of);
        if regrade_of == Some(request.id) {
            request.id = acceptance.job;
        }
        if acceptance.payload_sha256 != payload_sha256(&env.job)
            || acceptance.job != request.id
            || acceptance.user != request.user
            // A graded submission goes to its assignment's queue, which the gateway chose.
            || (acceptance.queue != request.queue && acceptance.graded.is_none())
            || acceptance.graded.as_ref().map(|g| Some(&g.assignment)) .is_some_and(|a| a != request.assignment.as_ref())
        {
            return Err(VerifyError::BadAttestation(
                "the attestation is for another job, user or queue".into(),
            ));
        }
        freshness.check(
            acceptance.requeued_at.unwrap_or(acceptance.accepted_at),
            now,
        )?;
        Ok(AcceptedJob {
            request,
            acceptance,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{Account, Role, encode_public_key, generate_signing_key};
    use crate::build_spec::{BUILD_FILE_NAME, TEMPLATE};

    fn request(user: &str, created_at: DateTime<Utc>) -> JobRequest {
        let id = JobId::new();
        JobRequest {
            id,
            user: user.into(),
            team: "t".into(),
            queue: "rai".into(),
            created_at,
            client_version: "0.1.0".into(),
            build: BuildSpec::parse(TEMPLATE, BUILD_FILE_NAME).unwrap(),
            input: InputObject {
                key: format!("uploads/{user}/{id}.tar.zst"),
                size: 10,
                sha256: "00".repeat(32),
            },
            assignment: None,
            sweep: None,
        }
    }

    fn registry_with(user: &str, key: &SigningKey) -> Registry {
        Registry {
            users: vec![Account {
                username: user.into(),
                email: String::new(),
                team: "t".into(),
                role: Role::Student,
                public_key: encode_public_key(&key.verifying_key()),
                created: Utc::now(),
                revoked: None,
            }],
        }
    }

    #[test]
    fn ids_sort_by_time_and_parse_back() {
        let a = JobId::new();
        std::thread::sleep(Duration::from_millis(2));
        let b = JobId::new();
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
        assert_eq!(a.to_string().parse::<JobId>().unwrap(), a);
        assert_eq!(a.to_string().len(), 26);
        assert!("not-an-id".parse::<JobId>().is_err());
        assert_ne!(JobId::new(), JobId::new());
    }

    #[test]
    fn signed_job_verifies_and_each_failure_is_distinct() {
        let key = generate_signing_key();
        let reg = registry_with("alice", &key);
        let now = Utc::now();
        let req = request("alice", now);
        let wire = req.sign(&key).to_bytes();
        assert_eq!(
            SignedJob::verify(&wire, &reg, now, Freshness::default()).unwrap(),
            req
        );
        assert_eq!(SignedJob::claimed_id(&wire), Some(req.id));

        // Unknown user.
        let other = request("mallory", now).sign(&key).to_bytes();
        assert!(matches!(
            SignedJob::verify(&other, &reg, now, Freshness::default()),
            Err(VerifyError::UnknownUser(u)) if u == "mallory"
        ));
        // Forged: signed with another key.
        let forged = req.sign(&generate_signing_key()).to_bytes();
        assert!(matches!(
            SignedJob::verify(&forged, &reg, now, Freshness::default()),
            Err(VerifyError::BadSignature(_))
        ));
        // Edited after signing.
        let mut env: SignedJob = serde_json::from_slice(&wire).unwrap();
        env.payload = env
            .payload
            .replace("\"queue\":\"rai\"", "\"queue\":\"gpu\"");
        assert!(matches!(
            SignedJob::verify(&env.to_bytes(), &reg, now, Freshness::default()),
            Err(VerifyError::BadSignature(_))
        ));
        // Stale and from the future.
        let old = request("alice", now - chrono::Duration::hours(48))
            .sign(&key)
            .to_bytes();
        assert!(matches!(
            SignedJob::verify(&old, &reg, now, Freshness::default()),
            Err(VerifyError::Stale { .. })
        ));
        let future = request("alice", now + chrono::Duration::hours(1))
            .sign(&key)
            .to_bytes();
        assert!(matches!(
            SignedJob::verify(&future, &reg, now, Freshness::default()),
            Err(VerifyError::FromFuture { .. })
        ));
        // Revoked.
        let mut revoked = reg.clone();
        revoked.users[0].revoked = Some(now);
        assert!(matches!(
            SignedJob::verify(&wire, &revoked, now, Freshness::default()),
            Err(VerifyError::RevokedUser { .. })
        ));
        // Malformed and unsupported.
        assert!(matches!(
            SignedJob::verify(b"{not json", &reg, now, Freshness::default()),
            Err(VerifyError::Malformed(_))
        ));
        assert!(matches!(
            SignedJob::verify(
                br#"{"v":2,"payload":"","sig":""}"#,
                &reg,
                now,
                Freshness::default()
            ),
            Err(VerifyError::UnsupportedVersion(2))
        ));
    }

    fn owner(user: &str) -> Owner {
        Owner {
            user: user.into(),
            team: String::new(),
            role: Role::Student,
        }
    }

    #[test]
    fn the_team_and_role_are_the_gateways_not_the_requests() {
        let key = generate_signing_key();
        let gateway = generate_signing_key();
        let reg = registry_with("alice", &key);
        let now = Utc::now();
        // Alice's profile says she is in team "staff"; the registry (the gateway's word) says "t2".
        let mut req = request("alice", now);
        req.team = "staff".into();
        let by_registry = Owner {
            user: "alice".into(),
            team: "t2".into(),
            role: Role::Student,
        };
        let attested =
            AttestedJob::attest(req.sign(&key), req.id, &by_registry, "rai", now, &gateway);
        let ok = AttestedJob::verify(
            &attested.to_bytes(),
            &reg,
            &[gateway.verifying_key()],
            now,
            Freshness::default(),
        )
        .unwrap();
        assert_eq!(
            (ok.acceptance.team.as_str(), ok.acceptance.role),
            ("t2", Role::Student)
        );
        // An acceptance from a gateway before the team was stamped reads as no team, not the request's.
        let old: Acceptance = serde_json::from_str(&format!(
            r#"{{"job":"{}","user":"alice","queue":"rai","accepted_at":"2026-01-01T00:00:00Z","payload_sha256":"x","gateway":"g"}}"#,
            req.id
        ))
        .unwrap();
        assert_eq!((old.team.as_str(), old.role), ("", Role::Student));
    }

    #[test]
    fn attested_jobs_verify_and_forgeries_are_refused() {
        let key = generate_signing_key();
        let gateway = generate_signing_key();
        let trusted = [gateway.verifying_key()];
        let reg = registry_with("alice", &key);
        let now = Utc::now();
        // A created_at a day and a half old: the gateway's accepted_at is what counts.
        let req = request("alice", now - chrono::Duration::hours(36));
        let signed = req.sign(&key);
        let attested = AttestedJob::attest(
            signed.clone(),
            req.id,
            &owner("alice"),
            "rai",
            now,
            &gateway,
        );
        let wire = attested.to_bytes();
        let ok = AttestedJob::verify(&wire, &reg, &trusted, now, Freshness::default()).unwrap();
        assert_eq!(ok.request, req);
        assert_eq!(ok.acceptance.accepted_at, now);
        assert_eq!(AttestedJob::attested_id(&wire, &trusted), Some(req.id));

        let verify =
            |bytes: &[u8]| AttestedJob::verify(bytes, &reg, &trusted, now, Freshness::default());
        // Straight on the queue, no attestation.
        assert!(matches!(
            verify(&signed.to_bytes()),
            Err(VerifyError::NotAttested)
        ));
        // Attested by a key nobody trusts.
        let rogue = AttestedJob::attest(
            signed.clone(),
            req.id,
            &owner("alice"),
            "rai",
            now,
            &generate_signing_key(),
        );
        assert!(matches!(
            verify(&rogue.to_bytes()),
            Err(VerifyError::UnknownGateway)
        ));
        assert_eq!(AttestedJob::attested_id(&rogue.to_bytes(), &trusted), None);
        // The acceptance edited (backdated) after the gateway signed it.
        let mut edited = attested.clone();
        let mut backdated: Acceptance = serde_json::from_str(&edited.acceptance).unwrap();
        backdated.accepted_at = now - chrono::Duration::hours(1);
        edited.acceptance = serde_json::to_string(&backdated).unwrap();
        assert!(matches!(
            verify(&edited.to_bytes()),
            Err(VerifyError::BadAttestation(_))
        ));
        // A valid acceptance moved onto another student's job.
        let other = request("alice", now).sign(&key);
        let mut swapped = attested.clone();
        swapped.job = other;
        assert!(matches!(
            verify(&swapped.to_bytes()),
            Err(VerifyError::BadAttestation(_))
        ));
        // An acceptance for another user than the one who signed.
        let wrong_user =
            AttestedJob::attest(signed.clone(), req.id, &owner("bob"), "rai", now, &gateway);
        assert!(matches!(
            verify(&wrong_user.to_bytes()),
            Err(VerifyError::BadAttestation(_))
        ));
        // Accepted too long ago.
        let old = AttestedJob::attest(
            signed,
            req.id,
            &owner("alice"),
            "rai",
            now - chrono::Duration::hours(48),
            &gateway,
        );
        assert!(matches!(
            verify(&old.to_bytes()),
            Err(VerifyError::Stale { .. })
        ));
        // Sent back from the dead letters by another trusted gateway: fresh again, the first acceptance's time and
        // judgement kept; a rogue message in the dead letters is not made runnable.
        let second = generate_signing_key();
        let (requeued, acceptance) =
            AttestedJob::requeue(&old.to_bytes(), &reg, &trusted, now, &second).unwrap();
        assert_eq!(acceptance.accepted_at, now - chrono::Duration::hours(48));
        assert_eq!(acceptance.requeued_at, Some(now));
        let both = [gateway.verifying_key(), second.verifying_key()];
        let again =
            AttestedJob::verify(&requeued.to_bytes(), &reg, &both, now, Freshness::default())
                .unwrap();
        assert_eq!(again.request, req);
        assert!(matches!(
            AttestedJob::requeue(&rogue.to_bytes(), &reg, &trusted, now, &second),
            Err(VerifyError::UnknownGateway)
        ));
    }

    #[test]
    fn a_regrade_runs_the_students_signed_job_under_its_own_id() {
        let key = generate_signing_key();
        let gateway = generate_signing_key();
        let trusted = [gateway.verifying_key()];
        let reg = registry_with("alice", &key);
        let now = Utc::now();
        let mut req = request("alice", now);
        req.assignment = Some("m1".into());
        let signed = req.sign(&key);
        let graded = |regrade_of| Graded {
            assignment: "m1".into(),
            late: true,
            build: None,
            results_required: false,
            regrade_of,
        };
        let regrade = JobId::new();
        let attest = |id, g| {
            AttestedJob::attest_graded(
                signed.clone(),
                id,
                &owner("alice"),
                "rai",
                now,
                Some(g),
                &gateway,
            )
            .to_bytes()
        };
        let ok = AttestedJob::verify(
            &attest(regrade, graded(Some(req.id))),
            &reg,
            &trusted,
            now,
            Freshness::default(),
        )
        .unwrap();
        assert_eq!(ok.request.id, regrade, "the regrade's own id");
        assert_eq!(ok.request.input, req.input, "the original's upload");
        assert!(ok.acceptance.graded.unwrap().late);
        // Another id without regrade_of, or regrade_of naming another job: the attestation is for another job.
        for g in [graded(None), graded(Some(JobId::new()))] {
            assert!(matches!(
                AttestedJob::verify(
                    &attest(regrade, g),
                    &reg,
                    &trusted,
                    now,
                    Freshness::default()
                ),
                Err(VerifyError::BadAttestation(_))
            ));
        }
    }

    #[test]
    fn a_sweeps_job_must_be_one_of_its_matrixs_combinations() {
        use crate::build_spec::{Combination, Matrix};
        let matrix = Matrix(vec![("block".into(), vec!["16".into(), "32".into()])]);
        let member = |value: &str, size| SweepMember {
            id: JobId::new(),
            combination: Combination(vec![("block".into(), value.into())]),
            size,
        };
        assert_eq!(member("32", 2).check(&matrix), Ok(()));
        assert!(
            member("64", 2)
                .check(&matrix)
                .unwrap_err()
                .to_string()
                .contains("not a combination")
        );
        assert!(
            member("32", 3)
                .check(&matrix)
                .unwrap_err()
                .to_string()
                .contains("makes 2")
        );
        assert!(
            member("32", 1)
                .check(&Matrix::default())
                .unwrap_err()
                .to_string()
                .contains("no matrix")
        );
    }
}
