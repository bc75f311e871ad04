//! Low-rank adapters (LoRA): train `W + (α / r) · A·B` with small `A`, `B` instead of `W`.
//!
//! burn attaches adapters to parameters as a reparameterisation (the model code does not
//! change, the base weight is frozen, `materialize` folds the adapters in). Its own
//! `Lora` draws `A` from burn's global random state and gives the factors random ids; this
//! one draws `A` from the spec's seed and derives the factors' ids from the weight's
//! Hugging Face name, so runs repeat and optimiser state saved by one process finds its
//! factors in the next. `B` starts at zero, so training starts from the base model.

use std::collections::HashMap;

use burn::module::{LoraAdapter, Module, Param, ParamId, Reparameterizer};
use burn::tensor::{Tensor, TensorData};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::llm::LlamaModel;
use crate::llm::dense::Dense;
use crate::llm::export::NamedTensor;
use crate::llm::model::param_id;
use crate::seed::SeededRng;

/// The projections adapters can attach to.
pub const PROJECTIONS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// `lora:` in a `grpo` stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoraSpec {
    /// The adapters' rank `r`.
    pub rank: usize,
    /// The scale's numerator: updates are multiplied by `alpha / rank`.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Which projections get adapters, in every layer (`q_proj`, `k_proj`, `v_proj`,
    /// `o_proj`, `gate_proj`, `up_proj`, `down_proj`).
    #[serde(default = "default_targets")]
    pub targets: Vec<String>,
}

fn default_alpha() -> f64 {
    16.0
}

fn default_targets() -> Vec<String> {
    vec!["q_proj".into(), "v_proj".into()]
}

/// The Hugging Face weight names `spec` adapts in `model`.
fn target_names(model: &LlamaModel, spec: &LoraSpec) -> Vec<String> {
    (0..model.layers.len())
        .flat_map(|i| {
            spec.targets.iter().map(move |t| {
                let block = if PROJECTIONS[4..].contains(&t.as_str()) {
                    "mlp"
                } else {
                    "self_attn"
                };
                format!("model.layers.{i}.{block}.{t}.weight")
            })
        })
        .collect()
}

/// The projection `name` (a Hugging Face weight name) of `model`.
fn projection<'m>(model: &'m LlamaModel, name: &str) -> Option<&'m Dense> {
    let rest = name.strip_prefix("model.layers.")?;
    let (index, rest) = rest.split_once('.')?;
    let layer = model.layers.get(index.parse::<usize>().ok()?)?;
    let attention = &layer.self_attn;
    Some(match rest.trim_end_matches(".weight") {
        "self_attn.q_proj" => &attention.q_proj,
        "self_attn.k_proj" => &attention.k_proj,
        "self_attn.v_proj" => &attention.v_proj,
        "self_attn.o_proj" => &attention.o_proj,
        "mlp.gate_proj" => &layer.mlp.gate_proj,
        "mlp.up_proj" => &layer.mlp.up_proj,
        "mlp.down_proj" => &layer.mlp.down_proj,
        _ => return None,
    })
}

/// `model` with adapters on `spec.targets`, every other parameter frozen. `A` is drawn
/// from `seed`, unless `saved` (from [`adapters`]) holds the factors to start from.
pub fn apply(
    model: LlamaModel,
    spec: &LoraSpec,
    seed: u64,
    saved: Option<&[NamedTensor]>,
) -> LlamaModel {
    let targets: HashMap<ParamId, String> = target_names(&model, spec)
        .into_iter()
        .map(|name| (param_id(&name), name))
        .collect();
    let saved: HashMap<&str, &NamedTensor> = saved
        .unwrap_or_default()
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    model.apply_reparameterization(SeededLora {
        rank: spec.rank,
        scale: spec.alpha / spec.rank as f64,
        targets,
        seed,
        saved,
    })
}

/// The adapters' factors of a model [`apply`] made, named `<weight>.lora_a` and
/// `<weight>.lora_b`.
pub fn adapters(model: &LlamaModel, spec: &LoraSpec) -> Vec<NamedTensor> {
    let mut out = Vec::new();
    for name in target_names(model, spec) {
        let Some(adapter) = projection(model, &name).and_then(|d| d.weight.adapter()) else {
            continue;
        };
        for (suffix, factor) in [("lora_a", &adapter.a), ("lora_b", &adapter.b)] {
            let tensor = factor.val();
            out.push(NamedTensor {
                name: format!("{name}.{suffix}"),
                shape: tensor.dims().to_vec(),
                values: tensor
                    .try_into_vec_as::<f32>()
                    .expect("adapters read back as f32"),
            });
        }
    }
    out
}

/// The id of an adapter factor of weight `name`.
fn factor_id(name: &str, factor: &str) -> ParamId {
    param_id(&format!("{name}.{factor}"))
}

struct SeededLora<'a> {
    rank: usize,
    scale: f64,
    /// The adapted weights' ids and names.
    targets: HashMap<ParamId, String>,
    seed: u64,
    saved: HashMap<&'a str, &'a NamedTensor>,
}

impl Reparameterizer for SeededLora<'_> {
    type Reparam = LoraAdapter;

    fn reparameterize<const D: usize>(
        &mut self,
        _path: &str,
        param: Param<Tensor<D>>,
    ) -> (Param<Tensor<D>>, Option<LoraAdapter>) {
        let id = param.id;
        let tensor = param.base();
        let base = param.set_require_grad(false);
        let Some(name) = self.targets.get(&id).filter(|_| D == 2) else {
            return (base, None);
        };
        let dims = tensor.dims();
        let (rows, cols) = (dims[0], dims[1]);
        let (device, dtype) = (tensor.device(), tensor.dtype());
        let factor = |suffix: &str, shape: [usize; 2], fresh: Vec<f32>| {
            let values = match self.saved.get(format!("{name}.{suffix}").as_str()) {
                Some(saved) => saved.values.clone(),
                None => fresh,
            };
            let tensor = Tensor::<2>::from_data(TensorData::new(values, shape), (&device, dtype));
            let mut param = Param::from_tensor(tensor);
            param.id = factor_id(name, suffix);
            param
        };
        // A ~ N(0, 1/r), B = 0: the adapted model starts as the base model.
        let mut rng = SeededRng::new(self.seed, &[b"lora", name.as_bytes()]);
        let std = 1.0 / self.rank as f64;
        let fresh_a = (0..rows * self.rank)
            .map(|_| (normal(&mut rng) * std) as f32)
            .collect();
        let a = factor("lora_a", [rows, self.rank], fresh_a);
        let b = factor("lora_b", [self.rank, cols], vec![0.0; self.rank * cols]);
        (
            base,
            Some(LoraAdapter {
                a,
                b,
                scale: self.scale,
            }),
        )
    }
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut SeededRng) -> f64 {
    let u = rng.unit().max(f64::MIN_POSITIVE);
    let v = rng.unit();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}
