//! Template variables a model's chat template is rendered with besides the messages
//! (`chat_template_kwargs`), e.g. `enable_thinking: false`, which turns Qwen3's reasoning off.
//!
//! They are what `transformers`' `apply_chat_template(messages, **kwargs)` passes on to
//! the template, and what vLLM and SGLang read from a request's `chat_template_kwargs`
//! field; a spec's model, `accord generate` and `accord serve` take them under that name.
//! Any JSON value will do; the names must be identifiers (a template can read no other),
//! and the names the renderer sets itself ([`RESERVED`]) are refused rather than silently
//! shadowed. They change the prompts a model sees, so a model's identity includes them
//! when there are any (see [`super::hub`]); none leaves every existing key as it was.
//! This module checks and merges variables; rendering is [`super::chat`]'s.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Names the chat renderer sets itself, or that `transformers` sets and templates expect
/// to mean what it means.
pub const RESERVED: &[&str] = &[
    "messages",
    "add_generation_prompt",
    "bos_token",
    "eos_token",
    "tools",
    "documents",
    "raise_exception",
    "strftime_now",
];

/// Why a template variable, or a set of them, cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KwargsError {
    #[error("not JSON: {message}")]
    NotJson { message: String },
    #[error(
        "{found} is not an object of template variables, e.g. `{{\"enable_thinking\": false}}`"
    )]
    NotAnObject { found: &'static str },
    #[error(
        "`{name}` is not a name a template can read: use letters, digits and `_`, not starting with a digit"
    )]
    NotAnIdentifier { name: String },
    #[error("`{name}` is set by the chat renderer itself and cannot be passed")]
    Reserved { name: String },
}

/// A model's chat-template variables, by name (sorted, so equal sets serialise alike):
/// any values, under names a template can read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
#[schemars(extend("propertyNames" = {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}))]
pub struct ChatTemplateKwargs(pub BTreeMap<String, Value>);

impl ChatTemplateKwargs {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Reads variables from JSON text (a command-line flag's value), checking each name.
    pub fn parse(text: &str) -> Result<Self, KwargsError> {
        let value: Value = serde_json::from_str(text).map_err(|e| KwargsError::NotJson {
            message: e.to_string(),
        })?;
        Self::from_json(value)
    }

    /// Reads variables from a JSON value (a request's `chat_template_kwargs`), checking
    /// each name.
    pub fn from_json(value: Value) -> Result<Self, KwargsError> {
        let Value::Object(map) = value else {
            return Err(KwargsError::NotAnObject {
                found: json_type(&value),
            });
        };
        let kwargs = Self(map.into_iter().collect());
        match kwargs.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(kwargs),
        }
    }

    /// What is wrong with each name, in name order.
    pub fn problems(&self) -> Vec<KwargsError> {
        self.0
            .keys()
            .filter_map(|name| name_problem(name))
            .collect()
    }

    /// These variables with `over`'s replacing them name by name (a request's own over a
    /// server's defaults).
    pub fn overridden_by(&self, over: &Self) -> Self {
        let mut merged = self.0.clone();
        merged.extend(over.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        Self(merged)
    }
}

/// What is wrong with `name` as a template variable, if anything.
pub fn name_problem(name: &str) -> Option<KwargsError> {
    let mut chars = name.chars();
    let identifier = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !identifier {
        Some(KwargsError::NotAnIdentifier { name: name.into() })
    } else if RESERVED.contains(&name) {
        Some(KwargsError::Reserved { name: name.into() })
    } else {
        None
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn flags_read_an_object_of_identifiers() {
        let kwargs =
            ChatTemplateKwargs::parse(r#"{"enable_thinking": false, "x_1": [1]}"#).unwrap();
        assert_eq!(kwargs.0["enable_thinking"], json!(false));
        assert_eq!(kwargs.0["x_1"], json!([1]));
        assert!(ChatTemplateKwargs::parse("{}").unwrap().is_empty());
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        let error = |text: &str| ChatTemplateKwargs::parse(text).unwrap_err().to_string();
        assert!(error("{enable_thinking: false}").starts_with("not JSON: "));
        assert_eq!(
            error("[1]"),
            "an array is not an object of template variables, e.g. `{\"enable_thinking\": false}`"
        );
        assert_eq!(
            error(r#"{"enable-thinking": false}"#),
            "`enable-thinking` is not a name a template can read: use letters, digits and `_`, not starting with a digit"
        );
        assert!(error(r#"{"1st": 1}"#).contains("`1st`"));
        assert!(error(r#"{"": 1}"#).contains("``"));
        assert_eq!(
            error(r#"{"messages": []}"#),
            "`messages` is set by the chat renderer itself and cannot be passed"
        );
    }

    #[test]
    fn a_request_overrides_defaults_name_by_name() {
        let defaults = ChatTemplateKwargs::parse(r#"{"enable_thinking": false, "a": 1}"#).unwrap();
        let request = ChatTemplateKwargs::parse(r#"{"enable_thinking": true}"#).unwrap();
        let merged = defaults.overridden_by(&request);
        assert_eq!(
            serde_json::to_value(&merged).unwrap(),
            json!({"a": 1, "enable_thinking": true})
        );
    }
}
