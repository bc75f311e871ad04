//! Saving a model as a Hugging Face folder that `transformers` loads.
//!
//! The weights already keep Hugging Face's names' layouts (see [`super::dense`]), and
//! GGUF-sourced Q/K rows were un-permuted at load, so export writes each parameter as f32
//! under its Hugging Face name: `model.safetensors`, `config.json`, `tokenizer.json` and
//! `tokenizer_config.json` (with the chat template), whatever the model was loaded from.

use std::path::Path;

use burn::tensor::Tensor;
use safetensors::tensor::{Dtype, TensorView};

use super::chat::ChatTemplate;
use super::dense::Dense;
use super::error::LlmError;
use super::model::LlamaModel;
use super::tokenizer::Tokenizer;
use burn::nn::RmsNorm;

/// A parameter as stored: its Hugging Face name, shape and f32 values.
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

fn named<const D: usize>(name: String, tensor: Tensor<D>) -> NamedTensor {
    let shape = tensor.dims().to_vec();
    let values = tensor
        .try_into_vec_as::<f32>()
        .expect("model weights read back as f32");
    NamedTensor {
        name,
        shape,
        values,
    }
}

fn dense(out: &mut Vec<NamedTensor>, name: &str, layer: &Dense) {
    out.push(named(format!("{name}.weight"), layer.weight.val()));
    if let Some(bias) = &layer.bias {
        out.push(named(format!("{name}.bias"), bias.val()));
    }
}

fn norm(out: &mut Vec<NamedTensor>, name: &str, layer: &RmsNorm) {
    out.push(named(format!("{name}.weight"), layer.gamma.val()));
}

/// Every parameter of `model` under its Hugging Face name.
pub fn hf_tensors(model: &LlamaModel) -> Vec<NamedTensor> {
    let mut out = vec![named(
        "model.embed_tokens.weight".into(),
        model.embed_tokens.weight.val(),
    )];
    for (i, layer) in model.layers.iter().enumerate() {
        let p = format!("model.layers.{i}");
        norm(
            &mut out,
            &format!("{p}.input_layernorm"),
            &layer.input_layernorm,
        );
        let attention = &layer.self_attn;
        dense(
            &mut out,
            &format!("{p}.self_attn.q_proj"),
            &attention.q_proj,
        );
        dense(
            &mut out,
            &format!("{p}.self_attn.k_proj"),
            &attention.k_proj,
        );
        dense(
            &mut out,
            &format!("{p}.self_attn.v_proj"),
            &attention.v_proj,
        );
        dense(
            &mut out,
            &format!("{p}.self_attn.o_proj"),
            &attention.o_proj,
        );
        for (name, qk_norm) in [("q_norm", &attention.q_norm), ("k_norm", &attention.k_norm)] {
            if let Some(qk_norm) = qk_norm {
                norm(&mut out, &format!("{p}.self_attn.{name}"), qk_norm);
            }
        }
        norm(
            &mut out,
            &format!("{p}.post_attention_layernorm"),
            &layer.post_attention_layernorm,
        );
        dense(
            &mut out,
            &format!("{p}.mlp.gate_proj"),
            &layer.mlp.gate_proj,
        );
        dense(&mut out, &format!("{p}.mlp.up_proj"), &layer.mlp.up_proj);
        dense(
            &mut out,
            &format!("{p}.mlp.down_proj"),
            &layer.mlp.down_proj,
        );
    }
    norm(&mut out, "model.norm", &model.norm);
    if let Some(head) = &model.lm_head {
        dense(&mut out, "lm_head", head);
    }
    out
}

/// Writes `tensors` as one f32 safetensors file.
pub fn save_safetensors(tensors: &[NamedTensor], path: &Path) -> Result<(), LlmError> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, data)| {
            let view = TensorView::new(Dtype::F32, t.shape.clone(), data)
                .map_err(|e| LlmError::Export(e.to_string()))?;
            Ok((t.name.clone(), view))
        })
        .collect::<Result<_, LlmError>>()?;
    let metadata = Some(std::collections::HashMap::from([(
        "format".to_string(),
        "pt".to_string(),
    )]));
    safetensors::serialize_to_file(views, metadata, path)
        .map_err(|e| LlmError::Export(format!("{}: {e}", path.display())))
}

/// Writes `model` with its tokenizer and chat template as a Hugging Face folder.
pub fn save_hf_folder(
    model: &LlamaModel,
    tokenizer: &Tokenizer,
    chat_template: Option<&ChatTemplate>,
    folder: &Path,
) -> Result<(), LlmError> {
    std::fs::create_dir_all(folder).map_err(|source| LlmError::Write {
        path: folder.to_path_buf(),
        source,
    })?;
    let config = model.config.to_hf_json()?;
    let path = folder.join("config.json");
    let text = serde_json::to_string_pretty(&config).expect("JSON serialises") + "\n";
    std::fs::write(&path, text).map_err(|source| LlmError::Write { path, source })?;
    save_safetensors(&hf_tensors(model), &folder.join("model.safetensors"))?;
    tokenizer.save_hf(
        folder,
        chat_template.map(ChatTemplate::source),
        model.config.max_positions,
    )
}
