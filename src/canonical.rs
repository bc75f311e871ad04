//! Canonical JSON: the one byte string a value hashes as.
//!
//! Object keys are sorted, there is no whitespace, floats print in their shortest
//! round-tripping form and `-0.0` becomes `0.0`. Two spec texts that mean the same thing
//! (reordered keys, `1e-5` vs `0.00001`, flow vs block style, comments) deserialise to the
//! same typed parameters, serialise to the same [`serde_json::Value`] and therefore to the
//! same canonical bytes. This module does not fill defaults or coerce types: that is the job
//! of each stage's typed parameters.

use serde_json::{Number, Value};

/// Writes `value` as canonical JSON.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// The blake3 hash of `value`'s canonical JSON, as 64 hex digits.
pub fn digest(value: &Value) -> String {
    blake3::hash(to_string(value).as_bytes())
        .to_hex()
        .to_string()
}

/// Returns `value` with every object's keys sorted and numbers normalised.
pub fn normalise(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), normalise(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
        Value::Number(n) => Value::Number(normalise_number(n)),
        other => other.clone(),
    }
}

fn normalise_number(n: &Number) -> Number {
    match n.as_f64() {
        Some(f) if n.is_f64() && f == 0.0 => Number::from_f64(0.0).expect("zero is finite"),
        _ => n.clone(),
    }
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Number(n) => out.push_str(&normalise_number(n).to_string()),
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_matter() {
        let a = json!({"b": 1, "a": {"d": [1, 2], "c": null}});
        let b = json!({"a": {"c": null, "d": [1, 2]}, "b": 1});
        assert_eq!(to_string(&a), to_string(&b));
        assert_eq!(to_string(&a), r#"{"a":{"c":null,"d":[1,2]},"b":1}"#);
    }

    #[test]
    fn equal_floats_print_alike() {
        let a: Value = serde_json::from_str("1e-5").unwrap();
        let b: Value = serde_json::from_str("0.00001").unwrap();
        assert_eq!(to_string(&a), to_string(&b));
        assert_eq!(to_string(&json!(-0.0)), to_string(&json!(0.0)));
    }

    #[test]
    fn normalise_sorts_nested_keys() {
        let v = normalise(&json!({"z": {"y": 1, "x": 2}}));
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"z":{"x":2,"y":1}}"#);
    }
}

/// Whether a field holds its default, so that spelling a default out changes no key
/// (`skip_serializing_if`).
pub fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}
