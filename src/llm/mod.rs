//! The model engine: Llama-family decoders in burn, with their weights and tokenizers.
//!
//! Shapes in this module use the letters B (batch), T (time: new tokens), S (key length:
//! cached plus new tokens), H (attention heads), K (key/value heads), D (head dimension),
//! C (channels, the hidden size), F (MLP width), V (vocabulary).
//!
//! One architecture covers Llama 2/3, Mistral, Qwen2/2.5, Qwen3 (dense) and SmolLM2:
//! RMSNorm, rotary embeddings in Hugging Face's `rotate_half` layout (with Llama-3 or
//! linear frequency scaling), grouped-query attention, a SwiGLU MLP, optional QKV bias,
//! Qwen3's per-head query/key RMSNorm, tied or untied embeddings.
//! Weights come from a Hugging Face folder (safetensors) or a GGUF file; both hand out
//! the same Hugging Face-named tensors (in the dtype the file stores, see [`weights`])
//! before the model is built, so every later stage sees one model whatever the file
//! format.

pub mod attention;
pub mod backend;
pub mod block;
pub mod chat;
pub mod chat_template_kwargs;
pub mod choice;
pub mod config;
pub mod dense;
pub mod endpoint;
pub mod endpoint_url;
pub mod error;
pub mod export;
pub mod few_rows;
pub mod file_sha256;
pub mod generate;
pub mod hf;
pub mod hub;
pub mod layer_cache;
pub mod loaded;
pub mod mlp;
pub mod model;
pub mod model_spec;
pub mod rope;
pub mod sampling;
pub mod server;
pub mod source;
pub mod source_error;
pub mod tokenizer;
pub mod weights;

pub use backend::{BackendChoice, ResolvedBackend, resolve_backend};
pub use config::{Architecture, ModelConfig};
pub use error::LlmError;
pub use model::{KvCache, LlamaModel};
