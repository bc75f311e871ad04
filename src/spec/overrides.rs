//! `--set path=value` overrides, applied to the spanned document before it is checked.
//!
//! The value is read as YAML (`--set stages.train.with.lr=1e-5` sets a number,
//! `--set name="'007'"` a string), so an overridden field is checked exactly like one
//! written in the file. Overridden nodes carry no location, nor does the key of a field
//! set this way (an error about `needs` after `--set stages.x.needs=[]` must not point at
//! the file's `needs:` line); [`source_of`] finds the argument an error is about.

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
                if last {
                    entries[position].key_span = Span::default();
                }
                &mut entries[position].value
            }
            Segment::Index(index) => {
                let list = FieldPath(path.0[..i].to_vec());
                let not_a_list = not_a_list(node, &list, *index);
                let NodeValue::Sequence(items) = &mut node.value else {
                    return Err(bad(&not_a_list));
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

/// Why `--set LIST[index]=…` cannot replace an item of `node` (at `list`), which is not a
/// list: it is not set at all, or it is something else.
fn not_a_list(node: &Node, list: &FieldPath, index: usize) -> String {
    let unset = node.type_name() == "null"
        || (node.span == Span::default()
            && matches!(&node.value, NodeValue::Mapping(e) if e.is_empty()));
    if unset {
        format!(
            "`{list}` is not set, so it has no item {index} to replace; set the whole list, e.g. `--set {list}=[…]`"
        )
    } else {
        format!("`{list}` is {}, not a list", node.type_name())
    }
}

/// The `--set` argument (of `overrides`, applied in order) that set the field at `path`
/// or a field around or inside it: the last one, as it is the one that holds.
pub fn source_of(overrides: &[String], path: &FieldPath) -> Option<String> {
    overrides
        .iter()
        .rev()
        .find(|text| {
            let Some(set) = text
                .split_once('=')
                .and_then(|(p, _)| FieldPath::parse(p.trim()))
            else {
                return false;
            };
            let n = set.0.len().min(path.0.len());
            set.0[..n] == path.0[..n]
        })
        .cloned()
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
