//! Reading a build file the way the original RAI did, and saying every surprise.
//!
//! The original read `rai_build.yml` with Go's non-strict yaml.v2: unknown keys were ignored, a repeated key took
//! the later value, and keys it knew but never used (`resources.cache`, `gpu.memory`, `limits.datasize`) did
//! nothing. Course projects written from 2016 to 2022 rely on all three, so refusing them breaks old projects. This
//! pass runs over the parsed tree before `serde` sees it: it knows every key the original knew ([`SCHEMA`]), drops
//! what rai does not use, rewrites the 2016 spelling `resources.gpus: N` to `resources.gpu.count: N`, and returns a
//! [`BuildWarning`] for each, pointing at the key. `serde` then reads the cleaned tree strictly, so a wrong type
//! is still an error with its line and column.

use std::fmt;

use crate::yaml::{self, Node, Value, YamlError};

/// Something in a build file that rai reads differently from what its author may think, or ignores: a warning, not
/// an error, unless the reader asked for strictness (`rai validate --strict`, `raid.strict_build_files`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildWarning(pub YamlError);

impl fmt::Display for BuildWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What rai does with a key.
#[derive(Debug, Clone, Copy)]
enum Meaning {
    /// Read and used.
    Used,
    /// Known to the original, read by nothing here; the text says what happens instead.
    NoEffect(&'static str),
}

/// A key of the build file: its name, what rai does with it, and the keys under it (a section) if any.
#[derive(Debug, Clone, Copy)]
struct Key {
    name: &'static str,
    meaning: Meaning,
    children: &'static [Key],
}

const fn used(name: &'static str) -> Key {
    Key {
        name,
        meaning: Meaning::Used,
        children: &[],
    }
}

const fn section(name: &'static str, children: &'static [Key]) -> Key {
    Key {
        name,
        meaning: Meaning::Used,
        children,
    }
}

const fn no_effect(name: &'static str, why: &'static str) -> Key {
    Key {
        name,
        meaning: Meaning::NoEffect(why),
        children: &[],
    }
}

/// Every key the original RAI knew (its Go `BuildSpecification`, the 2016 `version: 0.1` format) and the ones
/// rai added, in the order docs/build-file.md lists them.
const SCHEMA: &[Key] = &[
    section("rai", &[used("version"), used("image"), used("queue")]),
    // Parameters named by the student: serde reads them.
    used("matrix"),
    section(
        "resources",
        &[
            section("cpu", &[used("architecture")]),
            section(
                "gpu",
                &[
                    used("count"),
                    used("architecture"),
                    no_effect(
                        "memory",
                        "a job gets its GPUs whole; GPU memory is not divided between jobs",
                    ),
                ],
            ),
            // The 2016 spelling of gpu.count, rewritten by `rewrite_gpus`.
            used("gpus"),
            no_effect(
                "network",
                "the original rai ignored resources.network too: the network is off unless \
                 resources.limits.network is true",
            ),
            no_effect(
                "cache",
                "workers keep images between jobs on their own; there is nothing to ask for",
            ),
            used("datasets"),
            // A list: its entries' keys are read by serde, which ignores what the original did not know.
            used("dataresources"),
            section(
                "limits",
                &[
                    used("time"),
                    used("memory"),
                    used("cpus"),
                    used("network"),
                    no_effect(
                        "datasize",
                        "the size of /build is limited by the worker (raid.limits.output_bytes)",
                    ),
                ],
            ),
        ],
    ),
    section(
        "commands",
        &[
            used("build"),
            section(
                "build_image",
                &[
                    used("image_name"),
                    used("dockerfile"),
                    used("no_cache"),
                    no_effect(
                        "push",
                        "images built by a worker stay on that worker; they are never pushed",
                    ),
                ],
            ),
        ],
    ),
];

/// Cleans a parsed build file in place: drops unknown keys and keys with no effect, rewrites the 2016 spelling,
/// and returns a warning for each change, in file order.
pub(super) fn clean(root: &mut Node) -> Vec<BuildWarning> {
    let mut warnings = Vec::new();
    if let Value::Map(_) = root.value {
        prune(root, SCHEMA, "", &mut warnings);
        if let Some(resources) = map_value_mut(root, "resources") {
            rewrite_gpus(resources, &mut warnings);
        }
        drop_blank_commands(root, &mut warnings);
        if let Some(resources) = map_value_mut(root, "resources") {
            note_data_urls(resources, &mut warnings);
        }
    }
    warnings.sort_by_key(|w| w.0.mark.map(|m| (m.line, m.col)));
    warnings
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn prune(node: &mut Node, keys: &[Key], prefix: &str, warnings: &mut Vec<BuildWarning>) {
    let Value::Map(entries) = &mut node.value else {
        // Not a mapping: serde says what was expected, with the position.
        return;
    };
    let names: Vec<&str> = keys.iter().map(|k| k.name).collect();
    entries.retain_mut(|(k, v)| {
        let Some(name) = k.scalar_text().map(str::to_string) else {
            return true;
        };
        let path = join(prefix, &name);
        match keys.iter().find(|key| key.name == name) {
            None => {
                let suggested = yaml::suggest(&name, &names);
                let hint = match suggested {
                    Some(s) => format!(" (did you mean \"{s}\"?)"),
                    None if prefix.is_empty() => {
                        " (a build file has rai, resources, commands and matrix)".to_string()
                    }
                    None => format!(" (known here: {})", names.join(", ")),
                };
                warnings.push(BuildWarning(
                    YamlError::at(k, &path, format!("unknown key \"{name}\", ignored{hint}"))
                        .suggesting(suggested),
                ));
                false
            }
            Some(Key {
                meaning: Meaning::NoEffect(why),
                ..
            }) => {
                warnings.push(BuildWarning(YamlError::at(
                    k,
                    &path,
                    format!("has no effect here and is ignored: {why}"),
                )));
                false
            }
            Some(key) => {
                if !key.children.is_empty() {
                    prune(v, key.children, &path, warnings);
                }
                true
            }
        }
    });
}

fn map_value_mut<'a>(node: &'a mut Node, key: &str) -> Option<&'a mut Node> {
    match &mut node.value {
        Value::Map(entries) => entries
            .iter_mut()
            .find(|(k, _)| k.scalar_text() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// `resources.gpus: N` (the 2016 format) means `resources.gpu.count: N`; when both are written, `gpu` wins.
fn rewrite_gpus(resources: &mut Node, warnings: &mut Vec<BuildWarning>) {
    let Value::Map(entries) = &mut resources.value else {
        return;
    };
    let Some(at) = entries
        .iter()
        .position(|(k, _)| k.scalar_text() == Some("gpus"))
    else {
        return;
    };
    let (key, count) = entries.remove(at);
    if entries.iter().any(|(k, _)| k.scalar_text() == Some("gpu")) {
        warnings.push(BuildWarning(YamlError::at(
            &key,
            "resources.gpus",
            "is the 2016 spelling of resources.gpu.count and resources.gpu is also given; gpus is ignored",
        )));
        return;
    }
    let mut gpu_key = key.clone();
    gpu_key.value = Value::Scalar {
        text: "gpu".into(),
        plain: true,
    };
    let mut count_key = key;
    count_key.value = Value::Scalar {
        text: "count".into(),
        plain: true,
    };
    let gpu = Node {
        mark: count.mark,
        value: Value::Map(vec![(count_key, count)]),
    };
    entries.insert(at, (gpu_key, gpu));
}

/// A 2017 data resource's URL is not fetched any more: the entry mounts the course dataset its mount names, where
/// a worker offers one. Said once per entry with a source, at the source.
fn note_data_urls(resources: &mut Node, warnings: &mut Vec<BuildWarning>) {
    let Some(list) = map_value_mut(resources, "dataresources") else {
        return;
    };
    let Value::Seq(items) = &list.value else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let Value::Map(entries) = &item.value else {
            continue;
        };
        let Some((key, _)) = entries
            .iter()
            .find(|(k, _)| k.scalar_text() == Some("source"))
        else {
            continue;
        };
        let mount = entries
            .iter()
            .find(|(k, _)| k.scalar_text() == Some("mount"))
            .and_then(|(_, v)| v.scalar_text())
            .unwrap_or("");
        let what = match super::mount_dataset(mount) {
            Some(named) => format!(
                "mounts the course dataset \"{named}\" at /data/{named} where a worker offers it"
            ),
            None => "names no dataset in its mount (write mount: /data/NAME)".to_string(),
        };
        warnings.push(BuildWarning(YamlError::at(
            key,
            &format!("resources.dataresources[{i}].source"),
            format!(
                "data is not fetched from URLs; the entry {what}; `rai datasets` lists the course's, and \
                 resources.datasets asks for one by name"
            ),
        )));
    }
}

/// Blank commands were skipped by the original; rai drops them with a warning.
fn drop_blank_commands(root: &mut Node, warnings: &mut Vec<BuildWarning>) {
    let Some(build) = map_value_mut(root, "commands").and_then(|c| map_value_mut(c, "build"))
    else {
        return;
    };
    let Value::Seq(items) = &mut build.value else {
        return;
    };
    let mut index = 0;
    items.retain(|item| {
        let blank = match &item.value {
            Value::Null => true,
            Value::Scalar { text, .. } => text.trim().is_empty(),
            _ => false,
        };
        if blank {
            warnings.push(BuildWarning(YamlError::at(
                item,
                &format!("commands.build[{index}]"),
                "the command is empty and is skipped",
            )));
        }
        index += 1;
        !blank
    });
}

/// The version shapes the original wrote (`0.1`, `0.2`, `0.2.20`): any `0.x` or `0.x.y`.
pub(super) fn version_known(version: &str) -> bool {
    let mut parts = version.split('.');
    parts.next() == Some("0")
        && parts.clone().count() <= 2
        && parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && version.contains('.')
}

/// Every key of [`SCHEMA`] by its whole path (`resources.limits.time`), sections too, with whether rai uses it.
#[cfg(test)]
fn keys() -> Vec<(String, bool)> {
    fn walk(keys: &[Key], prefix: &str, out: &mut Vec<(String, bool)>) {
        for key in keys {
            let path = join(prefix, key.name);
            out.push((path.clone(), matches!(key.meaning, Meaning::Used)));
            walk(key.children, &path, out);
        }
    }
    let mut out = Vec::new();
    walk(SCHEMA, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema is the one list of keys: each one, used or not, is in the build-file guide by its whole path, so
    /// a key added here and not documented (or documented and not here, which drops it with a warning) fails.
    #[test]
    fn every_key_of_the_schema_is_in_the_build_file_guide() {
        let guide = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/build-file.md"
        ));
        let undocumented: Vec<String> = keys()
            .into_iter()
            .map(|(path, _)| path)
            .filter(|path| path.contains('.') && !guide.contains(path.as_str()))
            .collect();
        assert!(
            undocumented.is_empty(),
            "docs/build-file.md does not name {undocumented:?}"
        );
        assert!(keys().contains(&("resources.limits.time".to_string(), true)));
        assert!(keys().contains(&("commands.build_image.push".to_string(), false)));
    }

    /// The schema and the structs that read the cleaned file name the same keys: a field serde reads that the
    /// schema lacks would be dropped from every build file with a warning, and a key the schema keeps that no
    /// field reads would be refused as unknown. The schema is the one table; this holds the structs to it.
    #[test]
    fn the_schema_and_the_structs_serde_reads_name_the_same_keys() {
        // Carried with a job, set by rai from what reading the file warned: never read from a build file.
        const CARRIED: &[&str] = &["warnings"];
        // Spellings rewritten before serde reads the file.
        const REWRITTEN: &[&str] = &["resources.gpus"];
        let read = crate::build_spec::serde_fields::paths::<crate::BuildSpec>();
        let schema: Vec<(String, bool)> = keys().into_iter().filter(|(_, used)| *used).collect();
        let section_in_schema = |path: &str| {
            schema
                .iter()
                .any(|(p, _)| p.strip_prefix(path).is_some_and(|r| r.starts_with('.')))
        };
        let mut wrong = Vec::new();
        for (path, section) in &read {
            if CARRIED.contains(&path.as_str()) {
                continue;
            }
            if !schema.iter().any(|(p, _)| p == path) {
                wrong.push(format!(
                    "serde reads {path}, which the schema does not keep"
                ));
            } else if *section != section_in_schema(path) {
                wrong.push(format!(
                    "{path} is a section for serde: {section}, for the schema: {}",
                    section_in_schema(path)
                ));
            }
        }
        for (path, _) in &schema {
            if !REWRITTEN.contains(&path.as_str()) && !read.iter().any(|(p, _)| p == path) {
                wrong.push(format!("the schema keeps {path}, which no field reads"));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
        assert!(read.contains(&("resources.limits.time".to_string(), false)));
        assert!(read.contains(&("commands.build_image".to_string(), true)));
    }

    fn cleaned(text: &str) -> (Node, Vec<String>) {
        let mut root = yaml::parse(text, &yaml::Limits::SMALL).unwrap().unwrap();
        let warnings = clean(&mut root);
        (root, warnings.iter().map(|w| w.to_string()).collect())
    }

    #[test]
    fn unknown_and_no_effect_keys_are_dropped_with_their_positions() {
        let (root, w) = cleaned(
            "rai:\n  image: x\n  imgae: y\nresources:\n  cache: true\n  gpu:\n    memory: 8\nextra: 1\ncommands:\n  build: [make]\n",
        );
        assert_eq!(root.at_path(&["rai", "imgae"]), None);
        assert_eq!(root.at_path(&["resources", "cache"]), None);
        assert_eq!(root.at_path(&["resources", "gpu", "memory"]), None);
        assert_eq!(root.get("extra"), None);
        assert_eq!(w.len(), 4, "{w:?}");
        assert_eq!(
            w[0],
            "line 3:3: rai.imgae: unknown key \"imgae\", ignored (did you mean \"image\"?)"
        );
        assert!(w[1].starts_with("line 5:3: resources.cache: has no effect here"));
        assert!(w[2].starts_with("line 7:5: resources.gpu.memory: has no effect here"));
        assert!(
            w[3].starts_with("line 8:1: extra: unknown key \"extra\", ignored (a build file has")
        );
    }

    #[test]
    fn the_2016_gpus_key_becomes_gpu_count() {
        let (root, w) = cleaned("resources:\n  gpus: 2\n");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            root.at_path(&["resources", "gpu", "count"])
                .and_then(Node::scalar_text),
            Some("2")
        );
        let (root, w) = cleaned("resources:\n  gpus: 2\n  gpu: {count: 1}\n");
        assert_eq!(w.len(), 1);
        assert_eq!(
            root.at_path(&["resources", "gpu", "count"])
                .and_then(Node::scalar_text),
            Some("1")
        );
    }

    #[test]
    fn blank_commands_are_skipped() {
        let (root, w) = cleaned("commands:\n  build:\n    - make\n    - \"\"\n    -\n    - run\n");
        let Value::Seq(items) = &root.at_path(&["commands", "build"]).unwrap().value else {
            panic!()
        };
        assert_eq!(items.len(), 2);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("line 4:7: commands.build[1]: the command is empty"));
        assert!(w[1].contains("commands.build[2]"), "{w:?}");
    }

    #[test]
    fn versions_the_original_wrote_are_known() {
        for v in ["0.1", "0.2", "0.3", "0.2.20", "0.10"] {
            assert!(version_known(v), "{v}");
        }
        for v in ["1.0", "9.9", "0", "0.", "0.2.x", "0.1.2.3", "v0.2", ""] {
            assert!(!version_known(v), "{v}");
        }
    }
}
