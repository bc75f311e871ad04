//! Stage keys: what a stage's output depends on, hashed.
//!
//! A [`StageKey`] is a typed struct serialised to canonical JSON and hashed with blake3.
//! It contains the stage kind and implementation version, the parameters with defaults
//! filled in, the stage's derived seed, the digests of its upstream *outputs* (so when a
//! re-run upstream produces the same bytes, nothing downstream re-runs), the content
//! digests of referenced files and embedded data, and the identities of the models it uses.
//!
//! Deliberately left out: the spec's file name and layout, comments, key order, number
//! spelling (all gone once parameters are typed), absolute paths and file mtimes (a moved
//! workspace or a `touch` re-runs nothing), and the stage's position in the spec. So are
//! what cannot change the output (see [`crate::exec::keying`]): a field written out at
//! the default another field gives it (`evaluate`'s `judge: <its baseline>`), the name of
//! a file holding exactly the built-in data it replaces, and the request settings
//! (`timeout_s`, `attempts`, `concurrency`) of a model that runs in-process, which key at
//! their defaults. Each is normalised towards what a spec that never wrote it keys as, so
//! such specs keep their keys.
//!
//! The parts are kept in a sidecar (`keys/ab/<key>.json`), so that [`explain`] can later
//! say *which* field changed instead of only that the key did.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Everything a stage's output depends on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageKey {
    pub kind: String,
    /// The kind's implementation version.
    pub version: u32,
    /// Parameters with defaults filled in, canonical.
    pub params: Value,
    /// The stage's seed, derived from the spec's seed and the stage name.
    pub seed: u64,
    /// Upstream stage name → digest of its output.
    pub inputs: BTreeMap<String, String>,
    /// `with` field → content digest of the file it names.
    pub files: BTreeMap<String, String>,
    /// Embedded data name → content digest.
    pub embedded: BTreeMap<String, String>,
    /// Model name → identity (weights digest, or endpoint model and revision).
    #[serde(default)]
    pub models: BTreeMap<String, Value>,
    /// The backend an in-process model ran on, for stages that run one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
}

impl StageKey {
    /// The key: blake3 over the canonical JSON of the parts, 64 hex digits.
    pub fn hash(&self) -> String {
        crate::canonical::digest(&serde_json::to_value(self).expect("keys serialise"))
    }
}

/// Why a stage's current key differs from the one it had.
#[derive(Debug, Clone, PartialEq)]
pub enum StaleReason {
    NeverRun,
    KindChanged {
        old: String,
        new: String,
    },
    VersionChanged {
        kind: String,
        old: u32,
        new: u32,
    },
    ParamChanged {
        field: String,
        old: String,
        new: String,
    },
    SeedChanged,
    InputChanged {
        input: String,
    },
    InputsChanged {
        old: Vec<String>,
        new: Vec<String>,
    },
    InputStale {
        input: String,
    },
    FileChanged {
        field: String,
    },
    EmbeddedChanged {
        name: String,
    },
    ModelChanged {
        name: String,
    },
    BackendChanged {
        old: String,
        new: String,
    },
    OutputMissing,
}

impl fmt::Display for StaleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StaleReason::NeverRun => write!(f, "it has never run"),
            StaleReason::KindChanged { old, new } => write!(f, "`kind` changed {old} → {new}"),
            StaleReason::VersionChanged { kind, old, new } => {
                write!(
                    f,
                    "the implementation of `{kind}` changed (version {old} → {new})"
                )
            }
            StaleReason::ParamChanged { field, old, new } => {
                write!(f, "`{field}` changed {old} → {new}")
            }
            StaleReason::SeedChanged => write!(f, "its seed changed (the spec's `seed` changed)"),
            StaleReason::InputChanged { input } => write!(f, "input `{input}` changed"),
            StaleReason::InputsChanged { old, new } => {
                write!(
                    f,
                    "`needs` changed [{}] → [{}]",
                    old.join(", "),
                    new.join(", ")
                )
            }
            StaleReason::InputStale { input } => write!(f, "input `{input}` is stale"),
            StaleReason::FileChanged { field } => {
                write!(f, "the file named by `{field}` changed")
            }
            StaleReason::EmbeddedChanged { name } => {
                write!(f, "the built-in {name} changed (a new accord version)")
            }
            StaleReason::ModelChanged { name } => write!(f, "model `{name}` changed"),
            StaleReason::BackendChanged { old, new } => {
                write!(f, "the backend changed {old} → {new}")
            }
            StaleReason::OutputMissing => {
                write!(f, "its output is no longer in the store")
            }
        }
    }
}

/// The differences between an old and a new key of stage `stage`, most telling first.
pub fn explain(stage: &str, old: &StageKey, new: &StageKey) -> Vec<StaleReason> {
    let mut reasons = Vec::new();
    if old.kind != new.kind {
        reasons.push(StaleReason::KindChanged {
            old: old.kind.clone(),
            new: new.kind.clone(),
        });
        return reasons;
    }
    diff_params(
        &format!("stages.{stage}.with"),
        &old.params,
        &new.params,
        &mut reasons,
    );
    let old_inputs: Vec<String> = old.inputs.keys().cloned().collect();
    let new_inputs: Vec<String> = new.inputs.keys().cloned().collect();
    if old_inputs != new_inputs {
        reasons.push(StaleReason::InputsChanged {
            old: old_inputs,
            new: new_inputs,
        });
    } else {
        for (input, digest) in &new.inputs {
            if old.inputs.get(input) != Some(digest) {
                reasons.push(StaleReason::InputChanged {
                    input: input.clone(),
                });
            }
        }
    }
    for (field, digest) in &new.files {
        if old.files.get(field) != Some(digest) {
            reasons.push(StaleReason::FileChanged {
                field: format!("stages.{stage}.with.{field}"),
            });
        }
    }
    for (name, digest) in &new.embedded {
        if old.embedded.get(name) != Some(digest) {
            reasons.push(StaleReason::EmbeddedChanged { name: name.clone() });
        }
    }
    for (name, identity) in &new.models {
        if old.models.get(name) != Some(identity) {
            reasons.push(StaleReason::ModelChanged { name: name.clone() });
        }
    }
    if old.seed != new.seed {
        reasons.push(StaleReason::SeedChanged);
    }
    if old.backend != new.backend {
        reasons.push(StaleReason::BackendChanged {
            old: old.backend.clone().unwrap_or_else(|| "none".into()),
            new: new.backend.clone().unwrap_or_else(|| "none".into()),
        });
    }
    if old.version != new.version {
        reasons.push(StaleReason::VersionChanged {
            kind: new.kind.clone(),
            old: old.version,
            new: new.version,
        });
    }
    reasons
}

fn diff_params(path: &str, old: &Value, new: &Value, reasons: &mut Vec<StaleReason>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let null = Value::Null;
                diff_params(
                    &format!("{path}.{key}"),
                    a.get(key).unwrap_or(&null),
                    b.get(key).unwrap_or(&null),
                    reasons,
                );
            }
        }
        _ if old == new => {}
        _ => reasons.push(StaleReason::ParamChanged {
            field: path.to_string(),
            old: show_value(old),
            new: show_value(new),
        }),
    }
}

fn show_value(value: &Value) -> String {
    match value {
        Value::Null => "(unset)".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(params: Value) -> StageKey {
        StageKey {
            kind: "k".into(),
            version: 1,
            params,
            seed: 1,
            inputs: BTreeMap::from([("up".into(), "d1".into())]),
            files: BTreeMap::new(),
            embedded: BTreeMap::new(),
            models: BTreeMap::new(),
            backend: None,
        }
    }

    #[test]
    fn hash_ignores_param_key_order() {
        let a = key(json!({"a": 1, "b": 2.5}));
        let b = key(json!({"b": 2.5, "a": 1}));
        assert_eq!(a.hash(), b.hash());
        assert_ne!(a.hash(), key(json!({"a": 2, "b": 2.5})).hash());
    }

    #[test]
    fn explains_changed_fields_with_old_and_new_values() {
        let old = key(json!({"count": 4, "tiers": ["a"]}));
        let new = key(json!({"count": 6, "tiers": ["a"]}));
        let reasons = explain("dilemmas", &old, &new);
        assert_eq!(reasons.len(), 1);
        assert_eq!(
            reasons[0].to_string(),
            "`stages.dilemmas.with.count` changed 4 → 6"
        );
    }

    #[test]
    fn explains_changed_inputs() {
        let old = key(json!({}));
        let mut new = old.clone();
        new.inputs.insert("up".into(), "d2".into());
        assert_eq!(
            explain("s", &old, &new)[0].to_string(),
            "input `up` changed"
        );
    }
}
