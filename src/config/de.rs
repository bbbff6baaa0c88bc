//! A serde `Deserializer` over the marked YAML tree: every error carries the key path and
//! the line and column of the node it is about.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::yaml::{path_string, Kind, Node, Seg};

/// What went wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeError {
    pub path: Vec<Seg>,
    pub line: usize,
    pub column: usize,
    pub kind: DeErrorKind,
    pub message: String,
    located: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeErrorKind {
    UnknownKey,
    MissingKey(&'static str),
    Other,
}

impl DeError {
    fn new(kind: DeErrorKind, message: String) -> Self {
        DeError {
            path: Vec::new(),
            line: 0,
            column: 0,
            kind,
            message,
            located: false,
        }
    }

    /// Pins an error raised by serde's derive code to the node being deserialized.
    fn locate(mut self, node: &Node, path: &[Seg]) -> Self {
        if !self.located {
            self.located = true;
            self.path = path.to_vec();
            self.line = node.line;
            self.column = node.column;
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.line,
            self.column,
            path_string(&self.path),
            self.message
        )
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::new(DeErrorKind::Other, msg.to_string())
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError::new(
            DeErrorKind::UnknownKey,
            format!("unknown key '{field}' (expected one of: {})", expected.join(", ")),
        )
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::new(DeErrorKind::MissingKey(field), format!("missing key '{field}'"))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError::new(
            DeErrorKind::Other,
            format!("unknown value '{variant}' (expected one of: {})", expected.join(", ")),
        )
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::new(DeErrorKind::Other, format!("expected {exp}, found {}", describe(unexp)))
    }
}

fn describe(u: de::Unexpected<'_>) -> String {
    match u {
        de::Unexpected::Map => "a mapping".into(),
        de::Unexpected::Seq => "a list".into(),
        de::Unexpected::Unit => "nothing (null)".into(),
        other => other.to_string(),
    }
}

thread_local! {
    /// When set, every struct deserialized records its generic key path and its fields
    /// (used to check that the README's config reference documents every key).
    static FIELD_LOG: RefCell<Option<FieldLog>> = const { RefCell::new(None) };
}

/// What a recorded deserialization saw of the schema.
#[derive(Debug, Default)]
pub struct FieldLog {
    /// Generic path of each struct reached → the fields it accepts.
    pub structs: BTreeMap<String, &'static [&'static str]>,
    /// Generic paths of the struct keys the text used.
    pub present: std::collections::BTreeSet<String>,
}

/// Runs `f` while recording struct fields and the keys used.
pub fn record_fields<R>(f: impl FnOnce() -> R) -> (R, FieldLog) {
    FIELD_LOG.with(|l| *l.borrow_mut() = Some(FieldLog::default()));
    let r = f();
    let log = FIELD_LOG.with(|l| l.borrow_mut().take()).unwrap_or_default();
    (r, log)
}

/// `distributions[].behaviors[]` for `distributions[3].behaviors[1]`.
pub fn generic_path(path: &[Seg]) -> String {
    super::yaml::render_path(path, true)
}

/// Deserializer for one node at one path.
pub struct NodeDe<'a> {
    pub node: &'a Node,
    pub path: Vec<Seg>,
    /// Path segments to record instead of the user-chosen map keys (`origins.*`).
    pub generic: Vec<Seg>,
}

impl<'a> NodeDe<'a> {
    pub fn root(node: &'a Node) -> Self {
        NodeDe {
            node,
            path: Vec::new(),
            generic: Vec::new(),
        }
    }

    fn child(&self, node: &'a Node, seg: Seg, generic: Seg) -> NodeDe<'a> {
        let mut path = self.path.clone();
        path.push(seg);
        let mut g = self.generic.clone();
        g.push(generic);
        NodeDe { node, path, generic: g }
    }

    fn fail(&self, e: DeError) -> DeError {
        e.locate(self.node, &self.path)
    }

    fn scalar(&self) -> Result<&'a str, DeError> {
        match &self.node.kind {
            Kind::Scalar { text, .. } => Ok(text),
            Kind::Null => Err(self.fail(DeError::new(
                DeErrorKind::Other,
                "expected a value, found nothing (null)".into(),
            ))),
            Kind::Seq(_) => Err(self.fail(DeError::new(
                DeErrorKind::Other,
                "expected a single value, found a list".into(),
            ))),
            Kind::Map(_) => Err(self.fail(DeError::new(
                DeErrorKind::Other,
                "expected a single value, found a mapping".into(),
            ))),
        }
    }

    /// A mapping (or null, an empty one) for a struct (`user_keys` false) or a map of names.
    fn mapping<'de, V: Visitor<'de>>(self, visitor: V, user_keys: bool) -> Result<V::Value, DeError> {
        const EMPTY: &[(Node, Node)] = &[];
        let entries = match &self.node.kind {
            Kind::Map(entries) => entries.as_slice(),
            Kind::Null => EMPTY,
            other => {
                let found = describe_kind(other);
                return Err(self.fail(DeError::new(
                    DeErrorKind::Other,
                    format!("expected a mapping, found {found}"),
                )));
            }
        };
        let access = Map {
            de: &self,
            entries,
            index: 0,
            user_keys,
        };
        visitor.visit_map(access).map_err(|e| self.fail(e))
    }

    fn number<T: std::str::FromStr>(&self, what: &str) -> Result<T, DeError> {
        let text = self.scalar()?;
        text.trim().parse().map_err(|_| {
            self.fail(DeError::new(
                DeErrorKind::Other,
                format!("expected {what}, found '{text}'"),
            ))
        })
    }
}

macro_rules! number {
    ($method:ident, $visit:ident, $t:ty, $what:expr) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let v: $t = self.number($what)?;
            let node = self.node;
            let path = self.path.clone();
            visitor.$visit::<DeError>(v).map_err(|e| e.locate(node, &path))
        }
    };
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let (node, path) = (self.node, self.path.clone());
        let r = match &node.kind {
            Kind::Null => visitor.visit_unit::<DeError>(),
            Kind::Scalar { text, plain: true } => {
                if let Ok(b) = text.parse::<bool>() {
                    visitor.visit_bool::<DeError>(b)
                } else if let Ok(i) = text.parse::<i64>() {
                    visitor.visit_i64::<DeError>(i)
                } else if let Ok(f) = text.parse::<f64>() {
                    visitor.visit_f64::<DeError>(f)
                } else {
                    visitor.visit_str::<DeError>(text)
                }
            }
            Kind::Scalar { text, plain: false } => visitor.visit_str::<DeError>(text),
            Kind::Seq(_) => return self.deserialize_seq(visitor),
            Kind::Map(_) => return self.deserialize_map(visitor),
        };
        r.map_err(|e| e.locate(node, &path))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let text = self.scalar()?;
        let b = match text {
            "true" | "True" | "TRUE" => true,
            "false" | "False" | "FALSE" => false,
            _ => {
                return Err(self.fail(DeError::new(
                    DeErrorKind::Other,
                    format!("expected true or false, found '{text}'"),
                )))
            }
        };
        visitor.visit_bool(b).map_err(|e| self.fail(e))
    }

    number!(deserialize_u8, visit_u8, u8, "a number from 0 to 255");
    number!(deserialize_u16, visit_u16, u16, "a number from 0 to 65535");
    number!(deserialize_u32, visit_u32, u32, "a whole number");
    number!(deserialize_u64, visit_u64, u64, "a whole number");
    number!(deserialize_i8, visit_i8, i8, "a whole number");
    number!(deserialize_i16, visit_i16, i16, "a whole number");
    number!(deserialize_i32, visit_i32, i32, "a whole number");
    number!(deserialize_i64, visit_i64, i64, "a whole number");
    number!(deserialize_f32, visit_f32, f32, "a number");
    number!(deserialize_f64, visit_f64, f64, "a number");

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let text = self.scalar()?;
        visitor.visit_str(text).map_err(|e| self.fail(e))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.kind {
            Kind::Null => visitor.visit_none().map_err(|e| self.fail(e)),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit().map_err(|e| self.fail(e))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Seq(items) => {
                let access = Seq {
                    de: &self,
                    items,
                    index: 0,
                };
                visitor.visit_seq(access).map_err(|e| self.fail(e))
            }
            _ => {
                let found = describe_kind(&self.node.kind);
                Err(self.fail(DeError::new(
                    DeErrorKind::Other,
                    format!("expected a list, found {found}"),
                )))
            }
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.mapping(visitor, true)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        FIELD_LOG.with(|l| {
            if let Some(log) = l.borrow_mut().as_mut() {
                log.structs.insert(generic_path(&self.generic), fields);
            }
        });
        self.mapping(visitor, false)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let text = self.scalar()?;
        let d: de::value::StrDeserializer<'_, DeError> = text.into_deserializer();
        visitor.visit_enum(d).map_err(|e| self.fail(e))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! { char bytes byte_buf unit_struct tuple tuple_struct }
}

fn describe_kind(k: &Kind) -> &'static str {
    match k {
        Kind::Null => "nothing (null)",
        Kind::Scalar { .. } => "a single value",
        Kind::Seq(_) => "a list",
        Kind::Map(_) => "a mapping",
    }
}

struct Seq<'a, 'b> {
    de: &'b NodeDe<'a>,
    items: &'a [Node],
    index: usize,
}

impl<'de> SeqAccess<'de> for Seq<'_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        let Some(item) = self.items.get(self.index) else {
            return Ok(None);
        };
        let child = self.de.child(item, Seg::Index(self.index), Seg::Index(0));
        self.index += 1;
        let (node, path) = (child.node, child.path.clone());
        seed.deserialize(child).map(Some).map_err(|e| e.locate(node, &path))
    }
}

struct Map<'a, 'b> {
    de: &'b NodeDe<'a>,
    entries: &'a [(Node, Node)],
    index: usize,
    /// Keys chosen by the user (origins, buckets) rather than struct fields.
    user_keys: bool,
}

impl<'de> MapAccess<'de> for Map<'_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        let Some((key, _)) = self.entries.get(self.index) else {
            return Ok(None);
        };
        let name = key.key_text().unwrap_or_default().to_string();
        // An unknown key is reported at the key itself, with its own path.
        let child = self.de.child(key, Seg::Key(name.clone()), Seg::Key(name));
        if !self.user_keys {
            FIELD_LOG.with(|l| {
                if let Some(log) = l.borrow_mut().as_mut() {
                    log.present.insert(generic_path(&child.generic));
                }
            });
        }
        let path = child.path.clone();
        seed.deserialize(child).map(Some).map_err(|e| e.locate(key, &path))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (key, value) = &self.entries[self.index];
        self.index += 1;
        let name = key.key_text().unwrap_or_default().to_string();
        let generic = if self.user_keys { "*".to_string() } else { name.clone() };
        let child = self.de.child(value, Seg::Key(name), Seg::Key(generic));
        let (node, path) = (child.node, child.path.clone());
        seed.deserialize(child).map_err(|e| e.locate(node, &path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::parse;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        port: u16,
        #[serde(default)]
        tags: Vec<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: String,
        items: Vec<Inner>,
        flag: Option<bool>,
    }

    fn de(text: &str) -> Result<Outer, DeError> {
        let node = parse(text).unwrap();
        Outer::deserialize(NodeDe::root(&node))
    }

    #[test]
    fn happy_path() {
        let o = de("name: x\nitems:\n  - port: 80\n    tags: [a, 'b']\nflag: true\n").unwrap();
        assert_eq!(
            o.items[0],
            Inner {
                port: 80,
                tags: vec!["a".into(), "b".into()]
            }
        );
        assert_eq!(o.flag, Some(true));
    }

    #[test]
    fn unknown_key_is_located_at_the_key() {
        let e = de("name: x\nitems:\n  - port: 80\n    prot: 1\n").unwrap_err();
        assert_eq!(e.kind, DeErrorKind::UnknownKey);
        assert_eq!((e.line, e.column), (4, 5));
        assert_eq!(path_string(&e.path), "items[0].prot");
        assert_eq!(e.message, "unknown key 'prot' (expected one of: port, tags)");
    }

    #[test]
    fn type_errors_are_located_at_the_value() {
        let e = de("name: x\nitems:\n  - port: eighty\n").unwrap_err();
        assert_eq!(path_string(&e.path), "items[0].port");
        assert_eq!((e.line, e.column), (3, 11));
        assert_eq!(e.message, "expected a number from 0 to 65535, found 'eighty'");
        let e = de("name: [1]\nitems: []\n").unwrap_err();
        assert_eq!(path_string(&e.path), "name");
        assert!(e.message.contains("found a list"), "{}", e.message);
    }

    #[test]
    fn missing_key_is_located_at_the_mapping() {
        let e = de("name: x\nitems:\n  - tags: []\n").unwrap_err();
        assert_eq!(e.kind, DeErrorKind::MissingKey("port"));
        assert_eq!(path_string(&e.path), "items[0]");
    }

    #[test]
    fn records_struct_fields() {
        let (r, log) = record_fields(|| de("name: x\nitems: [ { port: 1 } ]\n"));
        assert!(r.is_ok());
        assert_eq!(log.structs[""], &["name", "items", "flag"]);
        assert_eq!(log.structs["items[]"], &["port", "tags"]);
        assert!(log.present.contains("items[].port") && !log.present.contains("flag"));
    }
}
