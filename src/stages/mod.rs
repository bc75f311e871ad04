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
        Some(path) => vec![Resource::File {
            field: "library".into(),
            path: path.clone(),
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
        Some(path) => Resource::File {
            field: field.into(),
            path: path.clone(),
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
