//! Adding a stage kind without touching `accord`'s core.
//!
//! `word_count` reads a table of dilemmas and counts the words of each one, pausing
//! `delay_ms` per row to stand in for an expensive call (a model, an API). The program is
//! the `accord` command line with this kind registered beside the built-in ones:
//!
//! ```text
//! cargo run --example custom_kind -- run my-pipeline.yaml
//! ```
//!
//! with a stage such as `words: {kind: word_count, needs: [dilemmas], with: {delay_ms: 10}}`.

use std::sync::Arc;

use accord::cli::{Cli, dispatch};
use accord::stage::{Stage, StageContext, StageError, Upstream};
use accord::{Registry, table};
use arrow::array::{Array, UInt64Array};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use clap::Parser;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Counts the words of each dilemma.
struct WordCount;

/// Parameters of `word_count`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// Milliseconds to wait per row, standing in for an expensive call.
    #[serde(default)]
    delay_ms: u64,
    /// Panic, as a buggy kind would, at a dilemma with more words than this: `accord`
    /// reports a kind's panic as that stage's failure and the run goes on to its end.
    #[serde(default)]
    panic_above_words: Option<u64>,
}

impl Stage for WordCount {
    type Params = Params;
    const KIND: &'static str = "word_count";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str = "Counts the words of each dilemma.";

    fn output_schema(&self) -> SchemaRef {
        table::schema(vec![
            table::column("id", DataType::Utf8, "The dilemma's id."),
            table::column("words", DataType::UInt64, "How many words its text has."),
        ])
    }

    fn check_inputs(&self, _params: &Params, inputs: &[Upstream]) -> Result<(), String> {
        if inputs.len() == 1 {
            Ok(())
        } else {
            Err("`word_count` reads one table of dilemmas".into())
        }
    }

    fn run(&self, params: &Params, ctx: &StageContext) -> Result<RecordBatch, StageError> {
        let input = &ctx.inputs[0];
        let ids = table::string_column(input, "id")?;
        let texts = table::string_column(input, "text")?;
        ctx.progress.set_total(ids.len() as u64);
        let mut words = Vec::with_capacity(ids.len());
        for i in 0..ids.len() {
            ctx.check_cancelled()?;
            std::thread::sleep(std::time::Duration::from_millis(params.delay_ms));
            let count = texts.value(i).split_whitespace().count() as u64;
            if let Some(limit) = params.panic_above_words {
                assert!(count <= limit, "{count} words is more than {limit}");
            }
            words.push(count);
            ctx.progress.advance(1);
        }
        let words: Arc<dyn Array> = Arc::new(UInt64Array::from(words));
        table::batch(
            &Stage::output_schema(self),
            vec![table::strings(ids.iter().flatten()), words],
        )
    }
}

fn main() {
    let registry = Registry::builtin().with(WordCount);
    let code = match dispatch(Cli::parse(), &registry) {
        Ok(code) => code,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    };
    std::process::exit(code);
}
