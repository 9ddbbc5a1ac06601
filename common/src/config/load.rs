//! Layered loading: defaults < baked course config < system file < user file < explicit file < environment < flags.
//!
//! Each layer is checked against the schema on its own, merged over the defaults, before the layers are merged
//! together: an unknown key or a wrong type is reported with the file, line and column that introduced it, not
//! somewhere in an anonymous merged tree.

use std::path::{Path, PathBuf};

use rai_crypto::AppSecret;

use super::{BAKED_YAML, Config, DEFAULTS_YAML};
use crate::errors::ConfigError;
use crate::yaml::{self, Limits, Node, Value, YamlError};

/// Where the layers come from. [`ConfigSources::standard`] fills it from the machine; tests fill it by hand.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// `/etc/rai/config.yml`; skipped when missing.
    pub system: Option<PathBuf>,
    /// `~/.rai_config.yml`; skipped when missing.
    pub user: Option<PathBuf>,
    /// A file named on the command line (`raid -c FILE`); an error when missing.
    pub explicit: Option<PathBuf>,
    /// Environment variables (only `RAI_<KEY PATH>` names of known keys are read).
    pub env: Vec<(String, String)>,
    /// Flag overrides, as `(key path, YAML value)`.
    pub overrides: Vec<(String, String)>,
    /// The app secret for encrypted values.
    pub secret: Option<AppSecret>,
}

impl ConfigSources {
    /// The standard sources of this machine and process, plus an explicit file and a secret.
    pub fn standard(explicit: Option<PathBuf>, secret: Option<AppSecret>) -> ConfigSources {
        ConfigSources {
            system: Some(PathBuf::from("/etc/rai/config.yml")),
            user: crate::paths::home_dir().map(|h| h.join(".rai_config.yml")),
            explicit,
            env: std::env::vars()
                .filter(|(k, _)| k.starts_with("RAI_"))
                .collect(),
            overrides: Vec::new(),
            secret,
        }
    }
}

fn defaults() -> Node {
    let mut node = yaml::parse(DEFAULTS_YAML, &Limits::SMALL)
        .expect("the built-in defaults are valid YAML")
        .expect("the built-in defaults are not empty");
    // Defaults carry no position: an error that lands on one must be reported at the layer that caused it.
    strip_marks(&mut node);
    node
}

fn strip_marks(node: &mut Node) {
    node.mark = Default::default();
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(strip_marks),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            strip_marks(k);
            strip_marks(v);
        }),
        _ => {}
    }
}

/// Merges `layer` over `base`: mappings key by key, anything else replaced whole.
fn merge(base: &mut Node, layer: Node) {
    match (&mut base.value, layer.value) {
        (Value::Map(base_entries), Value::Map(layer_entries)) => {
            for (k, v) in layer_entries {
                let key = k.scalar_text().unwrap_or("").to_string();
                match base_entries
                    .iter_mut()
                    .find(|(bk, _)| bk.scalar_text() == Some(&key))
                {
                    Some((_, bv)) => merge(bv, v),
                    None => base_entries.push((k, v)),
                }
            }
        }
        (_, value) => {
            base.value = value;
            base.mark = layer.mark;
        }
    }
}

/// Every key path that holds a value (not a mapping), in the order of the defaults.
pub fn leaf_paths() -> Vec<Vec<String>> {
    fn walk(node: &Node, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match &node.value {
            Value::Map(entries) => {
                for (k, v) in entries {
                    prefix.push(k.scalar_text().unwrap_or("").to_string());
                    walk(v, prefix, out);
                    prefix.pop();
                }
            }
            _ => out.push(prefix.clone()),
        }
    }
    let mut out = Vec::new();
    walk(&defaults(), &mut Vec::new(), &mut out);
    out
}

/// The environment variable that sets a key path: `raid.limits.log_bytes` → `RAI_RAID_LIMITS_LOG_BYTES`.
pub fn env_var_name(path: &[String]) -> String {
    format!("RAI_{}", path.join("_").to_ascii_uppercase())
}

/// Builds a one-key layer `{a: {b: value}}` for a path.
fn layer_for(path: &[String], value: Node) -> Node {
    path.iter().rev().fold(value, |inner, key| {
        Node::synthetic(Value::Map(vec![(Node::plain(key.clone()), inner)]))
    })
}

/// Reads a value given outside a file (environment, flag) as YAML, splitting `a,b` into a list where a list is due.
fn scalar_layer(
    path: &[String],
    text: &str,
    source: &str,
    default: &Node,
) -> Result<Node, ConfigError> {
    let mut value = yaml::parse(text, &Limits::SMALL)
        .map_err(|e| e.in_source(source))?
        .unwrap_or_else(|| Node::synthetic(Value::Null));
    strip_marks(&mut value);
    if let (Value::Seq(_), Value::Scalar { text, .. }) = (&default.value, &value.value) {
        let items = text.split(',').map(|s| Node::plain(s.trim())).collect();
        value = Node::synthetic(Value::Seq(items));
    }
    Ok(layer_for(path, value))
}

fn read_layer(path: &Path, required: bool) -> Result<Option<(Node, String)>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return if required {
                Err(ConfigError::Missing(path.to_path_buf()))
            } else {
                Ok(None)
            };
        }
        Err(e) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source: e,
            });
        }
    };
    let name = path.display().to_string();
    parse_layer(&text, &name).map(|n| n.map(|n| (n, name)))
}

fn parse_layer(text: &str, name: &str) -> Result<Option<Node>, ConfigError> {
    Ok(yaml::parse(text, &Limits::SMALL).map_err(|e| e.in_source(name))?)
}

/// Decrypts every encrypted scalar in place, naming the key path in errors.
fn decrypt_tree(
    node: &mut Node,
    path: &mut Vec<String>,
    secret: Option<&AppSecret>,
) -> Result<(), ConfigError> {
    match &mut node.value {
        Value::Scalar { text, .. } if rai_crypto::is_encrypted(text) => {
            let key = path.join(".");
            let secret = secret.ok_or_else(|| ConfigError::NoSecret { key: key.clone() })?;
            *text = rai_crypto::decrypt(secret, text)
                .map_err(|source| ConfigError::Decrypt { key, source })?;
        }
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(format!("[{i}]"));
                decrypt_tree(item, path, secret)?;
                path.pop();
            }
            // Lists print as a.b[0], not a.b.[0].
        }
        Value::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                path.push(k.scalar_text().unwrap_or("").to_string());
                decrypt_tree(v, path, secret)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

impl Config {
    /// The built-in defaults alone.
    pub fn defaults() -> Config {
        yaml::from_node(&defaults()).expect("the built-in defaults fit the schema")
    }

    /// Loads the layered configuration.
    pub fn load(sources: &ConfigSources) -> Result<Config, ConfigError> {
        let base = defaults();
        let mut layers: Vec<(Node, String)> = Vec::new();
        if let Some(n) = parse_layer(BAKED_YAML, "the built-in course config")? {
            layers.push((n, "the built-in course config".into()));
        }
        for (path, required) in [
            (&sources.system, false),
            (&sources.user, false),
            (&sources.explicit, true),
        ] {
            if let Some(p) = path
                && let Some(layer) = read_layer(p, required)?
            {
                layers.push(layer);
            }
        }
        let leaves = leaf_paths();
        for path in &leaves {
            let name = env_var_name(path);
            if let Some((_, text)) = sources.env.iter().find(|(k, _)| *k == name) {
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                let default = base.at_path(&refs).expect("a leaf of the defaults");
                let source = format!("environment variable {name}");
                layers.push((scalar_layer(path, text, &source, default)?, source));
            }
        }
        for (key, text) in &sources.overrides {
            let path: Vec<String> = key.split('.').map(str::to_string).collect();
            let Some(_) = leaves.iter().find(|l| **l == path) else {
                let names: Vec<String> = leaves.iter().map(|l| l.join(".")).collect();
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                let hint = yaml::suggest(key, &refs)
                    .map(|s| format!(" (did you mean \"{s}\"?)"))
                    .unwrap_or_default();
                return Err(ConfigError::UnknownKey {
                    key: key.clone(),
                    hint,
                });
            };
            let refs: Vec<&str> = path.iter().map(String::as_str).collect();
            let default = base.at_path(&refs).expect("a leaf of the defaults");
            let source = format!("--{key}");
            layers.push((scalar_layer(&path, text, &source, default)?, source));
        }

        // Check each layer alone over the defaults, so errors name their own source. Encrypted values are checked
        // after decryption, below; here they only need to be text.
        for (layer, source) in &layers {
            let mut alone = base.clone();
            merge(&mut alone, layer.clone());
            yaml::from_node::<Config>(&alone)
                .map_err(|e| e.in_source(source))
                .or_else(|e| tolerate_encrypted(e, &alone))?;
        }
        let mut merged = base;
        for (layer, _) in layers {
            merge(&mut merged, layer);
        }
        decrypt_tree(&mut merged, &mut Vec::new(), sources.secret.as_ref())?;
        let config: Config = yaml::from_node(&merged)?;
        if let Some((path, why)) = config.raid.floor_broken() {
            let node = merged.at_path(path).unwrap_or(&merged);
            return Err(YamlError::at(node, &path.join("."), why).into());
        }
        Ok(config)
    }
}

/// A layer whose only fault is a still-encrypted value in a typed field passes the per-layer check.
fn tolerate_encrypted(e: YamlError, tree: &Node) -> Result<Config, YamlError> {
    let refs: Vec<&str> = e.path.split('.').collect();
    match tree.at_path(&refs).and_then(Node::scalar_text) {
        Some(t) if rai_crypto::is_encrypted(t) => Ok(Config::defaults()),
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{QueueBackend, StoreBackend};
    use crate::units::{Bytes, Span};

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn defaults_fit_the_schema_and_env_names_are_unique() {
        let c = Config::defaults();
        assert_eq!(c.queue.backend, QueueBackend::Redis);
        assert_eq!(c.store.backend, StoreBackend::Fs);
        let names: Vec<String> = leaf_paths().iter().map(|p| env_var_name(p)).collect();
        let unique: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        assert!(names.contains(&"RAI_RAID_LIMITS_LOG_BYTES".to_string()));
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let system = write(
            dir.path(),
            "system.yml",
            "queue:\n  name: sys\n  lease: 5m\nraid:\n  concurrency: 2\n",
        );
        let user = write(dir.path(), "user.yml", "queue:\n  name: user\n");
        let explicit = write(
            dir.path(),
            "x.yml",
            "raid:\n  concurrency: 3\n  queues: [a, b]\n",
        );
        let sources = ConfigSources {
            system: Some(system),
            user: Some(user),
            explicit: Some(explicit),
            env: vec![
                ("RAI_RAID_CONCURRENCY".into(), "4".into()),
                ("RAI_RAID_IMAGES".into(), "busybox:*, nvidia/cuda:*".into()),
                ("RAI_SECRET".into(), "not a config key".into()),
            ],
            overrides: vec![("client.max_upload".into(), "2g".into())],
            secret: None,
        };
        let c = Config::load(&sources).unwrap();
        assert_eq!(c.queue.name, "user");
        assert_eq!(c.queue.lease, Span::from_secs(300));
        assert_eq!(c.raid.concurrency, Some(4));
        assert_eq!(c.raid.queues, vec!["a", "b"]);
        assert_eq!(c.raid.images, vec!["busybox:*", "nvidia/cuda:*"]);
        assert_eq!(c.client.max_upload, Bytes(2 << 30));
    }

    #[test]
    fn unknown_key_names_file_line_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let user = write(
            dir.path(),
            "user.yml",
            "queue:\n  name: q\nraid:\n  limits:\n    memroy: 4g\n",
        );
        let sources = ConfigSources {
            user: Some(user.clone()),
            ..Default::default()
        };
        let e = Config::load(&sources).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}:5:5: raid.limits: unknown key \"memroy\" (did you mean \"memory\"?)",
                user.display()
            )
        );
    }

    #[test]
    fn limits_below_their_floor_are_refused() {
        for (key, value, words) in [
            (
                "raid.limits.pids",
                "0",
                "raid.limits.pids: must be at least 16 (0 would mean no limit)",
            ),
            (
                "raid.limits.memory",
                "0",
                "raid.limits.memory: must be at least 6m",
            ),
            (
                "raid.defaults.cpus",
                "0.0000000001",
                "raid.defaults.cpus: must be at least 0.01",
            ),
            (
                "raid.limits.output_bytes",
                "0",
                "raid.limits.output_bytes: must be at least 1k",
            ),
            (
                "raid.defaults.time",
                "0s",
                "raid.defaults.time: must be longer than zero",
            ),
            (
                "raid.defaults.memory",
                "64g",
                "raid.defaults: asks for more time or memory",
            ),
        ] {
            let sources = ConfigSources {
                overrides: vec![(key.into(), value.into())],
                ..Default::default()
            };
            let e = Config::load(&sources).unwrap_err().to_string();
            assert!(e.contains(words), "{key}={value}: {e}");
        }
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let sources = ConfigSources {
            env: vec![("RAI_RAID_CONCURRENCY".into(), "lots".into())],
            ..Default::default()
        };
        let e = Config::load(&sources).unwrap_err().to_string();
        assert!(
            e.starts_with("environment variable RAI_RAID_CONCURRENCY: raid.concurrency: expected"),
            "{e}"
        );
    }

    #[test]
    fn unknown_override_suggests() {
        let sources = ConfigSources {
            overrides: vec![("raid.concurency".into(), "2".into())],
            ..Default::default()
        };
        let e = Config::load(&sources).unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown config key \"raid.concurency\" (did you mean \"raid.concurrency\"?)"
        );
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let sources = ConfigSources {
            explicit: Some("/nonexistent/raid.yml".into()),
            ..Default::default()
        };
        assert!(matches!(
            Config::load(&sources),
            Err(ConfigError::Missing(_))
        ));
    }

    #[test]
    fn encrypted_values_decrypt_with_the_right_secret_only() {
        let dir = tempfile::tempdir().unwrap();
        let secret = AppSecret::new("course-secret");
        let enc = rai_crypto::encrypt(&secret, "wJalrXUtnFEMI").unwrap();
        let user = write(
            dir.path(),
            "user.yml",
            &format!("aws:\n  secret_access_key: {enc}\n"),
        );
        let mut sources = ConfigSources {
            user: Some(user),
            secret: Some(secret),
            ..Default::default()
        };
        let c = Config::load(&sources).unwrap();
        assert_eq!(c.aws.secret_access_key.as_deref(), Some("wJalrXUtnFEMI"));

        sources.secret = Some(AppSecret::new("wrong"));
        assert_eq!(
            Config::load(&sources).unwrap_err().to_string(),
            "cannot decrypt aws.secret_access_key: wrong app secret or corrupted value"
        );
        sources.secret = None;
        assert!(
            Config::load(&sources)
                .unwrap_err()
                .to_string()
                .starts_with("aws.secret_access_key is encrypted, but no app secret was given")
        );
    }

    #[test]
    fn encrypted_typed_value_decrypts_before_typing() {
        let secret = AppSecret::new("s");
        let enc = rai_crypto::encrypt(&secret, "7").unwrap();
        let sources = ConfigSources {
            env: vec![("RAI_RAID_CONCURRENCY".into(), enc)],
            secret: Some(secret),
            ..Default::default()
        };
        assert_eq!(Config::load(&sources).unwrap().raid.concurrency, Some(7));
    }
}
