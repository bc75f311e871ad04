//! `--set path=value` overrides, applied to the spanned document before it is checked.
//!
//! The value is read as YAML (`--set stages.train.with.lr=1e-5` sets a number,
//! `--set name="'007'"` a string), so an overridden field is checked exactly like one
//! written in the file. Overridden nodes carry no location; errors about them say `--set`.

use super::document::{self, Entry, Node, NodeValue, Scalar};
use super::error::SpecError;
use super::location::Span;
use super::path::{FieldPath, Segment};

/// Applies one `path=value` override to `doc`.
pub fn apply(doc: &mut Node, text: &str) -> Result<(), SpecError> {
    let bad = |message: &str| SpecError::BadOverride {
        text: text.to_string(),
        message: message.to_string(),
    };
    let (path_text, value_text) = text
        .split_once('=')
        .ok_or_else(|| bad("expected `path=value`"))?;
    let path = FieldPath::parse(path_text.trim())
        .ok_or_else(|| bad("the path is not of the form `a.b.c` or `a.b[0]`"))?;
    let mut value = if value_text.trim().is_empty() {
        Node {
            span: Span::default(),
            value: NodeValue::Scalar(Scalar {
                text: String::new(),
                plain: true,
            }),
        }
    } else {
        document::parse(value_text)
            .map_err(|e| bad(&format!("the value is not YAML: {}", e.message)))?
    };
    erase_spans(&mut value);
    let mut node = doc;
    for (i, segment) in path.0.iter().enumerate() {
        let last = i + 1 == path.0.len();
        node = match segment {
            Segment::Key(key) => {
                if matches!(node.value, NodeValue::Scalar(ref s) if s.plain && s.text.is_empty()) {
                    node.value = NodeValue::Mapping(Vec::new());
                }
                let NodeValue::Mapping(entries) = &mut node.value else {
                    return Err(bad(&format!(
                        "`{}` is not a mapping, so it has no field `{key}`",
                        FieldPath(path.0[..i].to_vec())
                    )));
                };
                let position = match entries.iter().position(|e| &e.key == key) {
                    Some(p) => p,
                    None => {
                        entries.push(Entry {
                            key: key.clone(),
                            key_span: Span::default(),
                            value: Node {
                                span: Span::default(),
                                value: NodeValue::Mapping(Vec::new()),
                            },
                        });
                        entries.len() - 1
                    }
                };
                &mut entries[position].value
            }
            Segment::Index(index) => {
                let NodeValue::Sequence(items) = &mut node.value else {
                    return Err(bad(&format!(
                        "`{}` is not a list",
                        FieldPath(path.0[..i].to_vec())
                    )));
                };
                let len = items.len();
                items.get_mut(*index).ok_or_else(|| {
                    bad(&format!("index {index} is past the end of a list of {len}"))
                })?
            }
        };
        if last {
            *node = value;
            return Ok(());
        }
    }
    unreachable!("a parsed path has at least one segment")
}

fn erase_spans(node: &mut Node) {
    node.span = Span::default();
    match &mut node.value {
        NodeValue::Scalar(_) => {}
        NodeValue::Sequence(items) => items.iter_mut().for_each(erase_spans),
        NodeValue::Mapping(entries) => entries.iter_mut().for_each(|e| {
            e.key_span = Span::default();
            erase_spans(&mut e.value);
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sets_existing_and_new_fields() {
        let mut doc = document::parse("stages:\n  a:\n    kind: x\n    with: {n: 1}\n").unwrap();
        apply(&mut doc, "stages.a.with.n=2").unwrap();
        apply(&mut doc, "stages.a.with.lr=1e-5").unwrap();
        apply(&mut doc, "seed=7").unwrap();
        let v = doc.to_json().unwrap();
        assert_eq!(v["stages"]["a"]["with"], json!({"n": 2, "lr": 1e-5}));
        assert_eq!(v["seed"], json!(7));
    }

    #[test]
    fn rejects_malformed_overrides() {
        let mut doc = document::parse("a: 1\n").unwrap();
        assert!(apply(&mut doc, "no-equals").is_err());
        assert!(apply(&mut doc, "a.b=1").is_err());
        assert!(apply(&mut doc, "a..b=1").is_err());
    }
}
