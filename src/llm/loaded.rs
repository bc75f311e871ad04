//! A model ready to run: weights on a backend, its tokenizer, chat template (with the
//! variables it is rendered with) and stop tokens.

use std::path::Path;

use super::backend::ResolvedBackend;
use super::chat::{ChatTemplate, Message};
use super::chat_template_kwargs::ChatTemplateKwargs;
use super::choice::{answer_distribution, answer_tokens, next_token_logprobs};
use super::config::ModelConfig;
use super::error::LlmError;
use super::generate::{Completion, Request, generate};
use super::model::LlamaModel;
use super::model_spec::Dtype;
use super::tokenizer::Tokenizer;
use super::weights::gguf::GgufWeights;
use super::weights::safetensors::SafetensorsWeights;

/// A loaded model and what generation needs besides the weights.
pub struct LoadedModel {
    pub model: LlamaModel,
    pub tokenizer: Tokenizer,
    pub chat_template: Option<ChatTemplate>,
    /// Variables every chat prompt is rendered with (a spec model's or a command's
    /// `chat_template_kwargs`; none when loaded).
    pub chat_template_kwargs: ChatTemplateKwargs,
    /// Tokens that end a generation (the model's EOS tokens).
    pub stop_tokens: Vec<u32>,
}

impl LoadedModel {
    /// Loads a Hugging Face folder or a `.gguf` file onto `backend`, stored as `dtype`.
    pub fn load(path: &Path, backend: &ResolvedBackend, dtype: Dtype) -> Result<Self, LlmError> {
        let (model, tokenizer, chat_template) = if path.is_dir() {
            let config = ModelConfig::from_hf_json(&path.join("config.json"))?;
            let mut weights = SafetensorsWeights::open(path)?;
            let model = LlamaModel::load(config, &mut weights, &backend.device, dtype)?;
            (
                model,
                Tokenizer::from_hf_folder(path)?,
                ChatTemplate::from_hf_folder(path)?,
            )
        } else {
            let (mut weights, config, data) = GgufWeights::open(path)?;
            let model = LlamaModel::load(config, &mut weights, &backend.device, dtype)?;
            let template = data.chat_template.clone().map(ChatTemplate::new);
            (model, Tokenizer::from_gguf(&data)?, template)
        };
        let mut stop_tokens = model.config.eos_token_ids.clone();
        if let Some((_, eos)) = &tokenizer.eos_token
            && !stop_tokens.contains(eos)
        {
            stop_tokens.push(*eos);
        }
        Ok(Self {
            model,
            tokenizer,
            chat_template,
            chat_template_kwargs: ChatTemplateKwargs::default(),
            stop_tokens,
        })
    }

    /// The model with its chat prompts rendered with `kwargs`.
    pub fn with_chat_template_kwargs(mut self, kwargs: ChatTemplateKwargs) -> Self {
        self.chat_template_kwargs = kwargs;
        self
    }

    /// The prompt text for a chat, rendered with the model's template and variables.
    pub fn chat_prompt(&self, messages: &[Message]) -> Result<String, LlmError> {
        self.chat_prompt_with(messages, &self.chat_template_kwargs)
    }

    /// The prompt text for a chat, rendered with the model's template and `kwargs` in
    /// place of the model's variables (a served request's, merged with the server's).
    pub fn chat_prompt_with(
        &self,
        messages: &[Message],
        kwargs: &ChatTemplateKwargs,
    ) -> Result<String, LlmError> {
        let template = self
            .chat_template
            .as_ref()
            .ok_or_else(|| LlmError::ChatTemplate("the model has none; drop `--chat`".into()))?;
        let bos = self
            .tokenizer
            .bos_token
            .as_ref()
            .map_or("", |(t, _)| t.as_str());
        let eos = self
            .tokenizer
            .eos_token
            .as_ref()
            .map_or("", |(t, _)| t.as_str());
        template.render_with(messages, true, bos, eos, kwargs)
    }

    /// The prompt tokens of a chat, rendered with the model's template.
    pub fn encode_chat(&self, messages: &[Message]) -> Result<Vec<u32>, LlmError> {
        self.tokenizer.encode(&self.chat_prompt(messages)?)
    }

    /// Continues every request in one batch, stopping at the model's stop tokens; gives up
    /// at the next token once `keep_going` says no (the rows end
    /// [`super::generate::Finish::Dropped`]), which is how stage work notices Ctrl-C within
    /// a token rather than at the end of a batch.
    pub fn generate_while(
        &self,
        requests: &[Request],
        keep_going: impl Fn() -> bool,
    ) -> Result<Vec<Completion>, LlmError> {
        generate(
            &self.model,
            &self.tokenizer,
            requests,
            &self.stop_tokens,
            |_, _| keep_going(),
        )
    }

    /// For each question (a user message), how likely each of `answers` is as the reply,
    /// read from the first reply token's distribution, in one batch (see
    /// [`super::choice`]).
    pub fn answer_distributions(
        &self,
        questions: &[String],
        answers: &[&str],
    ) -> Result<Vec<Vec<f64>>, LlmError> {
        let answers = answer_tokens(&self.tokenizer, answers)?;
        let prompts = questions
            .iter()
            .map(|q| self.encode_chat(&[Message::new("user", q)]))
            .collect::<Result<Vec<_>, _>>()?;
        let distributions: Vec<Vec<f64>> = next_token_logprobs(&self.model, &prompts)?
            .iter()
            .map(|row| answer_distribution(row, &answers, 1.0))
            .collect();
        if let Some(&value) = distributions.iter().flatten().find(|p| !p.is_finite()) {
            return Err(LlmError::NonFinite {
                what: "answer probability",
                value,
            });
        }
        Ok(distributions)
    }
}
