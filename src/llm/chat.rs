//! Chat templates: the model's own Jinja template rendered with minijinja.
//!
//! Templates come from `chat_template.jinja`, `tokenizer_config.json` or GGUF metadata and
//! are rendered the way `transformers`' `apply_chat_template` renders them: with
//! `messages`, `add_generation_prompt`, `bos_token`, `eos_token` and the model's
//! [`ChatTemplateKwargs`] (e.g. `enable_thinking`), Python string methods
//! (`minijinja-contrib`'s pycompat), `namespace`, `loop.previtem`, `raise_exception` and
//! `tojson`, with Jinja's `trim_blocks` and `lstrip_blocks` as `transformers` sets them.
//! Tests compare the result byte for byte with `transformers`' rendering of the same
//! messages: a ChatML and a Llama-3 template (`tests/llm_tokenizer.rs`), and a template
//! written to use what Qwen3's uses, with thinking unspecified, on and off
//! (`tests/chat_templates.rs`, references from `scripts/make_chat_fixtures.py`). Messages
//! are text only: templates that render tools or images get none.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::chat_template_kwargs::ChatTemplateKwargs;
use super::error::LlmError;
use super::tokenizer::read_json;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A model's chat template.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
}

impl ChatTemplate {
    pub fn new(source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
        }
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The template of a Hugging Face folder, if it has one.
    pub fn from_hf_folder(folder: &Path) -> Result<Option<Self>, LlmError> {
        let jinja = folder.join("chat_template.jinja");
        if jinja.exists() {
            let text = std::fs::read_to_string(&jinja).map_err(|source| LlmError::Read {
                path: jinja,
                source,
            })?;
            return Ok(Some(Self::new(text)));
        }
        let config = read_json(&folder.join("tokenizer_config.json"))?;
        Ok(match config.get("chat_template") {
            Some(serde_json::Value::String(text)) => Some(Self::new(text.clone())),
            Some(serde_json::Value::Array(named)) => named
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template").and_then(|t| t.as_str()))
                .map(Self::new),
            _ => None,
        })
    }

    /// Renders `messages`, ending with the assistant's turn opener when
    /// `add_generation_prompt`.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<String, LlmError> {
        self.render_with(
            messages,
            add_generation_prompt,
            bos_token,
            eos_token,
            &ChatTemplateKwargs::default(),
        )
    }

    /// [`render`](Self::render) with template variables `kwargs` besides the messages
    /// (their names were checked: none is one the renderer sets).
    pub fn render_with(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
        kwargs: &ChatTemplateKwargs,
    ) -> Result<String, LlmError> {
        let mut env = minijinja::Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("the default delimiters are valid");
        env.set_syntax(syntax);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    message,
                ))
            },
        );
        let error = |e: minijinja::Error| LlmError::ChatTemplate(format!("{e:#}"));
        env.add_template("chat", &self.source).map_err(error)?;
        let template = env.get_template("chat").map_err(error)?;
        template
            .render(minijinja::context! {
                messages => messages
                    .iter()
                    .map(|m| minijinja::context! { role => m.role.clone(), content => m.content.clone() })
                    .collect::<Vec<_>>(),
                add_generation_prompt => add_generation_prompt,
                bos_token => bos_token,
                eos_token => eos_token,
                ..minijinja::Value::from(minijinja::value::Serde(&kwargs.0))
            })
            .map_err(error)
    }
}
