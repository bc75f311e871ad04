//! A stage's key, and which stages' outputs the store already has.
//!
//! A key needs the digests of the stage's upstream *outputs*, so a stage can be keyed only
//! once every stage it waits for is in the store. [`stage_key`] keys one stage; the local
//! executor calls it as each stage becomes ready. [`stored`] walks a whole plan without
//! computing anything, keying what can be keyed: `accord status` explains its answer, and
//! the Slurm executor submits a job for every stage that is not [`Stored::Present`].
//!
//! A key's parameters are the stage's resolved ones, less what cannot change its output:
//! a file with the contents of the built-in data it replaces keys as the built-in (the
//! field naming it left out), and settings for endpoint requests key at their defaults
//! when the model they are for runs in-process. Both leave the keys of specs that never
//! wrote such a field as they were.
//!
//! Deliberately not here: why a stage is stale (that compares with the spec's last run,
//! see [`crate::status`]) and computing anything.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use serde_json::Value;

use crate::plan::Plan;
use crate::stage::Resource;
use crate::store::{Lookup, StageKey, Store};

/// The key of stage `i`, given the digests of its inputs' outputs.
pub fn stage_key(
    plan: &Plan,
    i: usize,
    store: &Store,
    inputs: BTreeMap<String, String>,
) -> Result<StageKey, String> {
    let stage = &plan.stages[i];
    let mut params = stage.params.json.clone();
    let mut files = BTreeMap::new();
    let mut embedded = BTreeMap::new();
    for resource in stage.kind.resources(&stage.params) {
        let digest_of = |field: &str, path: &Path| {
            store.file_digest(&plan.loaded.dir.join(path)).map_err(|e| {
                format!(
                    "cannot read `{}` (from `with.{field}`): {e}",
                    path.display()
                )
            })
        };
        match resource {
            Resource::File { field, path } => {
                let digest = digest_of(&field, &path)?;
                files.insert(field, digest);
            }
            Resource::Replacing {
                field,
                path,
                name,
                bytes,
            } => {
                let digest = digest_of(&field, &path)?;
                let builtin = embedded_digest(bytes);
                if digest == builtin {
                    // The built-in's contents under another name: keyed as the built-in.
                    if let Value::Object(fields) = &mut params {
                        fields.remove(&field);
                    }
                    embedded.insert(name.to_string(), builtin);
                } else {
                    files.insert(field, digest);
                }
            }
            Resource::Embedded { name, bytes } => {
                embedded.insert(name.to_string(), embedded_digest(bytes));
            }
        }
    }
    at_defaults(plan, i, &mut params);
    let mut models = BTreeMap::new();
    let mut backend = None;
    for (field, name) in stage.kind.models(&stage.params) {
        let identity = plan
            .models
            .identity(&name, store)
            .map_err(|e| format!("model `{name}` (from `with.{field}`): {e}"))?;
        models.insert(name.clone(), identity);
        if plan.models.in_process(&name) {
            let resolved = plan.models.backend().map_err(|e| e.to_string())?;
            backend = Some(resolved.name.to_string());
        }
    }
    Ok(StageKey {
        kind: stage.kind.kind().to_string(),
        version: stage.kind.version(),
        params,
        seed: stage.seed,
        inputs,
        files,
        embedded,
        models,
        backend,
    })
}

/// Sets stage `i`'s endpoint settings for models that run in-process (see
/// [`crate::stage::Stage::endpoint_settings`]) in `params` to their defaults.
fn at_defaults(plan: &Plan, i: usize, params: &mut Value) {
    let stage = &plan.stages[i];
    let unused: Vec<&str> = stage
        .kind
        .endpoint_settings(&stage.params)
        .into_iter()
        .filter(|(model, _)| plan.models.in_process(model))
        .map(|(_, field)| field)
        .collect();
    let Value::Object(fields) = params else {
        return;
    };
    if unused.is_empty() {
        return;
    }
    // The kind fills in the defaults of the fields left out.
    let mut without = fields.clone();
    without.retain(|field, _| !unused.contains(&field.as_str()));
    let Ok(defaults) = stage.kind.resolve(Value::Object(without)) else {
        return;
    };
    for field in unused {
        if let Some(default) = defaults.json.get(field) {
            fields.insert(field.to_string(), default.clone());
        }
    }
}

/// The digest of data compiled into accord (a built-in library, a prompt), hashed once
/// per process: every stage of a wide pipeline embeds the same libraries.
fn embedded_digest(bytes: &'static [u8]) -> String {
    static DIGESTS: Mutex<BTreeMap<(usize, usize), String>> = Mutex::new(BTreeMap::new());
    let mut digests = DIGESTS.lock().unwrap_or_else(PoisonError::into_inner);
    digests
        .entry((bytes.as_ptr() as usize, bytes.len()))
        .or_insert_with(|| blake3::hash(bytes).to_hex().to_string())
        .clone()
}

/// What the store has for one stage, as far as keys tell without running anything.
#[derive(Debug, Clone)]
pub enum Stored {
    /// Stage `waits_for` (an index into the plan), which this one waits for, is not in the
    /// store, so this one's key cannot be known yet.
    Unkeyable { waits_for: usize },
    /// The key cannot be computed (a referenced file is unreadable, a model unknown…).
    KeyError(String),
    /// The store has the output of `key`, whose digest is `digest`.
    Present { key: String, digest: String },
    /// The store's entry for `key` is corrupt.
    Corrupt { key: String, reason: String },
    /// The store has nothing for `key`.
    Absent { key: String, parts: Box<StageKey> },
}

/// What the store has for every stage of `plan`, in plan order.
pub fn stored(plan: &Plan, store: &Store) -> Vec<Stored> {
    let mut present: Vec<Option<(String, String)>> = vec![None; plan.stages.len()];
    let mut out = Vec::with_capacity(plan.stages.len());
    for (i, stage) in plan.stages.iter().enumerate() {
        if let Some(&d) = stage.after.iter().find(|d| present[**d].is_none()) {
            out.push(Stored::Unkeyable { waits_for: d });
            continue;
        }
        let digest_of = |d: usize| present[d].as_ref().expect("waited-for stages are present");
        let inputs = stage
            .needs
            .iter()
            .map(|&d| (plan.stages[d].name.clone(), digest_of(d).1.clone()))
            .collect();
        for &d in &stage.after {
            let (key, digest) = digest_of(d);
            plan.models
                .trained_by_stage(&plan.stages[d].name, &store.entry_dir(key), digest);
        }
        let parts = match stage_key(plan, i, store, inputs) {
            Ok(parts) => parts,
            Err(message) => {
                out.push(Stored::KeyError(message));
                continue;
            }
        };
        let key = parts.hash();
        out.push(match store.lookup(&key) {
            Lookup::Hit(meta) => {
                present[i] = Some((key.clone(), meta.digest.clone()));
                Stored::Present {
                    key,
                    digest: meta.digest,
                }
            }
            Lookup::Corrupt(reason) => Stored::Corrupt { key, reason },
            Lookup::Missing => Stored::Absent {
                key,
                parts: Box::new(parts),
            },
        });
    }
    out
}
