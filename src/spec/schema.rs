//! The JSON Schema of the spec, generated from the Rust types.
//!
//! `schemas/pipeline.schema.json` is this output for the built-in registry; a test fails
//! when the checked-in file is stale (regenerate it with
//! `accord schema > schemas/pipeline.schema.json`). Each stage kind's `with` schema comes
//! from its typed parameters and is attached with `if kind = … then with: …`, so editors
//! complete and check parameters per kind. Draft-07, the dialect editors support best.

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use super::Spec;
use crate::registry::Registry;

/// The pipeline schema for the kinds in `registry`, as pretty JSON with a final newline.
pub fn pipeline_schema(registry: &Registry) -> String {
    let mut generator = SchemaSettings::draft07().into_generator();
    let kinds: Vec<(&'static str, &'static str, Value)> = registry
        .iter()
        .map(|kind| {
            let schema = kind.params_schema(&mut generator).to_value();
            (kind.kind(), kind.summary(), schema)
        })
        .collect();
    let mut root = generator.root_schema_for::<Spec>().to_value();
    let stage = &mut root["definitions"]["StageSpec"];
    stage["properties"]["kind"] = json!({
        "description": "The stage kind.",
        "type": "string",
        "enum": kinds.iter().map(|(k, _, _)| *k).collect::<Vec<_>>(),
    });
    stage["properties"]["with"] = json!({
        "description": "The kind's parameters; every one has a documented default unless it names a model.",
        "type": ["object", "null"],
    });
    stage["allOf"] = Value::Array(
        kinds
            .iter()
            .map(|(kind, summary, schema)| {
                json!({
                    "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                    "then": {
                        "description": summary,
                        "properties": {"with": schema},
                    },
                })
            })
            .collect(),
    );
    let mut text = serde_json::to_string_pretty(&root).expect("schema serialises");
    text.push('\n');
    text
}
