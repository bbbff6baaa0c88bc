//! A YAML document as a tree whose every node knows its line and column, so that errors
//! (from serde or from validation) can point at the exact place in the file.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    /// 1-based line and column.
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    /// `plain` is false for quoted and block scalars: those are always strings.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Keys are scalars (stringified); order as in the file.
    Map(Vec<(Node, Node)>),
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Renders `distributions[0].behaviors[1].path_pattern`.
pub fn path_string(path: &[Seg]) -> String {
    render_path(path, false)
}

/// Renders a key path; `generic` writes `[]` for every index.
pub fn render_path(path: &[Seg], generic: bool) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(_) if generic => s.push_str("[]"),
            Seg::Index(i) => {
                s.push('[');
                s.push_str(&i.to_string());
                s.push(']');
            }
        }
    }
    s
}

/// A YAML syntax problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Node {
    pub fn key_text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The node at `path`, if any.
    pub fn find(&self, path: &[Seg]) -> Option<&Node> {
        let mut node = self;
        for seg in path {
            node = match (seg, &node.kind) {
                (Seg::Key(k), Kind::Map(entries)) => {
                    &entries.iter().find(|(key, _)| key.key_text() == Some(k.as_str()))?.1
                }
                (Seg::Index(i), Kind::Seq(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The deepest existing node along `path` (for positions of missing keys).
    pub fn find_nearest(&self, path: &[Seg]) -> &Node {
        for len in (0..=path.len()).rev() {
            if let Some(n) = self.find(&path[..len]) {
                return n;
            }
        }
        self
    }

    /// Removes the node at `path` (a map entry or a sequence item). False if absent.
    pub fn remove(&mut self, path: &[Seg]) -> bool {
        let Some((last, parent_path)) = path.split_last() else {
            return false;
        };
        let mut node = self;
        for seg in parent_path {
            node = match (seg, &mut node.kind) {
                (Seg::Key(k), Kind::Map(entries)) => {
                    match entries.iter_mut().find(|(key, _)| key.key_text() == Some(k.as_str())) {
                        Some((_, v)) => v,
                        None => return false,
                    }
                }
                (Seg::Index(i), Kind::Seq(items)) => match items.get_mut(*i) {
                    Some(v) => v,
                    None => return false,
                },
                _ => return false,
            };
        }
        match (last, &mut node.kind) {
            (Seg::Key(k), Kind::Map(entries)) => {
                let before = entries.len();
                entries.retain(|(key, _)| key.key_text() != Some(k.as_str()));
                entries.len() != before
            }
            (Seg::Index(i), Kind::Seq(items)) if *i < items.len() => {
                items.remove(*i);
                true
            }
            _ => false,
        }
    }
}

/// Parses one YAML document. Empty input is an empty mapping.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, false).map_err(|e| SyntaxError {
        line: e.marker().line(),
        column: e.marker().col() + 1,
        message: e.info().to_string(),
    })?;
    if let Some(e) = builder.error {
        return Err(e);
    }
    Ok(builder.root.unwrap_or(Node {
        kind: Kind::Map(Vec::new()),
        line: 1,
        column: 1,
    }))
}

/// Deepest nesting accepted (a config is a few levels deep).
const MAX_DEPTH: usize = 64;
/// Most nodes a document may expand to, aliases included (stops "billion laughs" bombs).
const MAX_NODES: usize = 200_000;

fn count_nodes(n: &Node) -> usize {
    1 + match &n.kind {
        Kind::Seq(items) => items.iter().map(count_nodes).sum(),
        Kind::Map(entries) => entries.iter().map(|(k, v)| count_nodes(k) + count_nodes(v)).sum(),
        _ => 0,
    }
}

#[derive(Default)]
struct Builder {
    /// Nodes created so far, aliases expanded.
    nodes: usize,
    /// Open collections; a map holds its pending key in the Option.
    stack: Vec<(Node, Option<Node>, usize)>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    error: Option<SyntaxError>,
}

impl Builder {
    fn push_value(&mut self, node: Node) {
        if self.error.is_some() {
            return;
        }
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            self.error = Some(SyntaxError {
                line: node.line,
                column: node.column,
                message: format!("the document is too large (over {MAX_NODES} values, aliases expanded)"),
            });
            return;
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some((parent, pending_key, _)) => match &mut parent.kind {
                Kind::Seq(items) => items.push(node),
                Kind::Map(entries) => match pending_key.take() {
                    None => {
                        if !matches!(node.kind, Kind::Scalar { .. }) {
                            self.error = Some(SyntaxError {
                                line: node.line,
                                column: node.column,
                                message: "mapping keys must be plain names".into(),
                            });
                            return;
                        }
                        if entries.iter().any(|(k, _)| k.key_text() == node.key_text()) {
                            self.error = Some(SyntaxError {
                                line: node.line,
                                column: node.column,
                                message: format!("duplicate key '{}'", node.key_text().unwrap_or_default()),
                            });
                            return;
                        }
                        *pending_key = Some(node);
                    }
                    Some(key) => entries.push((key, node)),
                },
                _ => {}
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let (line, column) = (mark.line(), mark.col() + 1);
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = style == TScalarStyle::Plain;
                let kind = if plain && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL") {
                    Kind::Null
                } else {
                    Kind::Scalar { text, plain }
                };
                let node = Node { kind, line, column };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push_value(node);
            }
            Event::SequenceStart(..) | Event::MappingStart(..) if self.stack.len() >= MAX_DEPTH => {
                self.error.get_or_insert(SyntaxError {
                    line,
                    column,
                    message: format!("nesting deeper than {MAX_DEPTH} levels"),
                });
            }
            Event::SequenceStart(anchor, _) => self.stack.push((
                Node {
                    kind: Kind::Seq(Vec::new()),
                    line,
                    column,
                },
                None,
                anchor,
            )),
            Event::MappingStart(anchor, _) => self.stack.push((
                Node {
                    kind: Kind::Map(Vec::new()),
                    line,
                    column,
                },
                None,
                anchor,
            )),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((node, _, anchor)) = self.stack.pop() {
                    if anchor > 0 {
                        self.anchors.insert(anchor, node.clone());
                    }
                    self.push_value(node);
                }
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(n) => {
                    // Count the whole expanded copy before making it.
                    self.nodes += count_nodes(n).saturating_sub(1);
                    if self.nodes > MAX_NODES {
                        self.error.get_or_insert(SyntaxError {
                            line,
                            column,
                            message: format!("the document is too large (over {MAX_NODES} values, aliases expanded)"),
                        });
                        return;
                    }
                    let mut n = n.clone();
                    n.line = line;
                    n.column = column;
                    self.push_value(n)
                }
                None => {
                    self.error.get_or_insert(SyntaxError {
                        line,
                        column,
                        message: "unknown alias".into(),
                    });
                }
            },
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let n = parse("a: 1\nb:\n  c: [x, \"y\"]\n").unwrap();
        let c = n.find(&[Seg::Key("b".into()), Seg::Key("c".into())]).unwrap();
        assert_eq!((c.line, c.column), (3, 6));
        let y = n
            .find(&[Seg::Key("b".into()), Seg::Key("c".into()), Seg::Index(1)])
            .unwrap();
        assert_eq!(
            y.kind,
            Kind::Scalar {
                text: "y".into(),
                plain: false
            }
        );
    }

    #[test]
    fn nulls_and_empty() {
        let n = parse("a: ~\nb:\nc: null\n").unwrap();
        for k in ["a", "b", "c"] {
            assert_eq!(n.find(&[Seg::Key(k.into())]).unwrap().kind, Kind::Null);
        }
        assert_eq!(parse("").unwrap().kind, Kind::Map(vec![]));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (2, "duplicate key 'a'"));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.line >= 1 && !e.message.is_empty());
    }

    #[test]
    fn anchors_and_aliases() {
        let n = parse("x: &h { k: v }\ny: *h\n").unwrap();
        assert_eq!(
            n.find(&[Seg::Key("y".into()), Seg::Key("k".into())])
                .unwrap()
                .key_text(),
            Some("v")
        );
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            bomb.push_str(&format!(
                "{}: &{} [*{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}]\n",
                (b'a' + i) as char,
                (b'a' + i) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char
            ));
        }
        let e = parse(&bomb).unwrap_err();
        assert!(e.message.contains("too large"), "{e:?}");
        let deep = format!("a: {}{}", "[".repeat(200), "]".repeat(200));
        let e = parse(&deep).unwrap_err();
        assert!(e.message.contains("nesting deeper than 64"), "{e:?}");
    }

    #[test]
    fn remove_nodes() {
        let mut n = parse("a: [1, 2, 3]\nb: { c: 1, d: 2 }\n").unwrap();
        assert!(n.remove(&[Seg::Key("a".into()), Seg::Index(1)]));
        assert!(n.remove(&[Seg::Key("b".into()), Seg::Key("c".into())]));
        assert!(!n.remove(&[Seg::Key("zz".into())]));
        assert_eq!(
            n.find(&[Seg::Key("a".into()), Seg::Index(1)]).unwrap().key_text(),
            Some("3")
        );
        assert!(n.find(&[Seg::Key("b".into()), Seg::Key("c".into())]).is_none());
    }

    #[test]
    fn path_rendering() {
        assert_eq!(
            path_string(&[
                Seg::Key("distributions".into()),
                Seg::Index(0),
                Seg::Key("behaviors".into()),
                Seg::Index(2)
            ]),
            "distributions[0].behaviors[2]"
        );
    }
}
