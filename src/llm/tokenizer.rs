//! Tokenizers: a Hugging Face `tokenizer.json`, or one rebuilt from GGUF metadata.
//!
//! GGUF files carry a BPE vocabulary, merges, token types and the name of the
//! pre-tokeniser (`tokenizer.ggml.pre`); each known name maps to the split pattern the
//! model's own `tokenizer.json` uses, so both loads tokenise alike (a test checks this on
//! the fixtures). Control and user-defined tokens become special tokens, matched whole.
//! A BOS token is added only when the GGUF `add_bos_token` flag says so, or when the
//! `tokenizer.json` post-processor adds it itself.

use std::path::Path;

use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior};

use super::error::LlmError;
use super::weights::gguf::GgufTokenizerData;

const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A tokenizer with the special tokens generation needs.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    pub bos_token: Option<(String, u32)>,
    pub eos_token: Option<(String, u32)>,
    /// Whether encoding a prompt prepends the BOS token.
    pub add_bos: bool,
}

fn tokenizer_error(e: impl std::fmt::Display) -> LlmError {
    LlmError::Tokenizer(e.to_string())
}

impl Tokenizer {
    /// Reads `tokenizer.json` (and `tokenizer_config.json`, if present) from a folder.
    pub fn from_hf_folder(folder: &Path) -> Result<Self, LlmError> {
        let path = folder.join("tokenizer.json");
        let inner = tokenizers::Tokenizer::from_file(&path).map_err(|e| LlmError::BadFile {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let config = read_json(&folder.join("tokenizer_config.json"))?;
        let token = |key: &str| -> Option<(String, u32)> {
            let value = config.get(key)?;
            let text = value
                .as_str()
                .or_else(|| value.get("content").and_then(|c| c.as_str()))?;
            Some((text.to_string(), inner.token_to_id(text)?))
        };
        let bos_token = token("bos_token");
        let eos_token = token("eos_token");
        // Only tokenizers that say so get a BOS; the post-processor adds it when it does.
        let add_bos = config
            .get("add_bos_token")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        Ok(Self {
            inner,
            bos_token,
            eos_token,
            add_bos,
        })
    }

    /// Rebuilds the tokenizer a GGUF file describes.
    pub fn from_gguf(data: &GgufTokenizerData) -> Result<Self, LlmError> {
        if data.model != "gpt2" {
            return Err(LlmError::Tokenizer(format!(
                "GGUF tokenizer model `{}` is not supported; supported: `gpt2` (byte-level BPE)",
                data.model
            )));
        }
        let vocab: tokenizers::models::bpe::Vocab = data
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let merges: Vec<(String, String)> = data
            .merges
            .iter()
            .filter_map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
            })
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(tokenizer_error)?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        let pre = pre_tokenizer(data.pre.as_deref())?;
        inner.with_pre_tokenizer(Some(pre));
        inner.with_decoder(Some(tokenizers::DecoderWrapper::ByteLevel(
            ByteLevel::default(),
        )));
        let specials: Vec<AddedToken> = data
            .tokens
            .iter()
            .zip(&data.token_types)
            .filter(|(_, ty)| matches!(ty, 3 | 4))
            .map(|(t, _)| AddedToken::from(t.clone(), true))
            .collect();
        inner.add_special_tokens(&specials);
        let named = |id: Option<u32>| {
            id.and_then(|id| data.tokens.get(id as usize).map(|t| (t.clone(), id)))
        };
        Ok(Self {
            inner,
            bos_token: named(data.bos_token_id),
            eos_token: named(data.eos_token_id),
            add_bos: data.add_bos_token.unwrap_or(false),
        })
    }

    /// Writes `tokenizer.json` and `tokenizer_config.json` (with `chat_template`) into
    /// `folder`, as `transformers` reads them.
    pub fn save_hf(
        &self,
        folder: &Path,
        chat_template: Option<&str>,
        max_length: usize,
    ) -> Result<(), LlmError> {
        let path = folder.join("tokenizer.json");
        self.inner
            .save(&path, false)
            .map_err(|e| LlmError::Tokenizer(format!("writing {}: {e}", path.display())))?;
        let mut config = serde_json::json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "add_bos_token": self.add_bos,
            "model_max_length": max_length,
            "clean_up_tokenization_spaces": false,
        });
        if let Some((text, _)) = &self.bos_token {
            config["bos_token"] = text.clone().into();
        }
        if let Some((text, _)) = &self.eos_token {
            config["eos_token"] = text.clone().into();
        }
        if let Some(template) = chat_template {
            config["chat_template"] = template.into();
        }
        let path = folder.join("tokenizer_config.json");
        let text = serde_json::to_string_pretty(&config).expect("JSON serialises");
        std::fs::write(&path, text + "\n").map_err(|source| LlmError::Write { path, source })
    }

    /// Token ids for `text`; prepends BOS when the tokenizer says to.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        let encoding = self.inner.encode(text, true).map_err(tokenizer_error)?;
        let mut ids = encoding.get_ids().to_vec();
        if self.add_bos
            && let Some((_, bos)) = &self.bos_token
            && ids.first() != Some(bos)
        {
            ids.insert(0, *bos);
        }
        Ok(ids)
    }

    /// Text for token ids, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String, LlmError> {
        self.inner.decode(ids, true).map_err(tokenizer_error)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}

/// The pre-tokeniser llama.cpp's `tokenizer.ggml.pre` names.
fn pre_tokenizer(name: Option<&str>) -> Result<PreTokenizerWrapper, LlmError> {
    let split = |pattern: &str| -> Result<PreTokenizerWrapper, LlmError> {
        let split = Split::new(
            SplitPattern::Regex(pattern.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(tokenizer_error)?;
        Ok(PreTokenizerWrapper::Sequence(Sequence::new(vec![
            PreTokenizerWrapper::Split(split),
            PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false)),
        ])))
    };
    match name {
        Some("smollm") => Ok(PreTokenizerWrapper::Sequence(Sequence::new(vec![
            PreTokenizerWrapper::Digits(Digits::new(true)),
            PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
        ]))),
        Some("qwen2") => split(QWEN2_PATTERN),
        Some("llama-bpe" | "llama3") => split(LLAMA3_PATTERN),
        None | Some("default" | "gpt2") => Ok(PreTokenizerWrapper::ByteLevel(ByteLevel::new(
            false, true, true,
        ))),
        Some(other) => Err(LlmError::Tokenizer(format!(
            "GGUF pre-tokenizer `{other}` is not supported; supported: `smollm`, `qwen2`, `llama-bpe`, `gpt2`"
        ))),
    }
}

/// A JSON file, or an empty object when it does not exist.
pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value, LlmError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| LlmError::BadFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(source) => Err(LlmError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}
