//! `prompt_synthesis`: moral dilemmas from a template library.
//!
//! Row *i* takes tier `tiers[i % len]`, then draws a template of that tier (and of the
//! allowed domains) and fills its slots from a random stream seeded by the stage seed and
//! *i* alone. A text already produced by an earlier row is redrawn, and after 64 redraws
//! the remaining combinations are walked in a seeded order, so every row is distinct and
//! the output has exactly `count` rows — or the stage fails up front when the library
//! cannot supply that many. Because row *i* depends only on the seed, *i* and the rows
//! before it, raising `count` keeps the earlier rows (and downstream row caches redo only
//! the new ones). With `mode: llm` a model writes them instead (see [`llm`]).

use std::path::PathBuf;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod dilemma_library;
pub mod llm;
pub mod templates;

use crate::stage::limits::{MAX_BATCH, MAX_REPEATS, MAX_ROWS, MAX_TOKENS, at_most};
use crate::stage::{Resource, Stage, StageContext, StageError};
use crate::table;
use dilemma_library::{DilemmaLibrary, Tier};

/// Synthesises moral dilemmas.
pub struct PromptSynthesis;

/// How dilemmas are made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SynthesisMode {
    /// Fill the slots of the library's scenario templates.
    #[default]
    Templates,
    /// Ask `model` to write each dilemma from seeded tier, domain and persona cues.
    Llm,
}

/// Parameters of `prompt_synthesis`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// How many dilemmas to produce (exactly; at most 1,000,000).
    #[serde(default = "default_count")]
    pub count: usize,
    /// Severity tiers, cycled row by row in this order.
    #[serde(default = "default_tiers")]
    pub tiers: Vec<Tier>,
    /// Only these domains (empty: all the library has).
    #[serde(default)]
    pub domains: Vec<String>,
    /// A dilemma library file in the format of the built-in one, replacing it; relative to
    /// the spec's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<PathBuf>,
    /// How dilemmas are made.
    #[serde(default)]
    pub mode: SynthesisMode,
    /// `mode: llm`: the spec model that writes the dilemmas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `mode: llm`: a Jinja template for the request, replacing the built-in one
    /// (variables `tier`, `tier_description`, `domain`, `persona_name`, `persona_profile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_file: Option<PathBuf>,
    /// `mode: llm`: sampling temperature.
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    /// `mode: llm`: nucleus sampling mass.
    #[serde(default = "default_top_p")]
    pub top_p: f32,
    /// `mode: llm`: the longest reply, in tokens.
    #[serde(default = "default_max_new_tokens")]
    pub max_new_tokens: usize,
    /// `mode: llm`: replies tried per row before the stage gives up on it (a reply must
    /// hold a dilemma and repeat no earlier one).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: usize,
    /// `mode: llm`: text the model's reply starts with, written for it (steers small
    /// models into the dilemma itself; empty: none).
    #[serde(default = "default_reply_prefix")]
    pub reply_prefix: String,
    /// `mode: llm`: rows generated in one batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Which part of the library's dilemmas to draw from (`mode: templates`): `all`, or
    /// `train` and `heldout`, which split every possible text by its hash and so never
    /// share a dilemma, whatever their seeds and counts.
    #[serde(default, skip_serializing_if = "Split::is_all")]
    pub split: Split,
    /// The share of possible texts that belongs to `heldout`.
    #[serde(
        default = "default_heldout_share",
        skip_serializing_if = "is_default_heldout_share"
    )]
    pub heldout_share: f64,
}

/// A part of the dilemma library (see [`Params::split`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    #[default]
    All,
    Train,
    Heldout,
}

impl Split {
    fn is_all(&self) -> bool {
        *self == Split::All
    }

    /// Whether `text` belongs to this part when `heldout_share` of all texts are held out.
    fn holds(self, text: &str, heldout_share: f64) -> bool {
        let hash = blake3::hash(format!("accord split\n{text}").as_bytes());
        let bytes: [u8; 8] = hash.as_bytes()[..8].try_into().expect("8 bytes");
        let held_out = (u64::from_le_bytes(bytes) as f64 / u64::MAX as f64) < heldout_share;
        match self {
            Split::All => true,
            Split::Train => !held_out,
            Split::Heldout => held_out,
        }
    }

    /// Roughly the share of texts this part holds.
    fn share(self, heldout_share: f64) -> f64 {
        match self {
            Split::All => 1.0,
            Split::Train => 1.0 - heldout_share,
            Split::Heldout => heldout_share,
        }
    }
}

fn default_heldout_share() -> f64 {
    0.25
}

/// Left out of keys at its default, so keys from before `split` existed still hold.
fn is_default_heldout_share(share: &f64) -> bool {
    *share == default_heldout_share()
}

fn default_temperature() -> f32 {
    0.7
}

fn default_top_p() -> f32 {
    0.95
}

fn default_max_new_tokens() -> usize {
    120
}

fn default_reply_prefix() -> String {
    "You are".into()
}

fn default_max_attempts() -> usize {
    4
}

fn default_batch_size() -> usize {
    8
}

fn default_count() -> usize {
    32
}

fn default_tiers() -> Vec<Tier> {
    Tier::ALL.to_vec()
}

impl Stage for PromptSynthesis {
    type Params = Params;
    const KIND: &'static str = "prompt_synthesis";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "Moral dilemmas over three severity tiers, slot-filled from a scenario library.";

    fn output_schema(&self) -> SchemaRef {
        table::schema(vec![
            table::column(
                "id",
                DataType::Utf8,
                "Dilemma id: the first 12 hex digits of blake3(tier, domain, text).",
            ),
            table::column(
                "tier",
                DataType::Utf8,
                "`professional`, `interpersonal` or `everyday`.",
            ),
            table::column(
                "domain",
                DataType::Utf8,
                "The dilemma's domain, e.g. `healthcare`.",
            ),
            table::column(
                "template",
                DataType::Utf8,
                "The id of the library template it was filled from; with `mode: llm`, \
                 `llm:` and the id of the persona cue.",
            ),
            table::column(
                "text",
                DataType::Utf8,
                "The dilemma, ending with the question to decide.",
            ),
        ])
    }

    fn check_params(&self, params: &Params) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if params.count == 0 {
            problems.push((
                "count".into(),
                "`count` is 0, so the stage would produce nothing".into(),
            ));
        }
        if params.tiers.is_empty() {
            problems.push(("tiers".into(), "`tiers` is empty".into()));
        }
        if params.mode == SynthesisMode::Llm && params.model.is_none() {
            problems.push((
                "model".into(),
                "`mode: llm` needs `model`, the name of a model under `models:`".into(),
            ));
        }
        if params.temperature.is_nan() || params.temperature < 0.0 {
            problems.push(("temperature".into(), "must be 0 or more".into()));
        }
        if !(params.top_p > 0.0 && params.top_p <= 1.0) {
            problems.push(("top_p".into(), "must be in (0, 1]".into()));
        }
        if params.max_attempts == 0 {
            problems.push(("max_attempts".into(), "must be at least 1".into()));
        }
        if params.batch_size == 0 {
            problems.push(("batch_size".into(), "must be at least 1".into()));
        }
        problems.extend(
            [
                at_most("count", params.count, MAX_ROWS, "dilemmas"),
                at_most(
                    "max_new_tokens",
                    params.max_new_tokens,
                    MAX_TOKENS,
                    "tokens",
                ),
                at_most("max_attempts", params.max_attempts, MAX_REPEATS, "attempts"),
                at_most("batch_size", params.batch_size, MAX_BATCH, "rows"),
            ]
            .into_iter()
            .flatten(),
        );
        if !(params.heldout_share > 0.0 && params.heldout_share < 1.0) {
            problems.push(("heldout_share".into(), "must be in (0, 1)".into()));
        }
        if params.split != Split::All && params.mode == SynthesisMode::Llm {
            problems.push((
                "split".into(),
                "`split` divides the template library; with `mode: llm` keep `split: all` and give the held-out stage its own seed".into(),
            ));
        }
        problems
    }

    fn check_inputs(
        &self,
        _params: &Params,
        inputs: &[crate::stage::Upstream],
    ) -> Result<(), String> {
        if inputs.is_empty() {
            Ok(())
        } else {
            Err("`prompt_synthesis` reads no inputs; remove `needs`".into())
        }
    }

    fn resources(&self, params: &Params) -> Vec<Resource> {
        let mut resources =
            super::library_resource(&params.library, "dilemma library", dilemma_library::BUILTIN);
        if params.mode == SynthesisMode::Llm {
            resources.push(super::template_resource(
                "prompt_file",
                &params.prompt_file,
                "dilemma request",
                llm::BUILTIN_PROMPT,
            ));
            resources.push(Resource::Embedded {
                name: "persona library",
                bytes: super::persona_library::BUILTIN.as_bytes(),
            });
        }
        resources
    }

    fn models(&self, params: &Params) -> Vec<(&'static str, String)> {
        match (&params.mode, &params.model) {
            (SynthesisMode::Llm, Some(model)) => vec![("model", model.clone())],
            _ => Vec::new(),
        }
    }

    /// Dilemmas are data: every seed of an ablation sees the same ones.
    fn samples(&self, _params: &Params) -> bool {
        false
    }

    fn run(&self, params: &Params, ctx: &StageContext) -> Result<RecordBatch, StageError> {
        let library = super::load_library(
            ctx,
            &params.library,
            DilemmaLibrary::builtin(),
            DilemmaLibrary::parse,
        )?;
        let rows = match params.mode {
            SynthesisMode::Templates => templates::synthesise(&library, params, ctx)?,
            SynthesisMode::Llm => llm::write(&library, params, ctx)?,
        };
        let schema = Stage::output_schema(self);
        table::batch(
            &schema,
            vec![
                table::strings(rows.iter().map(|r| r.id.as_str())),
                table::strings(rows.iter().map(|r| r.tier.name())),
                table::strings(rows.iter().map(|r| r.domain.as_str())),
                table::strings(rows.iter().map(|r| r.template.as_str())),
                table::strings(rows.iter().map(|r| r.text.as_str())),
            ],
        )
    }
}

/// One synthesised dilemma.
#[derive(Debug, Clone, PartialEq)]
pub struct Dilemma {
    pub id: String,
    pub tier: Tier,
    pub domain: String,
    pub template: String,
    pub text: String,
}
