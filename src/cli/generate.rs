//! `accord generate`: sample from a model, streaming the continuation to stdout.

use std::io::Write;
use std::time::Instant;

use crate::llm::chat::Message;
use crate::llm::chat_template_kwargs::ChatTemplateKwargs;
use crate::llm::generate::{Request, generate as run_generation};
use crate::llm::loaded::LoadedModel;
use crate::llm::sampling::{self, Sampling};
use crate::llm::source::{ModelSource, fetch};
use crate::llm::{LlmError, resolve_backend};
use crate::spec::{Backend, Dtype};

/// What `accord generate` was asked.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// The model: `path:DIR_OR_FILE`, `pip:PKG==VER#file`, `hf:org/name[@rev]`.
    #[arg(long)]
    pub model: String,
    /// The prompt (with `--chat`, the user's message).
    #[arg(long)]
    pub prompt: String,
    /// Wrap the prompt in the model's chat template as a user message.
    #[arg(long)]
    pub chat: bool,
    /// A system message for `--chat`.
    #[arg(long)]
    pub system: Option<String>,
    /// Variables for the chat template besides the messages, as a JSON object, e.g.
    /// `{"enable_thinking": false}` (Qwen3 without reasoning); with `--chat`.
    #[arg(long, value_name = "JSON", requires = "chat", value_parser = ChatTemplateKwargs::parse)]
    pub chat_template_kwargs: Option<ChatTemplateKwargs>,
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// 0 picks the most likely token each step; a finite number, 0 or more.
    #[arg(long, default_value_t = 0.7, value_parser = temperature, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Nucleus sampling: keep the most likely tokens holding this much probability, in (0, 1].
    #[arg(long, default_value_t = 1.0, value_parser = top_p, allow_negative_numbers = true)]
    pub top_p: f32,
    /// Keep only the k most likely tokens (0: all).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where the model runs: auto (wgpu on a GPU, else flex), wgpu or flex.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Precision of weights and activations.
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    pub dtype: Dtype,
    /// Expected sha256 of the weights file (a `.gguf` file or `pip:` source) or of an `hf:`
    /// repository's files (as `accord models fetch` prints it); a folder is rejected.
    #[arg(long)]
    pub sha256: Option<String>,
}

/// `--temperature`, checked as a spec's `temperature` is.
fn temperature(text: &str) -> Result<f32, String> {
    let value: f32 = text.parse().map_err(|e| format!("{e}"))?;
    match sampling::temperature_problem(value) {
        Some(problem) => Err(format!("{problem} (0 picks the most likely token)")),
        None => Ok(value),
    }
}

/// `--top-p`, checked as a spec's `top_p` is.
fn top_p(text: &str) -> Result<f32, String> {
    let value: f32 = text.parse().map_err(|e| format!("{e}"))?;
    match sampling::top_p_problem(value) {
        Some(problem) => Err(format!("{problem} (1 keeps every token)")),
        None => Ok(value),
    }
}

pub fn generate(args: &GenerateArgs, quiet: bool) -> std::io::Result<i32> {
    match try_generate(args, quiet) {
        Ok(()) => Ok(0),
        Err(e) => {
            anstream::eprintln!("{}: {e}", crate::output::error_label());
            Ok(1)
        }
    }
}

fn try_generate(args: &GenerateArgs, quiet: bool) -> Result<(), LlmError> {
    let source = ModelSource::parse(&args.model).map_err(|e| LlmError::BadSource(e.to_string()))?;
    let cwd = std::env::current_dir().map_err(|source| LlmError::Read {
        path: ".".into(),
        source,
    })?;
    let path = fetch(&source, args.sha256.as_deref(), &cwd)?;
    let backend = resolve_backend(args.backend)?;
    let note = |line: String| {
        if !quiet {
            anstream::eprintln!("{line}");
        }
    };
    note(format!("backend: {backend}, dtype {}", args.dtype.name()));
    let started = Instant::now();
    let loaded = LoadedModel::load(&path, &backend, args.dtype)?
        .with_chat_template_kwargs(args.chat_template_kwargs.clone().unwrap_or_default());
    note(format!(
        "loaded {} in {:.1}s",
        path.display(),
        started.elapsed().as_secs_f64()
    ));
    let text = if args.chat {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(Message::new("system", system));
        }
        messages.push(Message::new("user", &args.prompt));
        loaded.chat_prompt(&messages)?
    } else {
        args.prompt.clone()
    };
    let prompt = loaded.tokenizer.encode(&text)?;
    let request = Request {
        prompt: prompt.clone(),
        sampling: Sampling {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
        },
        max_new_tokens: args.max_new_tokens,
        seed: args.seed,
        stop_strings: Vec::new(),
        top_logprobs: 0,
    };
    let started = Instant::now();
    let mut first_token = None;
    let mut tokens = Vec::new();
    let mut printed = 0;
    let mut stdout = anstream::stdout();
    let completions = run_generation(
        &loaded.model,
        &loaded.tokenizer,
        &[request],
        &loaded.stop_tokens,
        |_, token| {
            first_token.get_or_insert_with(Instant::now);
            if loaded.stop_tokens.contains(&token) {
                return true;
            }
            tokens.push(token);
            // Print the text decoded so far past what is out already (whole characters only).
            if let Ok(text) = loaded.tokenizer.decode(&tokens)
                && text.len() > printed
                && !text.ends_with('\u{fffd}')
            {
                let _ = stdout.write_all(&text.as_bytes()[printed..]);
                let _ = stdout.flush();
                printed = text.len();
            }
            true
        },
    )?;
    let completion = &completions[0];
    if completion.text.len() > printed {
        let _ = stdout.write_all(&completion.text.as_bytes()[printed..]);
    }
    let _ = stdout.write_all(b"\n");
    let _ = stdout.flush();
    let total = started.elapsed().as_secs_f64();
    let prefill = first_token.map_or(total, |t| t.duration_since(started).as_secs_f64());
    let decoded = completion.tokens.len().saturating_sub(1);
    note(format!(
        "{} prompt tokens in {prefill:.2}s ({:.1} tok/s); {} new tokens, {:.1} tok/s decoding",
        prompt.len(),
        prompt.len() as f64 / prefill.max(1e-9),
        completion.tokens.len(),
        decoded as f64 / (total - prefill).max(1e-9)
    ));
    Ok(())
}
