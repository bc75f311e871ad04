//! Model hyper-parameters, from a Hugging Face `config.json` (or GGUF metadata, see
//! [`super::weights::gguf`]). Options the engine does not implement are errors that name the
//! field, never silently ignored.

use std::path::Path;

use serde::Deserialize;

use super::error::LlmError;

/// The architectures one decoder implementation covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Mistral,
    Qwen2,
    /// Qwen3 (dense): per-head RMSNorm on queries and keys before RoPE, no QKV bias.
    Qwen3,
}

impl Architecture {
    /// `model_type` in `config.json`, and GGUF's `general.architecture`.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Mistral => "mistral",
            Architecture::Qwen2 => "qwen2",
            Architecture::Qwen3 => "qwen3",
        }
    }

    /// The architecture named `name` in `config.json` or GGUF metadata.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Every supported architecture, for messages.
    pub const ALL: [Architecture; 4] = [
        Architecture::Llama,
        Architecture::Mistral,
        Architecture::Qwen2,
        Architecture::Qwen3,
    ];

    /// "`llama`, `mistral`, `qwen2`, `qwen3`": what a message lists as supported.
    pub fn supported() -> String {
        Self::ALL
            .iter()
            .map(|a| format!("`{}`", a.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether each attention head normalises its queries and keys (Qwen3's `q_norm`,
    /// `k_norm`).
    pub fn has_qk_norm(self) -> bool {
        self == Architecture::Qwen3
    }
}

/// How rotary frequencies are scaled.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Every frequency divided by `factor` (position interpolation).
    Linear { factor: f64 },
    /// Llama 3's smooth interpolation between low and high frequencies.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
    /// One divisor per frequency, as GGUF files store Llama 3 scaling (`rope_freqs`).
    Divisors(Vec<f32>),
}

/// Everything the decoder needs to know about its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeScaling>,
    /// Bias on the Q, K and V projections (Qwen2; Llama's `attention_bias`).
    pub qkv_bias: bool,
    /// Bias on the output projection (Llama's `attention_bias`).
    pub o_bias: bool,
    pub tie_word_embeddings: bool,
    /// The longest sequence the model handles (Mistral: its sliding window, if smaller).
    pub max_positions: usize,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

#[derive(Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: f64,
    rope_theta: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    /// `transformers` 5 keeps `rope_theta` and the scaling here.
    rope_parameters: Option<serde_json::Value>,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    hidden_act: Option<String>,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default = "default_positions")]
    max_position_embeddings: usize,
    sliding_window: Option<usize>,
    #[serde(default)]
    use_sliding_window: bool,
    bos_token_id: Option<u32>,
    eos_token_id: Option<OneOrMany>,
    /// Mixture-of-experts models name their expert count in one of these.
    num_experts: Option<serde_json::Value>,
    num_local_experts: Option<serde_json::Value>,
    n_routed_experts: Option<serde_json::Value>,
}

impl HfConfig {
    /// The field that makes this a mixture-of-experts model, and its value.
    fn experts(&self) -> Option<(&'static str, &serde_json::Value)> {
        [
            ("num_experts", &self.num_experts),
            ("num_local_experts", &self.num_local_experts),
            ("n_routed_experts", &self.n_routed_experts),
        ]
        .into_iter()
        .find_map(|(field, value)| match value {
            Some(v) if !v.is_null() && v.as_u64() != Some(0) => Some((field, v)),
            _ => None,
        })
    }
}

fn default_positions() -> usize {
    4096
}

impl ModelConfig {
    /// Reads a Hugging Face `config.json`.
    pub fn from_hf_json(path: &Path) -> Result<ModelConfig, LlmError> {
        let text = std::fs::read_to_string(path).map_err(|source| LlmError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let raw: HfConfig = serde_json::from_str(&text).map_err(|e| LlmError::BadFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let unsupported = |field: &str, problem: String| LlmError::Unsupported {
            path: path.to_path_buf(),
            field: field.to_string(),
            problem,
        };
        let model_type = raw.model_type.clone().unwrap_or_else(|| "llama".into());
        let Some(architecture) = Architecture::from_name(&model_type) else {
            return Err(unsupported(
                "model_type",
                format!(
                    "is `{model_type}`; supported: {}",
                    Architecture::supported()
                ),
            ));
        };
        if let Some((field, count)) = raw.experts() {
            return Err(unsupported(
                field,
                format!("is {count}: mixture-of-experts models are not supported"),
            ));
        }
        if let Some(act) = &raw.hidden_act
            && act != "silu"
        {
            return Err(unsupported(
                "hidden_act",
                format!("is `{act}`; supported: `silu`"),
            ));
        }
        if raw.mlp_bias {
            return Err(unsupported("mlp_bias", "is true; supported: false".into()));
        }
        if matches!(architecture, Architecture::Qwen2 | Architecture::Qwen3)
            && raw.use_sliding_window
        {
            return Err(unsupported(
                "use_sliding_window",
                "is true; supported: false".into(),
            ));
        }
        let rope_theta = raw
            .rope_parameters
            .as_ref()
            .and_then(|p| p.get("rope_theta"))
            .and_then(|v| v.as_f64())
            .or(raw.rope_theta)
            .unwrap_or(10_000.0);
        let scaling_field = if raw.rope_parameters.is_some() {
            "rope_parameters"
        } else {
            "rope_scaling"
        };
        let rope_scaling = match raw.rope_parameters.as_ref().or(raw.rope_scaling.as_ref()) {
            None | Some(serde_json::Value::Null) => None,
            Some(scaling) => {
                let kind = scaling
                    .get("rope_type")
                    .or_else(|| scaling.get("type"))
                    .and_then(|v| v.as_str())
                    .unwrap_or("");
                let number = |key: &str| -> Result<f64, LlmError> {
                    scaling.get(key).and_then(|v| v.as_f64()).ok_or_else(|| {
                        unsupported(&format!("{scaling_field}.{key}"), "is missing".into())
                    })
                };
                match kind {
                    "default" | "" => None,
                    "linear" => Some(RopeScaling::Linear {
                        factor: number("factor")?,
                    }),
                    "llama3" => Some(RopeScaling::Llama3 {
                        factor: number("factor")?,
                        low_freq_factor: number("low_freq_factor")?,
                        high_freq_factor: number("high_freq_factor")?,
                        original_max_position_embeddings: number(
                            "original_max_position_embeddings",
                        )?,
                    }),
                    other => {
                        return Err(unsupported(
                            &format!("{scaling_field}.rope_type"),
                            format!("is `{other}`; supported: `default`, `linear`, `llama3`"),
                        ));
                    }
                }
            }
        };
        let max_positions = match (architecture, raw.sliding_window) {
            (Architecture::Mistral, Some(window)) => window.min(raw.max_position_embeddings),
            _ => raw.max_position_embeddings,
        };
        let eos_token_ids = match raw.eos_token_id {
            Some(OneOrMany::One(id)) => vec![id],
            Some(OneOrMany::Many(ids)) => ids,
            None => Vec::new(),
        };
        let config = ModelConfig {
            architecture,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_layers: raw.num_hidden_layers,
            num_heads: raw.num_attention_heads,
            num_kv_heads: raw.num_key_value_heads.unwrap_or(raw.num_attention_heads),
            head_dim: raw.head_dim.unwrap_or_else(|| {
                raw.hidden_size
                    .checked_div(raw.num_attention_heads)
                    .unwrap_or(0)
            }),
            rms_norm_eps: raw.rms_norm_eps,
            rope_theta,
            rope_scaling,
            qkv_bias: architecture == Architecture::Qwen2 || raw.attention_bias,
            o_bias: raw.attention_bias,
            tie_word_embeddings: raw.tie_word_embeddings,
            max_positions,
            bos_token_id: raw.bos_token_id,
            eos_token_ids,
        };
        config
            .check()
            .map_err(|(field, problem)| unsupported(field, problem))?;
        Ok(config)
    }

    /// The `config.json` `transformers` reads for this model (f32 weights).
    pub fn to_hf_json(&self) -> Result<serde_json::Value, LlmError> {
        let model_type = self.architecture.name();
        let class = match self.architecture {
            Architecture::Llama => "LlamaForCausalLM",
            Architecture::Mistral => "MistralForCausalLM",
            Architecture::Qwen2 => "Qwen2ForCausalLM",
            Architecture::Qwen3 => "Qwen3ForCausalLM",
        };
        let rope_scaling = match &self.rope_scaling {
            None => serde_json::Value::Null,
            Some(RopeScaling::Linear { factor }) => serde_json::json!({
                "rope_type": "linear",
                "factor": factor,
            }),
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            }) => serde_json::json!({
                "rope_type": "llama3",
                "factor": factor,
                "low_freq_factor": low_freq_factor,
                "high_freq_factor": high_freq_factor,
                "original_max_position_embeddings": original_max_position_embeddings,
            }),
            Some(RopeScaling::Divisors(_)) => {
                return Err(LlmError::Export(
                    "the RoPE scaling came as per-frequency divisors (GGUF `rope_freqs`), which `config.json` cannot express".into(),
                ));
            }
        };
        let mut config = serde_json::json!({
            "architectures": [class],
            "model_type": model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": rope_scaling,
            "tie_word_embeddings": self.tie_word_embeddings,
            "max_position_embeddings": self.max_positions,
            "torch_dtype": "float32",
            "bos_token_id": self.bos_token_id,
            "eos_token_id": match self.eos_token_ids.as_slice() {
                [one] => serde_json::json!(one),
                many => serde_json::json!(many),
            },
        });
        if matches!(self.architecture, Architecture::Qwen2 | Architecture::Qwen3) {
            config["use_sliding_window"] = false.into();
        }
        if self.architecture != Architecture::Qwen2 {
            config["attention_bias"] = self.o_bias.into();
            config["mlp_bias"] = false.into();
        }
        Ok(config)
    }

    /// Checks the shapes fit together: `(field, problem)` when they do not.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_layers),
            ("num_attention_heads", self.num_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_positions),
        ];
        if let Some((field, _)) = sizes.iter().find(|(_, size)| *size == 0) {
            return Err((field, "is 0; it must be at least 1".into()));
        }
        let mut positive = vec![
            ("rms_norm_eps", self.rms_norm_eps),
            ("rope_theta", self.rope_theta),
        ];
        if let Some(RopeScaling::Linear { factor }) = &self.rope_scaling {
            positive.push(("rope_scaling.factor", *factor));
        }
        if let Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        }) = &self.rope_scaling
        {
            positive.extend([
                ("rope_scaling.factor", *factor),
                ("rope_scaling.low_freq_factor", *low_freq_factor),
                ("rope_scaling.high_freq_factor", *high_freq_factor),
                (
                    "rope_scaling.original_max_position_embeddings",
                    *original_max_position_embeddings,
                ),
            ]);
        }
        if let Some((field, value)) = positive.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            return Err((field, format!("is {value}; it must be a positive number")));
        }
        if let Some(RopeScaling::Divisors(divisors)) = &self.rope_scaling
            && divisors.iter().any(|d| !(d.is_finite() && *d > 0.0))
        {
            return Err((
                "rope_freqs",
                "holds a zero, negative or non-finite divisor".into(),
            ));
        }
        if self.num_kv_heads == 0 || !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err((
                "num_key_value_heads",
                format!(
                    "({}) must divide num_attention_heads ({})",
                    self.num_kv_heads, self.num_heads
                ),
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err((
                "head_dim",
                format!("({}) must be even for rotary embeddings", self.head_dim),
            ));
        }
        Ok(())
    }
}
