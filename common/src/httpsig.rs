//! HTTP Message Signatures (RFC 9421), the subset rai uses: Ed25519 signatures over derived components and header
//! fields, carried in one `Signature-Input` / `Signature` pair, and the `Content-Digest` (RFC 9530, `sha-256`) that
//! binds a body to them.
//!
//! Every request a client sends the gateway is signed over `@method`, `@path`, `@query` and, when it has a body,
//! `content-digest`, with the parameters `created`, `nonce`, `keyid` (the username) and `alg="ed25519"`. The
//! gateway rebuilds the signature base from the request it received and the `Signature-Input` value exactly as sent
//! (never a re-serialization), so the two sides only have to agree on the RFC's rules for each component.
//!
//! A maintained crate (`httpsig`) exists but is young; this subset is small and is checked against the RFC's own
//! test vector (Appendix B.2.6) below.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::errors::SignatureError;

/// The label rai's signatures use.
pub const LABEL: &str = "rai";
/// The algorithm name of RFC 9421 section 3.3.6.
pub const ALG_ED25519: &str = "ed25519";

/// What a signature covers of one HTTP request: the derived components and the header fields it can be asked for.
#[derive(Debug, Clone, Default)]
pub struct RequestParts {
    pub method: String,
    pub authority: String,
    /// The path, as sent (percent-encoded).
    pub path: String,
    /// The query without its `?`, as sent; empty when the request has none.
    pub query: String,
    /// Header fields, names in any case.
    pub headers: Vec<(String, String)>,
}

impl RequestParts {
    fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    /// The value of one covered component (RFC 9421 sections 2.1 and 2.2).
    fn component(&self, name: &str) -> Result<String, SignatureError> {
        Ok(match name {
            "@method" => self.method.to_ascii_uppercase(),
            "@authority" => self.authority.to_ascii_lowercase(),
            "@path" => {
                if self.path.is_empty() {
                    "/".to_string()
                } else {
                    self.path.clone()
                }
            }
            // An absent query is the empty query: "?" (section 2.2.7).
            "@query" => format!("?{}", self.query),
            "@request-target" => {
                if self.query.is_empty() {
                    self.path.clone()
                } else {
                    format!("{}?{}", self.path, self.query)
                }
            }
            derived if derived.starts_with('@') => {
                return Err(SignatureError::Unsupported(format!(
                    "the derived component {derived}"
                )));
            }
            field => self
                .header(field)
                .ok_or_else(|| SignatureError::MissingComponent(field.to_string()))?,
        })
    }
}

/// The parameters of one signature, in the order they are serialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureParams {
    /// Covered components, in order: `@method`, `content-digest`, ...
    pub components: Vec<String>,
    pub created: Option<i64>,
    pub keyid: Option<String>,
    pub nonce: Option<String>,
    pub alg: Option<String>,
}

impl SignatureParams {
    /// The serialized inner list with its parameters (an RFC 8941 Inner List), as `Signature-Input` carries it.
    pub fn serialize(&self) -> String {
        let list: Vec<String> = self.components.iter().map(|c| format!("\"{c}\"")).collect();
        let mut out = format!("({})", list.join(" "));
        if let Some(created) = self.created {
            out.push_str(&format!(";created={created}"));
        }
        if let Some(keyid) = &self.keyid {
            out.push_str(&format!(";keyid=\"{keyid}\""));
        }
        if let Some(nonce) = &self.nonce {
            out.push_str(&format!(";nonce=\"{nonce}\""));
        }
        if let Some(alg) = &self.alg {
            out.push_str(&format!(";alg=\"{alg}\""));
        }
        out
    }
}

/// The signature base of section 2.5: one line per covered component, then `@signature-params` with the
/// serialized parameters exactly as given.
pub fn signature_base(
    parts: &RequestParts,
    components: &[String],
    serialized_params: &str,
) -> Result<String, SignatureError> {
    let mut base = String::new();
    for (i, name) in components.iter().enumerate() {
        if components[..i].contains(name) {
            return Err(SignatureError::Malformed(format!(
                "the component \"{name}\" is covered twice"
            )));
        }
        let value = parts.component(name)?;
        if value.contains('\n') || value.contains('\r') {
            return Err(SignatureError::Malformed(format!(
                "the component \"{name}\" holds a line break"
            )));
        }
        base.push_str(&format!("\"{name}\": {value}\n"));
    }
    base.push_str(&format!("\"@signature-params\": {serialized_params}"));
    Ok(base)
}

/// The two header values of a signature: `Signature-Input` and `Signature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    pub signature_input: String,
    pub signature: String,
}

/// Signs `parts` with `key` under `label`.
pub fn sign(
    parts: &RequestParts,
    params: &SignatureParams,
    label: &str,
    key: &SigningKey,
) -> Result<SignatureHeaders, SignatureError> {
    let serialized = params.serialize();
    let base = signature_base(parts, &params.components, &serialized)?;
    let signature = key.sign(base.as_bytes());
    Ok(SignatureHeaders {
        signature_input: format!("{label}={serialized}"),
        signature: format!("{label}=:{}:", STANDARD.encode(signature.to_bytes())),
    })
}

/// One received signature: its parameters as parsed, their serialization exactly as received, and the bytes.
#[derive(Debug, Clone)]
pub struct ReceivedSignature {
    pub label: String,
    pub params: SignatureParams,
    serialized: String,
    signature: Vec<u8>,
}

impl ReceivedSignature {
    /// Reads the signature labelled `label` from the two header values.
    pub fn parse(
        signature_input: &str,
        signature: &str,
        label: &str,
    ) -> Result<ReceivedSignature, SignatureError> {
        let serialized = dictionary_member(signature_input, label).ok_or_else(|| {
            SignatureError::Malformed(format!("Signature-Input has no member \"{label}\""))
        })?;
        let params = parse_inner_list(serialized)?;
        let encoded = dictionary_member(signature, label).ok_or_else(|| {
            SignatureError::Malformed(format!("Signature has no member \"{label}\""))
        })?;
        let bytes = encoded
            .strip_prefix(':')
            .and_then(|s| s.strip_suffix(':'))
            .and_then(|b| STANDARD.decode(b).ok())
            .ok_or_else(|| {
                SignatureError::Malformed(
                    "the Signature value is not a byte sequence (:base64:)".into(),
                )
            })?;
        Ok(ReceivedSignature {
            label: label.to_string(),
            params,
            serialized: serialized.to_string(),
            signature: bytes,
        })
    }

    /// Checks the signature over `parts` with `key`.
    pub fn verify(&self, parts: &RequestParts, key: &VerifyingKey) -> Result<(), SignatureError> {
        if let Some(alg) = &self.params.alg
            && alg != ALG_ED25519
        {
            return Err(SignatureError::Unsupported(format!(
                "the algorithm \"{alg}\""
            )));
        }
        let base = signature_base(parts, &self.params.components, &self.serialized)?;
        let bytes: [u8; 64] = self
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| SignatureError::BadSignature)?;
        key.verify_strict(base.as_bytes(), &Signature::from_bytes(&bytes))
            .map_err(|_| SignatureError::BadSignature)
    }
}

/// The raw text of one member of a structured-field dictionary (`label=value, other=value`). Values here never
/// hold a top-level comma outside quotes or parentheses, which the scan respects.
fn dictionary_member<'a>(header: &'a str, label: &str) -> Option<&'a str> {
    let mut depth = 0usize;
    let mut quoted = false;
    let mut start = 0;
    let bytes = header.as_bytes();
    let mut members = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth = depth.saturating_sub(1),
            b',' if !quoted && depth == 0 => {
                members.push(&header[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    members.push(&header[start..]);
    members.into_iter().find_map(|m| {
        let (name, value) = m.trim().split_once('=')?;
        (name == label).then_some(value)
    })
}

/// Parses `("a" "b");created=1;keyid="k"` into parameters.
fn parse_inner_list(text: &str) -> Result<SignatureParams, SignatureError> {
    let bad = |why: &str| SignatureError::Malformed(format!("Signature-Input: {why}"));
    let rest = text
        .strip_prefix('(')
        .ok_or_else(|| bad("the covered components must be a parenthesized list"))?;
    let close = rest
        .find(')')
        .ok_or_else(|| bad("the component list is not closed"))?;
    let components = rest[..close]
        .split_whitespace()
        .map(|item| {
            item.strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .filter(|s| !s.is_empty() && !s.contains('"'))
                .map(str::to_string)
                .ok_or_else(|| bad("each component must be a quoted string"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut params = SignatureParams {
        components,
        created: None,
        keyid: None,
        nonce: None,
        alg: None,
    };
    for param in rest[close + 1..].split(';').skip(1) {
        let (name, value) = param
            .split_once('=')
            .ok_or_else(|| bad("a parameter without a value"))?;
        let string = || {
            value
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .map(str::to_string)
                .ok_or_else(|| bad(&format!("the parameter {name} must be a quoted string")))
        };
        match name {
            "created" => {
                params.created = Some(
                    value
                        .parse()
                        .map_err(|_| bad("created must be an integer"))?,
                )
            }
            "keyid" => params.keyid = Some(string()?),
            "nonce" => params.nonce = Some(string()?),
            "alg" => params.alg = Some(string()?),
            // Other parameters (expires, tag) are covered by the signature as received; rai sets none of them.
            _ => {}
        }
    }
    Ok(params)
}

/// The `Content-Digest` value of a body (RFC 9530): `sha-256=:<base64>:`.
pub fn content_digest(body: &[u8]) -> String {
    content_digest_of(&Sha256::digest(body).into())
}

/// The `Content-Digest` value for a SHA-256 already computed.
pub fn content_digest_of(sha256: &[u8; 32]) -> String {
    format!("sha-256=:{}:", STANDARD.encode(sha256))
}

/// The SHA-256 a `Content-Digest` value states, or `None` when it states none.
pub fn digest_sha256(value: &str) -> Option<[u8; 32]> {
    let encoded = dictionary_member(value, "sha-256")?;
    STANDARD
        .decode(encoded.strip_prefix(':')?.strip_suffix(':')?)
        .ok()?
        .try_into()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9421 Appendix B.1.4, test-key-ed25519 (PKCS#8 and SPKI, base64 DER).
    const RFC_PRIVATE: &str = "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF";
    const RFC_PUBLIC: &str = "MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=";

    fn rfc_keys() -> (SigningKey, VerifyingKey) {
        let private = STANDARD.decode(RFC_PRIVATE).unwrap();
        let public = STANDARD.decode(RFC_PUBLIC).unwrap();
        // The raw key is the DER's last 32 bytes in both encodings.
        let seed: [u8; 32] = private[private.len() - 32..].try_into().unwrap();
        let raw: [u8; 32] = public[public.len() - 32..].try_into().unwrap();
        (
            SigningKey::from_bytes(&seed),
            VerifyingKey::from_bytes(&raw).unwrap(),
        )
    }

    /// The test request of Appendix B.2 as B.2.6 covers it.
    fn rfc_request() -> RequestParts {
        RequestParts {
            method: "POST".into(),
            authority: "example.com".into(),
            path: "/foo".into(),
            query: "param=Value&Pet=dog".into(),
            headers: vec![
                ("Host".into(), "example.com".into()),
                ("Date".into(), "Tue, 20 Apr 2021 02:07:55 GMT".into()),
                ("Content-Type".into(), "application/json".into()),
                (
                    "Content-Digest".into(),
                    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:".into(),
                ),
                ("Content-Length".into(), "18".into()),
            ],
        }
    }

    const RFC_B26_INPUT: &str = "sig-b26=(\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\"";
    const RFC_B26_SIGNATURE: &str = "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:";

    #[test]
    fn the_rfc_test_key_pair_matches() {
        let (private, public) = rfc_keys();
        assert_eq!(private.verifying_key(), public);
    }

    #[test]
    fn signing_reproduces_rfc_9421_b_2_6() {
        let (key, _) = rfc_keys();
        let params = SignatureParams {
            components: [
                "date",
                "@method",
                "@path",
                "@authority",
                "content-type",
                "content-length",
            ]
            .map(String::from)
            .to_vec(),
            created: Some(1618884473),
            keyid: Some("test-key-ed25519".into()),
            nonce: None,
            alg: None,
        };
        let base = signature_base(&rfc_request(), &params.components, &params.serialize()).unwrap();
        assert_eq!(
            base,
            "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\"@method\": POST\n\"@path\": /foo\n\"@authority\": example.com\n\"content-type\": application/json\n\"content-length\": 18\n\"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\""
        );
        let headers = sign(&rfc_request(), &params, "sig-b26", &key).unwrap();
        assert_eq!(headers.signature_input, RFC_B26_INPUT);
        assert_eq!(headers.signature, RFC_B26_SIGNATURE);
    }

    #[test]
    fn verifying_accepts_rfc_9421_b_2_6_and_refuses_a_change() {
        let (_, public) = rfc_keys();
        let received =
            ReceivedSignature::parse(RFC_B26_INPUT, RFC_B26_SIGNATURE, "sig-b26").unwrap();
        assert_eq!(received.params.keyid.as_deref(), Some("test-key-ed25519"));
        assert_eq!(received.params.created, Some(1618884473));
        received.verify(&rfc_request(), &public).unwrap();
        let mut changed = rfc_request();
        changed.path = "/bar".into();
        assert!(matches!(
            received.verify(&changed, &public),
            Err(SignatureError::BadSignature)
        ));
        let mut missing = rfc_request();
        missing.headers.retain(|(n, _)| n != "Date");
        assert!(matches!(
            received.verify(&missing, &public),
            Err(SignatureError::MissingComponent(c)) if c == "date"
        ));
    }

    #[test]
    fn content_digest_of_the_rfc_test_body() {
        // The body of the RFC's test request; its SHA-256 checked with Python's hashlib.
        let body = b"{\"hello\": \"world\"}";
        assert_eq!(
            content_digest(body),
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
        );
        let digest =
            digest_sha256("sha-512=:AAAA:, sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:")
                .unwrap();
        assert_eq!(content_digest_of(&digest), content_digest(body));
        assert!(digest_sha256("sha-512=:AAAA:").is_none());
    }

    #[test]
    fn rai_params_round_trip_and_query_rules() {
        let key = crate::account::generate_signing_key();
        let parts = RequestParts {
            method: "get".into(),
            path: "/v1/jobs".into(),
            query: String::new(),
            ..RequestParts::default()
        };
        let params = SignatureParams {
            components: ["@method", "@path", "@query"].map(String::from).to_vec(),
            created: Some(1_700_000_000),
            keyid: Some("alice".into()),
            nonce: Some("n1".into()),
            alg: Some(ALG_ED25519.into()),
        };
        let h = sign(&parts, &params, LABEL, &key).unwrap();
        let got = ReceivedSignature::parse(&h.signature_input, &h.signature, LABEL).unwrap();
        assert_eq!(got.params, params);
        got.verify(&parts, &key.verifying_key()).unwrap();
        // A query added after signing changes "@query" from "?" to "?user=bob".
        let mut with_query = parts.clone();
        with_query.query = "user=bob".into();
        assert!(got.verify(&with_query, &key.verifying_key()).is_err());
        // Another key, an unknown label, garbage.
        assert!(
            got.verify(
                &parts,
                &crate::account::generate_signing_key().verifying_key()
            )
            .is_err()
        );
        assert!(ReceivedSignature::parse(&h.signature_input, &h.signature, "other").is_err());
        assert!(ReceivedSignature::parse("rai=nonsense", "rai=:AA==:", LABEL).is_err());
        assert!(ReceivedSignature::parse(&h.signature_input, "rai=notbytes", LABEL).is_err());
    }
}
