//! A YAML document as a tree that remembers where every node came from.
//!
//! Built from `saphyr-parser` events so that every error found after parsing (a cycle, an
//! unknown stage, a parameter of the wrong type) can still point at `file:line:column`.
//! Anchors and aliases are expanded and `<<` merge keys applied; explicit keys win over
//! merged ones. Scalars are resolved with the YAML 1.2 core schema when converted to JSON:
//! plain `1e-5`, `0.00001` and `1.0e-5` are the same number, quoted ones are strings.
//! Duplicate keys, complex (non-scalar) keys and multi-document files are errors.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};
use serde_json::{Number, Value};

use super::location::{Location, Span};
use super::path::{FieldPath, Segment};

/// A node of the document with its span.
#[derive(Debug, Clone)]
pub struct Node {
    pub span: Span,
    pub value: NodeValue,
}

#[derive(Debug, Clone)]
pub enum NodeValue {
    Scalar(Scalar),
    Sequence(Vec<Node>),
    Mapping(Vec<Entry>),
}

/// A scalar's text, and whether it was plain (unquoted, so subject to type resolution).
#[derive(Debug, Clone)]
pub struct Scalar {
    pub text: String,
    pub plain: bool,
}

/// One `key: value` pair of a mapping.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub key_span: Span,
    pub value: Node,
}

/// Why a text is not a usable YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub location: Location,
    pub message: String,
}

impl Node {
    /// The YAML type name used in messages: `a mapping`, `a sequence`, `a string`…
    pub fn type_name(&self) -> &'static str {
        match &self.value {
            NodeValue::Mapping(_) => "a mapping",
            NodeValue::Sequence(_) => "a sequence",
            NodeValue::Scalar(s) => match s.resolve() {
                Ok(Value::Null) => "null",
                Ok(Value::Bool(_)) => "a boolean",
                Ok(Value::Number(n)) if n.is_f64() => "a float",
                Ok(Value::Number(_)) => "an integer",
                _ => "a string",
            },
        }
    }

    pub fn as_mapping(&self) -> Option<&[Entry]> {
        match &self.value {
            NodeValue::Mapping(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_sequence(&self) -> Option<&[Node]> {
        match &self.value {
            NodeValue::Sequence(items) => Some(items),
            _ => None,
        }
    }

    /// The text of a scalar node.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Scalar(s) => Some(&s.text),
            _ => None,
        }
    }

    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.as_mapping()?.iter().find(|e| e.key == key)
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    /// The node at `path` below this one.
    pub fn at(&self, path: &FieldPath) -> Option<&Node> {
        let mut node = self;
        for segment in &path.0 {
            node = match segment {
                Segment::Key(k) => node.get(k)?,
                Segment::Index(i) => node.as_sequence()?.get(*i)?,
            };
        }
        Some(node)
    }

    /// The deepest node on the way to `path`, for locating errors about absent fields.
    pub fn nearest(&self, path: &FieldPath) -> &Node {
        let mut node = self;
        for segment in &path.0 {
            let next = match segment {
                Segment::Key(k) => node.get(k),
                Segment::Index(i) => node.as_sequence().and_then(|items| items.get(*i)),
            };
            match next {
                Some(next) => node = next,
                None => break,
            }
        }
        node
    }

    /// The span of the key that names the field at `path`, or of the node itself.
    pub fn key_span(&self, path: &FieldPath) -> Option<Span> {
        let key = path.last_key()?;
        Some(self.at(&path.parent())?.entry(key)?.key_span)
    }

    /// Converts the node to JSON, resolving plain scalars with the YAML 1.2 core schema.
    pub fn to_json(&self) -> Result<Value, (Span, String)> {
        match &self.value {
            NodeValue::Scalar(s) => s.resolve().map_err(|m| (self.span, m)),
            NodeValue::Sequence(items) => items
                .iter()
                .map(Node::to_json)
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            NodeValue::Mapping(entries) => {
                let mut map = serde_json::Map::new();
                for entry in entries {
                    map.insert(entry.key.clone(), entry.value.to_json()?);
                }
                Ok(Value::Object(map))
            }
        }
    }
}

impl Scalar {
    /// Resolves the scalar's type: null, boolean, integer, float or string.
    pub fn resolve(&self) -> Result<Value, String> {
        if !self.plain {
            return Ok(Value::String(self.text.clone()));
        }
        resolve_plain(&self.text)
    }
}

/// Resolves a plain scalar with the YAML 1.2 core schema; a number that is not finite or
/// does not fit a 32-bit float (`.nan`, `.inf`, `1e39`) is an error: the only one.
pub fn resolve_plain(text: &str) -> Result<Value, String> {
    let t = text;
    match t {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => {
            return Err(format!(
                "`{t}` is not a finite number, which a spec cannot hold"
            ));
        }
        _ => {}
    }
    if let Some(hex) = t.strip_prefix("0x")
        && let Ok(n) = u64::from_str_radix(hex, 16)
    {
        return Ok(Value::Number(n.into()));
    }
    if let Some(oct) = t.strip_prefix("0o")
        && let Ok(n) = u64::from_str_radix(oct, 8)
    {
        return Ok(Value::Number(n.into()));
    }
    if is_decimal_integer(t) {
        if let Ok(n) = t.parse::<i64>() {
            return Ok(Value::Number(n.into()));
        }
        if let Ok(n) = t.parse::<u64>() {
            return Ok(Value::Number(n.into()));
        }
    }
    if is_float(t) {
        // Every float field is read as a 32-bit float somewhere, and one past its range
        // would become an infinity there: such a number is no more usable than `.inf`.
        return match t.parse::<f64>().ok().and_then(|f| {
            (f.abs() <= f64::from(f32::MAX))
                .then(|| Number::from_f64(f))
                .flatten()
        }) {
            Some(n) => Ok(Value::Number(n)),
            None => Err(format!("`{t}` is too large for a 32-bit float")),
        };
    }
    Ok(Value::String(t.to_string()))
}

fn is_decimal_integer(t: &str) -> bool {
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_float(t: &str) -> bool {
    let s = t.strip_prefix(['-', '+']).unwrap_or(t).as_bytes();
    let mut i = 0;
    let int_digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if s.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = s[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let exp_digits = s[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if exp_digits == 0 {
            return false;
        }
        i += exp_digits;
    }
    i == s.len()
}

enum Frame {
    Sequence {
        start: Span,
        anchor: usize,
        items: Vec<Node>,
    },
    Mapping {
        start: Span,
        anchor: usize,
        entries: Vec<Entry>,
        merges: Vec<Node>,
        key: Option<(String, Span)>,
    },
}

fn to_location(marker: saphyr_parser::Marker) -> Location {
    Location {
        line: marker.line(),
        column: marker.col() + 1,
    }
}

/// `location`, or the end of the last line when it is past it: the parser reports what
/// the end of the text left open (an unclosed `[`) at the line after the last, which has
/// nothing to show.
fn within(text: &str, location: Location) -> Location {
    match text.lines().enumerate().last() {
        Some((i, last)) if location.line > i + 1 => Location {
            line: i + 1,
            column: last.chars().count() + 1,
        },
        _ => location,
    }
}

fn to_span(span: saphyr_parser::Span) -> Span {
    Span::new(to_location(span.start), to_location(span.end))
}

/// Parses one YAML document into a spanned tree.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut documents = 0;
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| SyntaxError {
            location: within(text, to_location(*e.marker())),
            message: e.info().to_string(),
        })?;
        let span = to_span(span);
        let node = match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => continue,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError {
                        location: span.start,
                        message: "a spec holds one YAML document, but a second one starts here"
                            .into(),
                    });
                }
                continue;
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some(node) => Node {
                    span,
                    value: node.value.clone(),
                },
                None => {
                    return Err(SyntaxError {
                        location: span.start,
                        message: "this alias refers to an unknown anchor".into(),
                    });
                }
            },
            Event::Scalar(text, style, anchor, tag) => {
                let forced_string = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let node = Node {
                    span,
                    value: NodeValue::Scalar(Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain && !forced_string,
                    }),
                };
                if anchor > 0 {
                    anchors.insert(anchor, node.clone());
                }
                node
            }
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Sequence {
                    start: span,
                    anchor,
                    items: Vec::new(),
                });
                continue;
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Mapping {
                    start: span,
                    anchor,
                    entries: Vec::new(),
                    merges: Vec::new(),
                    key: None,
                });
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Sequence {
                    start,
                    anchor,
                    items,
                }) => {
                    let end = items.last().map_or(span, |n| n.span);
                    let node = Node {
                        span: start.to(end),
                        value: NodeValue::Sequence(items),
                    };
                    if anchor > 0 {
                        anchors.insert(anchor, node.clone());
                    }
                    node
                }
                _ => unreachable!("the parser balances sequence events"),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Mapping {
                    start,
                    anchor,
                    mut entries,
                    merges,
                    ..
                }) => {
                    for merged in merges {
                        apply_merge(&mut entries, merged)?;
                    }
                    let end = entries.last().map_or(span, |e| e.value.span);
                    let node = Node {
                        span: start.to(end),
                        value: NodeValue::Mapping(entries),
                    };
                    if anchor > 0 {
                        anchors.insert(anchor, node.clone());
                    }
                    node
                }
                _ => unreachable!("the parser balances mapping events"),
            },
        };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Sequence { items, .. }) => items.push(node),
            Some(Frame::Mapping {
                entries,
                merges,
                key,
                ..
            }) => match key.take() {
                None => {
                    let NodeValue::Scalar(scalar) = node.value else {
                        return Err(SyntaxError {
                            location: node.span.start,
                            message: "mapping keys must be plain strings, not collections".into(),
                        });
                    };
                    if let Some(first) = entries.iter().find(|e| e.key == scalar.text) {
                        return Err(SyntaxError {
                            location: node.span.start,
                            message: format!(
                                "duplicate key `{}` (first defined at line {})",
                                scalar.text, first.key_span.start.line
                            ),
                        });
                    }
                    *key = Some((scalar.text, node.span));
                }
                Some((name, key_span)) if name == "<<" => {
                    let _ = key_span;
                    merges.push(node);
                }
                Some((name, key_span)) => entries.push(Entry {
                    key: name,
                    key_span,
                    value: node,
                }),
            },
        }
    }
    root.ok_or(SyntaxError {
        location: Location { line: 1, column: 1 },
        message: "the file is empty".into(),
    })
}

fn apply_merge(entries: &mut Vec<Entry>, merged: Node) -> Result<(), SyntaxError> {
    match merged.value {
        NodeValue::Mapping(more) => {
            for entry in more {
                if !entries.iter().any(|e| e.key == entry.key) {
                    entries.push(entry);
                }
            }
            Ok(())
        }
        NodeValue::Sequence(items) => {
            for item in items {
                apply_merge(entries, item)?;
            }
            Ok(())
        }
        NodeValue::Scalar(_) => Err(SyntaxError {
            location: merged.span.start,
            message: "a `<<` merge key needs a mapping or a list of mappings".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn block_and_flow_styles_give_equal_json() {
        let block = parse("a:\n  b: 1\n  c: [x, 'y']\n").unwrap();
        let flow = parse("a: {c: [x, y], b: 1}\n").unwrap();
        let a = crate::canonical::to_string(&block.to_json().unwrap());
        let b = crate::canonical::to_string(&flow.to_json().unwrap());
        assert_eq!(a, b);
    }

    #[test]
    fn core_schema_scalars() {
        let doc =
            parse("a: 1e-5\nb: 0.00001\nc: '1'\nd: 0x10\ne: yes\nf: ~\ng: -3\nh: 1.\n").unwrap();
        let v = doc.to_json().unwrap();
        assert_eq!(v["a"], v["b"]);
        assert_eq!(v["c"], json!("1"));
        assert_eq!(v["d"], json!(16));
        assert_eq!(v["e"], json!("yes"));
        assert_eq!(v["f"], json!(null));
        assert_eq!(v["g"], json!(-3));
        assert_eq!(v["h"], json!(1.0));
    }

    #[test]
    fn spans_point_at_keys_and_values() {
        let doc = parse("stages:\n  a:\n    kind: x\n").unwrap();
        let path = FieldPath::parse("stages.a.kind").unwrap();
        let kind = doc.at(&path).unwrap();
        assert_eq!(
            kind.span.start,
            Location {
                line: 3,
                column: 11
            }
        );
        assert_eq!(
            doc.key_span(&path).unwrap().start,
            Location { line: 3, column: 5 }
        );
    }

    #[test]
    fn anchors_and_merge_keys() {
        let doc = parse("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n").unwrap();
        let v = doc.to_json().unwrap();
        assert_eq!(v["other"], json!({"y": 3, "x": 1}));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.location.line, 3);
        assert!(
            err.message.contains("first defined at line 1"),
            "{}",
            err.message
        );
    }

    #[test]
    fn syntax_errors_are_located() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.location.line >= 1);
    }

    /// What the end of the text leaves open is reported at the end of the last line, not
    /// at a line after it that an excerpt cannot show.
    #[test]
    fn syntax_errors_at_the_end_are_on_the_last_line() {
        let err = parse("a: 1\nb: [unclosed\n").unwrap_err();
        assert_eq!(
            err.location,
            Location {
                line: 2,
                column: 13
            }
        );
    }
}
