//! The stage kinds built into `accord`, one file each, and the data libraries they use.
//!
//! Every kind documents its output columns in its Arrow schema; `schemas/artifacts.md` is
//! generated from those (`accord schema --artifacts`, [`crate::spec::schema`]).

pub mod evaluate;
pub mod grpo;
pub mod judge;
pub mod judge_pairwise;
pub mod persona_library;
pub mod persona_pairing;
pub mod prompt_synthesis;
pub mod rollout;

use std::borrow::Cow;
use std::path::PathBuf;

use crate::stage::{Resource, StageContext, StageError};

/// What a `library` parameter makes the output depend on: the named file, or the built-in
/// data (`name`, `builtin`) when there is none.
pub(crate) fn library_resource(
    library: &Option<PathBuf>,
    name: &'static str,
    builtin: &'static str,
) -> Vec<Resource> {
    match library {
        Some(path) => vec![Resource::Replacing {
            field: "library".into(),
            path: path.clone(),
            name,
            bytes: builtin.as_bytes(),
        }],
        None => vec![Resource::Embedded {
            name,
            bytes: builtin.as_bytes(),
        }],
    }
}

/// What a template parameter makes the output depend on: the named file, or the built-in
/// template (`name`, `builtin`).
pub(crate) fn template_resource(
    field: &str,
    file: &Option<PathBuf>,
    name: &'static str,
    builtin: &'static str,
) -> Resource {
    match file {
        Some(path) => Resource::Replacing {
            field: field.into(),
            path: path.clone(),
            name,
            bytes: builtin.as_bytes(),
        },
        None => Resource::Embedded {
            name,
            bytes: builtin.as_bytes(),
        },
    }
}

/// The text of a template parameter's file (relative to the spec's folder), or `builtin`.
pub(crate) fn read_template(
    ctx: &StageContext,
    file: &Option<PathBuf>,
    builtin: &str,
) -> Result<String, StageError> {
    match file {
        Some(path) => {
            let path = ctx.resolve(path);
            std::fs::read_to_string(&path).map_err(|source| StageError::Read { path, source })
        }
        None => Ok(builtin.to_string()),
    }
}

/// The library named by a `library` parameter (relative to the spec's folder), or the
/// built-in one; errors name the file.
pub(crate) fn load_library<T: Clone>(
    ctx: &StageContext,
    library: &Option<PathBuf>,
    builtin: &'static T,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Cow<'static, T>, StageError> {
    let Some(path) = library else {
        return Ok(Cow::Borrowed(builtin));
    };
    let path = ctx.resolve(path);
    let text = std::fs::read_to_string(&path).map_err(|source| StageError::Read {
        path: path.clone(),
        source,
    })?;
    parse(&text)
        .map(Cow::Owned)
        .map_err(|message| StageError::BadFile { path, message })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::stage::StageKind;

    /// Writing out what leaving a field out means gives the parameters the key hashes
    /// when it is left out: the judge and agreement model that default to another field.
    #[test]
    fn spelled_defaults_leave_key_parameters_as_they_were() {
        let cases: [(&dyn StageKind, serde_json::Value, serde_json::Value); 4] = [
            (
                &super::evaluate::Evaluate,
                json!({"models": ["t"], "baseline": "b"}),
                json!({"judge": "b", "agreement_model": "b"}),
            ),
            (
                &super::rollout::Rollout,
                json!({"model": "m"}),
                json!({"agreement_model": "m"}),
            ),
            (
                &super::rollout::Rollout,
                json!({"agents": ["m", "n"]}),
                json!({"agreement_model": "m"}),
            ),
            (
                &super::grpo::Grpo,
                json!({"policy": "p"}),
                json!({"agreement_model": "p"}),
            ),
        ];
        for (kind, base, spelled) in cases {
            let mut with = base.clone();
            for (field, value) in spelled.as_object().unwrap() {
                with[field] = value.clone();
            }
            assert_eq!(
                kind.resolve(with).unwrap().json,
                kind.resolve(base).unwrap().json,
                "{}",
                kind.kind()
            );
        }
        // Another value is no default.
        let other = super::rollout::Rollout
            .resolve(json!({"model": "m", "agreement_model": "j"}))
            .unwrap();
        assert_eq!(other.json["agreement_model"], "j");
    }
}
