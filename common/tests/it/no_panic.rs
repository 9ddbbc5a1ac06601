//! Property tests: no parser in rai panics on arbitrary input. Each parser gets raw bytes and, because raw bytes
//! rarely get past a YAML or JSON scanner, also text assembled from fragments of the real formats.

use chrono::Utc;
use proptest::prelude::*;
use rai_common::account::{Profile, Registry};
use rai_common::config::ConfigSources;
use rai_common::job::{Freshness, SignedJob};
use rai_common::{BuildSpec, Config};

const YAML_FRAGMENTS: &[&str] = &[
    "rai:",
    "\n",
    "\n  ",
    "\n    ",
    "- ",
    "version: 0.2",
    "image: nvidia/cuda",
    "commands:",
    "build:",
    "resources:",
    "gpu:",
    "count: ",
    "-1",
    "1e9",
    "limits:",
    "time: ",
    "10m",
    "memory: ",
    "4g",
    "network: ",
    "true",
    "~",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "[",
    "]",
    "{",
    "}",
    ", ",
    ": ",
    "'",
    "\"",
    "\t",
    "---",
    "...",
    "# c",
    "? ",
    "!!str ",
    "!!int ",
    "|",
    ">",
    "%YAML 1.2",
    "\u{feff}",
    "é",
    "\\",
    "profile:",
    "username: u",
    "access_key: ",
    "secret_key: ",
    "users:",
    "public_key: ",
    "created: 2026-01-01T00:00:00Z",
    "revoked: ",
    "queue:",
    "raid:",
    "enc:v1:AAAA",
    "==AES32==AAAA",
    "concurrency: ",
    "99999999999999999999999",
];

const JSON_FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"v\"",
    "1",
    "2",
    "\"payload\"",
    "\"sig\"",
    "\"{\\\"id\\\":\\\"01\"",
    "\"\"",
    "null",
    "true",
    "\"user\"",
    "\"alice\"",
    "\\u0000",
    "\"AAAA\"",
    "-1e400",
    "\"created_at\"",
];

fn assembled(fragments: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(fragments), 0..80).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn build_file_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..1024), text in assembled(YAML_FRAGMENTS)) {
        let _ = BuildSpec::parse_bytes(&bytes, "rai_build.yml");
        let _ = BuildSpec::parse(&text, "rai_build.yml");
    }

    #[test]
    fn profile_and_registry_never_panic(text in assembled(YAML_FRAGMENTS), raw in ".{0,512}") {
        let _ = Profile::parse(&text, "p");
        let _ = Profile::parse(&raw, "p");
        let _ = Registry::parse(&text, "r");
        let _ = Registry::parse(&raw, "r");
    }

    #[test]
    fn config_never_panics(text in assembled(YAML_FRAGMENTS), env_value in assembled(YAML_FRAGMENTS)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yml");
        std::fs::write(&path, &text).unwrap();
        let sources = ConfigSources {
            user: Some(path),
            env: vec![("RAI_RAID_QUEUES".into(), env_value.clone()), ("RAI_QUEUE_LEASE".into(), env_value)],
            ..Default::default()
        };
        let _ = Config::load(&sources);
    }

    #[test]
    fn job_message_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..1024), text in assembled(JSON_FRAGMENTS)) {
        let reg = Registry::default();
        let _ = SignedJob::verify(&bytes, &reg, Utc::now(), Freshness::default());
        let _ = SignedJob::verify(text.as_bytes(), &reg, Utc::now(), Freshness::default());
        let _ = SignedJob::claimed_id(text.as_bytes());
    }
}
