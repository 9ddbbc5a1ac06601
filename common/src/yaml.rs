//! Strict YAML reading that remembers where every value came from.
//!
//! Every YAML file rai reads (the build file, configuration layers, profiles, the account registry) goes through
//! here, for two reasons. First, errors must point at a line and column and name the key, in words a student
//! understands: `rai_build.yml:7:5: unknown key "comands" (did you mean "commands"?)`. Second, input may be hostile:
//! a file's size, nesting depth and node count are capped, and aliases are expanded only within that node budget,
//! so an alias bomb is refused instead of eating the machine.
//!
//! [`parse`] builds a [`Node`] tree from the parser's events; [`from_node`] drives `serde` derives over it with
//! type-directed scalars (`version: 0.2` reads fine into a `String`), duplicate keys refused, and errors located at
//! the deepest node that caused them.
//!
//! Over 450 lines: the node tree, its budget and the deserializer share private types and invariants.

use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, Expected, IntoDeserializer, MapAccess,
    SeqAccess, Unexpected, VariantAccess, Visitor,
};

/// A position in a YAML text, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    pub line: usize,
    pub col: usize,
}

/// A YAML value. Scalars keep their text: their type is decided by what the reader asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Scalar { text: String, plain: bool },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A value and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub mark: Mark,
}

impl Node {
    /// A node made in code (defaults, environment overrides), marked at 0:0.
    pub fn synthetic(value: Value) -> Node {
        Node {
            value,
            mark: Mark::default(),
        }
    }

    /// A plain scalar made in code.
    pub fn plain(text: impl Into<String>) -> Node {
        Node::synthetic(Value::Scalar {
            text: text.into(),
            plain: true,
        })
    }

    /// The value under `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.scalar_text() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The node at a dotted path of mapping keys.
    pub fn at_path(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, key| node.get(key))
    }

    /// The key node (not the value) of `key` when this node is a mapping: where a key's errors should point.
    pub fn key_node(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.scalar_text() == Some(key))
                .map(|(k, _)| k),
            _ => None,
        }
    }

    /// The text of a scalar.
    pub fn scalar_text(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    fn describe(&self) -> &'static str {
        match &self.value {
            Value::Null => "an empty value",
            Value::Scalar { .. } => "a single value",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Bounds on what [`parse`] accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest text accepted, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of lists and mappings.
    pub max_depth: usize,
    /// Most nodes, counting every node an alias expands to.
    pub max_nodes: usize,
}

impl Limits {
    /// Limits for small hand-written files (build files, profiles, configs).
    pub const SMALL: Limits = Limits {
        max_bytes: 256 * 1024,
        max_depth: 32,
        max_nodes: 20_000,
    };
}

/// A YAML error: where, under which key, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// The file (or other source, such as `RAI_QUEUE_NAME`) the text came from; empty when unknown.
    pub source_name: String,
    pub mark: Option<Mark>,
    /// The dotted key path (`resources.gpu.count`, `commands.build[2]`); empty at the top.
    pub path: String,
    pub message: String,
    /// What the error says about a key, for a caller that adds a hint; never parsed back out of the message (boxed:
    /// most errors have none, and every `Result` carrying one stays small).
    pub key: Option<Box<KeyNote>>,
}

/// What an error says about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyNote {
    /// The key whose absence is the error (a missing `build`).
    Missing(String),
    /// An unknown key, and the known key it most looks like (the message's "did you mean").
    LooksLike(String),
}

impl YamlError {
    /// An error with no position yet.
    pub fn new(message: impl Into<String>) -> Self {
        YamlError {
            source_name: String::new(),
            mark: None,
            path: String::new(),
            message: message.into(),
            key: None,
        }
    }

    /// The same error, saying the key `key` is missing.
    pub fn missing_key(mut self, key: &str) -> Self {
        self.key = Some(Box::new(KeyNote::Missing(key.to_string())));
        self
    }

    /// The key whose absence is the error, if that is the error.
    pub fn missing(&self) -> Option<&str> {
        match self.key.as_deref() {
            Some(KeyNote::Missing(key)) => Some(key),
            _ => None,
        }
    }

    /// For an unknown key, the known key it most looks like.
    pub fn looks_like(&self) -> Option<&str> {
        match self.key.as_deref() {
            Some(KeyNote::LooksLike(key)) => Some(key),
            _ => None,
        }
    }

    /// The same error, naming the known key an unknown one looks like.
    pub fn suggesting(mut self, key: Option<&str>) -> Self {
        if let Some(key) = key {
            self.key = Some(Box::new(KeyNote::LooksLike(key.to_string())));
        }
        self
    }

    /// An error at `node`, under `path`.
    pub fn at(node: &Node, path: &str, message: impl Into<String>) -> Self {
        let mut e = YamlError::new(message);
        e.mark = (node.mark != Mark::default()).then_some(node.mark);
        e.path = path.to_string();
        e
    }

    /// Names the source of the text, once.
    pub fn in_source(mut self, name: &str) -> Self {
        if self.source_name.is_empty() {
            self.source_name = name.to_string();
        }
        self
    }

    fn locate(mut self, node: &Node, path: &str) -> Self {
        if self.mark.is_none() && node.mark != Mark::default() {
            self.mark = Some(node.mark);
        }
        if self.path.is_empty() {
            self.path = path.to_string();
        }
        self
    }
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut prefix = self.source_name.clone();
        if let Some(m) = self.mark {
            if prefix.is_empty() {
                prefix = format!("line {}:{}", m.line, m.col);
            } else {
                prefix = format!("{prefix}:{}:{}", m.line, m.col);
            }
        }
        if !prefix.is_empty() {
            write!(f, "{prefix}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for YamlError {}

/// Writes `text` as a double-quoted YAML scalar. JSON's string escapes are a subset of YAML's, so the JSON form is
/// always a valid YAML scalar that reads back to the same text.
pub fn quote(text: &str) -> String {
    serde_json::to_string(text).expect("a string always serializes")
}

/// Finds the closest of `candidates` to a misspelt `word`, for "did you mean" hints.
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(&word.to_lowercase(), c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn one_of(candidates: &[&str]) -> String {
    candidates
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rewrites serde's type names into words for people who write YAML, not Rust.
fn friendly_expected(exp: &dyn Expected) -> String {
    let raw = exp.to_string();
    match raw.as_str() {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number (0 or more)".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false".into(),
        "a string" => "text".into(),
        "a sequence" => "a list".into(),
        "a map" => "a mapping".into(),
        s if s.starts_with("struct ") => "a mapping".into(),
        s if s.starts_with("a sequence") => "a list".into(),
        _ => raw,
    }
}

fn friendly_unexpected(unexp: Unexpected<'_>) -> String {
    match unexp {
        Unexpected::Str(s) => format!("\"{}\"", s.escape_debug()),
        Unexpected::Signed(n) => n.to_string(),
        Unexpected::Unsigned(n) => n.to_string(),
        Unexpected::Float(x) => x.to_string(),
        Unexpected::Bool(b) => b.to_string(),
        Unexpected::Seq => "a list".into(),
        Unexpected::Map => "a mapping".into(),
        Unexpected::Unit => "an empty value".into(),
        other => other.to_string(),
    }
}

impl de::Error for YamlError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        YamlError::new(msg.to_string())
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        YamlError::new(format!(
            "expected {}, found {}",
            friendly_expected(exp),
            friendly_unexpected(unexp)
        ))
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        YamlError::new(format!(
            "invalid value {}: expected {}",
            friendly_unexpected(unexp),
            friendly_expected(exp)
        ))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let hint = match suggest(field, expected) {
            Some(s) => format!(" (did you mean \"{s}\"?)"),
            None if expected.is_empty() => " (no keys are allowed here)".into(),
            None => format!(" (expected one of {})", one_of(expected)),
        };
        YamlError::new(format!("unknown key \"{field}\"{hint}"))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let hint = match suggest(variant, expected) {
            Some(s) => format!(" (did you mean \"{s}\"?)"),
            None => format!(" (expected one of {})", one_of(expected)),
        };
        YamlError::new(format!("unknown value \"{variant}\"{hint}"))
    }

    fn missing_field(field: &'static str) -> Self {
        YamlError::new(format!("missing key \"{field}\"")).missing_key(field)
    }

    fn duplicate_field(field: &'static str) -> Self {
        YamlError::new(format!("key \"{field}\" appears twice"))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing events into nodes.

enum Frame {
    Seq {
        mark: Mark,
        anchor: usize,
        first_node: usize,
        items: Vec<Node>,
    },
    Map {
        mark: Mark,
        anchor: usize,
        first_node: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

/// What [`parse_with`] does with a key repeated in one mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplicates {
    /// An error: configs, profiles and registries, where a repeated key is always a mistake.
    Refuse,
    /// The later value wins and the earlier one is dropped, with a warning: how the original RAI (Go's yaml.v2)
    /// read build files, which old projects rely on.
    LaterWins,
}

/// A document read by [`parse_with`]: its tree, and the keys that were repeated (each a warning at the later key).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    pub root: Option<Node>,
    pub repeated: Vec<YamlError>,
}

struct Builder {
    limits: Limits,
    stack: Vec<Frame>,
    root: Option<Node>,
    anchors: std::collections::HashMap<usize, (Node, usize)>,
    nodes: usize,
    duplicates: Duplicates,
    repeated: Vec<YamlError>,
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

impl Builder {
    fn count(&mut self, n: usize, mark: Mark) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > self.limits.max_nodes {
            let mut e = YamlError::new(format!(
                "the document has more than {} values (counting what aliases expand to); refusing to read it",
                self.limits.max_nodes
            ));
            e.mark = Some(mark);
            return Err(e);
        }
        Ok(())
    }

    fn push(&mut self, node: Node) -> Result<(), YamlError> {
        let duplicates = self.duplicates;
        let repeated = match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                return Ok(());
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                return Ok(());
            }
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                Some(k) => {
                    entries.push((k, node));
                    return Ok(());
                }
                None => {
                    if !matches!(node.value, Value::Scalar { .. } | Value::Null) {
                        let mut e = YamlError::new(format!(
                            "a key must be a single value, not {}",
                            node.describe()
                        ));
                        e.mark = Some(node.mark);
                        return Err(e);
                    }
                    let text = node.scalar_text().unwrap_or("").to_string();
                    let earlier = entries
                        .iter()
                        .position(|(k, _)| k.scalar_text().unwrap_or("") == text);
                    let repeated = match (earlier, duplicates) {
                        (None, _) => None,
                        (Some(_), Duplicates::Refuse) => {
                            let mut e = YamlError::new(format!(
                                "key \"{text}\" appears twice in the same mapping"
                            ));
                            e.mark = Some(node.mark);
                            return Err(e);
                        }
                        // The earlier entry goes, so the mapping holds the later value where the later key stands.
                        (Some(i), Duplicates::LaterWins) => Some((text, entries.remove(i).0.mark)),
                    };
                    *key = Some(node.clone());
                    repeated
                }
            },
        };
        if let Some((text, first)) = repeated {
            let mut e = YamlError::new(format!(
                "key \"{text}\" appears twice in the same mapping (first at line {}); the later value is \
                 used, as the original rai did",
                first.line
            ));
            e.mark = Some(node.mark);
            e.path = self.key_path(&text);
            self.repeated.push(e);
        }
        Ok(())
    }

    /// The dotted path of `key` in the mapping being built, for warnings (`resources.gpu.count`).
    fn key_path(&self, key: &str) -> String {
        let mut path = String::new();
        let parents = self.stack.len().saturating_sub(1);
        for frame in &self.stack[..parents] {
            match frame {
                Frame::Seq { items, .. } => path.push_str(&format!("[{}]", items.len())),
                Frame::Map { key, .. } => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key.as_ref().and_then(Node::scalar_text).unwrap_or("?"));
                }
            }
        }
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        path
    }

    fn remember(&mut self, anchor: usize, node: &Node, size: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), size));
        }
    }

    fn open(&mut self, frame: Frame, mark: Mark) -> Result<(), YamlError> {
        if self.stack.len() >= self.limits.max_depth {
            let mut e = YamlError::new(format!(
                "the document is nested more than {} levels deep; refusing to read it",
                self.limits.max_depth
            ));
            e.mark = Some(mark);
            return Err(e);
        }
        self.count(1, mark)?;
        self.stack.push(frame);
        Ok(())
    }

    // Long (about 100 lines) on purpose: one arm per parser event, each charged against the same budget.
    fn event(&mut self, event: Event<'_>, mark: Mark) -> Result<(), YamlError> {
        match event {
            Event::Scalar(text, style, anchor, _tag) => {
                self.count(1, mark)?;
                let plain = style == ScalarStyle::Plain;
                let value = if plain && is_null(&text) {
                    Value::Null
                } else {
                    Value::Scalar {
                        text: text.into_owned(),
                        plain,
                    }
                };
                let node = Node { value, mark };
                self.remember(anchor, &node, 1);
                self.push(node)
            }
            Event::SequenceStart(anchor, _) => {
                let first_node = self.nodes;
                self.open(
                    Frame::Seq {
                        mark,
                        anchor,
                        first_node,
                        items: Vec::new(),
                    },
                    mark,
                )
            }
            Event::MappingStart(anchor, _) => {
                let first_node = self.nodes;
                self.open(
                    Frame::Map {
                        mark,
                        anchor,
                        first_node,
                        entries: Vec::new(),
                        key: None,
                    },
                    mark,
                )
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor, first) = match self.stack.pop() {
                    Some(Frame::Seq {
                        mark,
                        anchor,
                        first_node,
                        items,
                    }) => (
                        Node {
                            value: Value::Seq(items),
                            mark,
                        },
                        anchor,
                        first_node,
                    ),
                    Some(Frame::Map {
                        mark,
                        anchor,
                        first_node,
                        entries,
                        ..
                    }) => (
                        Node {
                            value: Value::Map(entries),
                            mark,
                        },
                        anchor,
                        first_node,
                    ),
                    None => return Err(YamlError::new("unbalanced YAML structure")),
                };
                let size = self.nodes - first;
                self.remember(anchor, &node, size);
                self.push(node)
            }
            Event::Alias(id) => {
                let Some((node, size)) = self.anchors.get(&id).cloned() else {
                    let mut e = YamlError::new("alias to an unknown anchor");
                    e.mark = Some(mark);
                    return Err(e);
                };
                // Charge the whole expansion before cloning, so a bomb fails here and costs nothing.
                self.count(size, mark)?;
                self.push(node)
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => Ok(()),
            Event::DocumentStart(_) => {
                if self.root.is_some() {
                    let mut e = YamlError::new(
                        "the file holds more than one YAML document (a second \"---\"); keep one",
                    );
                    e.mark = Some(mark);
                    return Err(e);
                }
                Ok(())
            }
        }
    }
}

/// Parses one YAML document into a [`Node`] tree; `Ok(None)` for an empty document. A repeated key is an error.
pub fn parse(text: &str, limits: &Limits) -> Result<Option<Node>, YamlError> {
    parse_with(text, limits, Duplicates::Refuse).map(|p| p.root)
}

/// Parses one YAML document, doing with repeated keys what `duplicates` says.
pub fn parse_with(
    text: &str,
    limits: &Limits,
    duplicates: Duplicates,
) -> Result<Parsed, YamlError> {
    if text.len() > limits.max_bytes {
        // Callers read at most one byte past the limit, so the length is not the file's size.
        return Err(YamlError::new(format!(
            "the file is larger than the {} bytes accepted; keep it to commands and settings \
             and put data in the project folder",
            limits.max_bytes
        )));
    }
    let mut builder = Builder {
        limits: *limits,
        stack: Vec::new(),
        root: None,
        anchors: Default::default(),
        nodes: 0,
        duplicates,
        repeated: Vec::new(),
    };
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| {
            let mut err = YamlError::new(format!("invalid YAML: {}", e.info()));
            err.mark = Some(Mark {
                line: e.marker().line(),
                col: e.marker().col() + 1,
            });
            err
        })?;
        let mark = Mark {
            line: span.start.line(),
            col: span.start.col() + 1,
        };
        builder.event(event, mark)?;
    }
    Ok(Parsed {
        root: builder.root,
        repeated: builder.repeated,
    })
}

/// Parses bytes: text must be UTF-8.
pub fn parse_bytes(bytes: &[u8], limits: &Limits) -> Result<Option<Node>, YamlError> {
    parse_bytes_with(bytes, limits, Duplicates::Refuse).map(|p| p.root)
}

/// [`parse_with`] over bytes, which must be UTF-8 text.
pub fn parse_bytes_with(
    bytes: &[u8],
    limits: &Limits,
    duplicates: Duplicates,
) -> Result<Parsed, YamlError> {
    if bytes.len() > limits.max_bytes {
        return parse_with(&" ".repeat(limits.max_bytes + 1), limits, duplicates);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        let line = 1 + good.iter().filter(|b| **b == b'\n').count();
        let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let col = 1 + String::from_utf8_lossy(&good[line_start..]).chars().count();
        let mut err = YamlError::new(format!(
            "the file is not UTF-8 text (byte 0x{:02x}); save it as UTF-8",
            bytes[e.valid_up_to()]
        ));
        err.mark = Some(Mark { line, col });
        err
    })?;
    parse_with(text, limits, duplicates)
}

/// Reads a `T` from YAML text, naming `source` in errors.
pub fn from_str<T: DeserializeOwned>(
    text: &str,
    source: &str,
    limits: &Limits,
) -> Result<T, YamlError> {
    let node = parse(text, limits)
        .map_err(|e| e.in_source(source))?
        .unwrap_or(Node {
            value: Value::Null,
            mark: Mark { line: 1, col: 1 },
        });
    from_node(&node).map_err(|e| e.in_source(source))
}

/// Reads a `T` from a node tree.
pub fn from_node<T: DeserializeOwned>(node: &Node) -> Result<T, YamlError> {
    T::deserialize(NodeDeserializer {
        node,
        path: String::new(),
    })
}

// ---------------------------------------------------------------------------------------------------------------
// serde over nodes.

/// A `serde` deserializer over one node, knowing the key path that led to it.
pub struct NodeDeserializer<'a> {
    node: &'a Node,
    path: String,
}

impl<'a> NodeDeserializer<'a> {
    pub fn new(node: &'a Node, path: impl Into<String>) -> Self {
        NodeDeserializer {
            node,
            path: path.into(),
        }
    }

    fn scalar(&self) -> Option<(&'a str, bool)> {
        match &self.node.value {
            Value::Scalar { text, plain } => Some((text.as_str(), *plain)),
            _ => None,
        }
    }

    fn unexpected(&self) -> Unexpected<'a> {
        match &self.node.value {
            Value::Null => Unexpected::Unit,
            Value::Scalar { text, .. } => Unexpected::Str(text),
            Value::Seq(_) => Unexpected::Seq,
            Value::Map(_) => Unexpected::Map,
        }
    }

    fn finish<T>(&self, r: Result<T, YamlError>) -> Result<T, YamlError> {
        r.map_err(|e| e.locate(self.node, &self.path))
    }

    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn integer<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, YamlError> {
        let r = match self.scalar() {
            Some((text, _)) => {
                let t = text.trim().replace('_', "");
                if let Ok(n) = t.parse::<u64>() {
                    visitor.visit_u64(n)
                } else if let Ok(n) = t.parse::<i64>() {
                    visitor.visit_i64(n)
                } else {
                    Err(de::Error::invalid_type(Unexpected::Str(text), &visitor))
                }
            }
            None => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        self.finish(r)
    }

    fn float<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, YamlError> {
        let r = match self.scalar().map(|(t, _)| (t, parse_float(t))) {
            Some((_, Some(x))) => visitor.visit_f64(x),
            Some((text, None)) => Err(de::Error::invalid_type(Unexpected::Str(text), &visitor)),
            None => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        self.finish(r)
    }
}

fn parse_float(text: &str) -> Option<f64> {
    let t = text.trim();
    match t {
        ".inf" | "+.inf" | ".Inf" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" => return Some(f64::NAN),
        _ => {}
    }
    // Rust also accepts "inf" and "nan" as words; YAML does not.
    if !t.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    t.replace('_', "").parse::<f64>().ok()
}

fn parse_bool(text: &str) -> Option<bool> {
    // YAML 1.2 says true/false; the 2017 client's YAML 1.1 reader also took yes/no/on/off, and old build files use them.
    match text {
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

macro_rules! forward_integer {
    ($($name:ident)*) => {$(
        fn $name<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
            self.integer(visitor)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'de> {
    type Error = YamlError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        let r = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Scalar { text, plain: true } => {
                if let Some(b) = matches!(text.as_str(), "true" | "false").then(|| text == "true") {
                    visitor.visit_bool(b)
                } else if let Ok(n) = text.parse::<u64>() {
                    visitor.visit_u64(n)
                } else if let Ok(n) = text.parse::<i64>() {
                    visitor.visit_i64(n)
                } else if let Some(x) = parse_float(text) {
                    visitor.visit_f64(x)
                } else {
                    visitor.visit_str(text)
                }
            }
            Value::Scalar { text, .. } => visitor.visit_str(text),
            Value::Seq(_) => return self.deserialize_seq(visitor),
            Value::Map(_) => return self.deserialize_map(visitor),
        };
        self.finish(r)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        let r = match self.scalar().map(|(t, _)| (t, parse_bool(t))) {
            Some((_, Some(b))) => visitor.visit_bool(b),
            Some((text, None)) => Err(de::Error::invalid_type(Unexpected::Str(text), &visitor)),
            None => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        self.finish(r)
    }

    forward_integer!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        self.float(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        self.float(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        let r = match self.scalar() {
            Some((text, _)) => visitor.visit_str(text),
            None => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        self.finish(r)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        match self.node.value {
            Value::Null => self.finish(visitor.visit_none()),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        let r = match self.node.value {
            Value::Null => visitor.visit_unit(),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        self.finish(r)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        let r = match &self.node.value {
            Value::Seq(items) => visitor.visit_seq(NodeSeq {
                items: items.iter().enumerate(),
                path: &self.path,
            }),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        self.finish(r)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        let r = match &self.node.value {
            Value::Map(entries) => visitor.visit_map(NodeMap {
                entries: entries.iter(),
                value: None,
                parent: &self,
            }),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        self.finish(r)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        let r = match &self.node.value {
            Value::Scalar { .. } => visitor.visit_enum(NodeEnum {
                tag: self.node,
                content: None,
                path: &self.path,
            }),
            Value::Map(entries) if entries.len() == 1 => visitor.visit_enum(NodeEnum {
                tag: &entries[0].0,
                content: Some(&entries[0].1),
                path: &self.path,
            }),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        self.finish(r)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        visitor.visit_unit()
    }
}

struct NodeSeq<'a, 'p> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
    path: &'p str,
}

impl<'de> SeqAccess<'de> for NodeSeq<'de, '_> {
    type Error = YamlError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, YamlError> {
        match self.items.next() {
            Some((i, node)) => seed
                .deserialize(NodeDeserializer::new(node, format!("{}[{i}]", self.path)))
                .map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct NodeMap<'a, 'p> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    value: Option<(&'a Node, String)>,
    parent: &'p NodeDeserializer<'a>,
}

impl<'de> MapAccess<'de> for NodeMap<'de, '_> {
    type Error = YamlError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, YamlError> {
        match self.entries.next() {
            Some((k, v)) => {
                let key_text = k.scalar_text().unwrap_or("");
                self.value = Some((v, self.parent.child_path(key_text)));
                // Errors about the key itself (unknown key) point at the key, under the parent's path.
                seed.deserialize(NodeDeserializer::new(k, self.parent.path.clone()))
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, YamlError> {
        let (node, path) = self
            .value
            .take()
            .ok_or_else(|| YamlError::new("internal: value asked before key"))?;
        seed.deserialize(NodeDeserializer::new(node, path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct NodeEnum<'a, 'p> {
    tag: &'a Node,
    content: Option<&'a Node>,
    path: &'p str,
}

impl<'de, 'p> EnumAccess<'de> for NodeEnum<'de, 'p> {
    type Error = YamlError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), YamlError> {
        let v = seed.deserialize(NodeDeserializer::new(self.tag, self.path))?;
        Ok((v, self))
    }
}

impl<'de> VariantAccess<'de> for NodeEnum<'de, '_> {
    type Error = YamlError;

    fn unit_variant(self) -> Result<(), YamlError> {
        match self.content {
            None
            | Some(Node {
                value: Value::Null, ..
            }) => Ok(()),
            Some(n) => Err(YamlError::at(n, self.path, "this value takes no settings")),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, YamlError> {
        match self.content {
            Some(n) => seed.deserialize(NodeDeserializer::new(n, self.path)),
            None => Err(YamlError::at(
                self.tag,
                self.path,
                "this value needs settings",
            )),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        match self.content {
            Some(n) => {
                de::Deserializer::deserialize_seq(NodeDeserializer::new(n, self.path), visitor)
            }
            None => Err(YamlError::at(
                self.tag,
                self.path,
                "this value needs a list",
            )),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        match self.content {
            Some(n) => {
                de::Deserializer::deserialize_map(NodeDeserializer::new(n, self.path), visitor)
            }
            None => Err(YamlError::at(
                self.tag,
                self.path,
                "this value needs a mapping",
            )),
        }
    }
}

impl<'de> IntoDeserializer<'de, YamlError> for &'de Node {
    type Deserializer = NodeDeserializer<'de>;

    fn into_deserializer(self) -> NodeDeserializer<'de> {
        NodeDeserializer::new(self, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        count: u32,
        name: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        version: String,
        inner: Inner,
        items: Vec<String>,
    }

    fn read(text: &str) -> Result<Outer, YamlError> {
        from_str(text, "t.yml", &Limits::SMALL)
    }

    #[test]
    fn reads_typed_scalars_by_what_is_asked() {
        let o = read("version: 0.2\ninner:\n  count: 3\nitems: [a, 1, true]\n").unwrap();
        assert_eq!(o.version, "0.2");
        assert_eq!(o.inner.count, 3);
        assert_eq!(o.items, vec!["a", "1", "true"]);
    }

    #[test]
    fn unknown_key_points_at_the_key_and_suggests() {
        let e = read("version: 1\ninner:\n  cuont: 3\nitems: []\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.yml:3:3: inner: unknown key \"cuont\" (did you mean \"count\"?)"
        );
    }

    #[test]
    fn wrong_type_points_at_the_value() {
        let e = read("version: 1\ninner:\n  count: -2\nitems: []\n").unwrap_err();
        assert_eq!(e.mark, Some(Mark { line: 3, col: 10 }));
        assert_eq!(e.path, "inner.count");
        assert!(e.message.contains("a whole number (0 or more)"), "{e}");
        let e = read("version: 1\ninner: {count: 1}\nitems: nope\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.yml:3:8: items: expected a list, found \"nope\""
        );
    }

    #[test]
    fn missing_key_points_at_the_mapping() {
        let e = read("version: 1\ninner:\n  name: x\nitems: []\n").unwrap_err();
        assert_eq!(e.to_string(), "t.yml:3:3: inner: missing key \"count\"");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let e = read("version: 1\nversion: 2\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("t.yml:2:1: key \"version\" appears twice"),
            "{e}"
        );
    }

    #[test]
    fn alias_bomb_is_refused_before_expanding() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let e = parse(&text, &Limits::SMALL).unwrap_err();
        assert!(e.message.contains("more than 20000 values"), "{e}");
    }

    #[test]
    fn small_aliases_still_work() {
        let node = parse("base: &b {count: 1}\nother: *b\n", &Limits::SMALL)
            .unwrap()
            .unwrap();
        assert_eq!(node.get("other"), node.get("base"));
    }

    #[test]
    fn deep_nesting_and_size_are_capped() {
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(
            parse(&deep, &Limits::SMALL)
                .unwrap_err()
                .message
                .contains("nested more than")
        );
        let big = "a: b\n".repeat(60_000);
        assert!(
            parse(&big, &Limits::SMALL)
                .unwrap_err()
                .message
                .contains("larger than the")
        );
    }

    #[test]
    fn second_document_is_refused() {
        let e = parse("a: 1\n---\nb: 2\n", &Limits::SMALL).unwrap_err();
        assert!(e.message.contains("more than one YAML document"), "{e}");
    }

    #[test]
    fn suggestions_are_close_matches_only() {
        assert_eq!(
            suggest("comands", &["rai", "resources", "commands"]),
            Some("commands")
        );
        assert_eq!(suggest("zzz", &["rai", "resources", "commands"]), None);
    }
}
