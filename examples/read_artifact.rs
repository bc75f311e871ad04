//! Reading a stage's output into a polars DataFrame.
//!
//! The stage's current key comes from the spec and the store (as `accord status` finds
//! it); the artifact is a plain Parquet file, so polars reads it directly:
//!
//! ```text
//! cargo run --example read_artifact -- pipelines/quickstart.yaml dilemmas
//! ```

use std::path::PathBuf;

use accord::spec::{LoadOptions, load};
use accord::status::{State, status};
use accord::{Plan, Registry, Store};
use polars::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(spec), Some(stage)) = (args.next(), args.next()) else {
        return Err("usage: read_artifact SPEC STAGE".into());
    };
    let (spec, stage) = (PathBuf::from(spec), stage.to_string_lossy().into_owned());
    let registry = Registry::builtin();
    let loaded =
        load(&spec, &LoadOptions::default(), &registry).map_err(|failure| failure.render(false))?;
    let plan = Plan::new(loaded, &registry)?;
    let store = Store::locate(None, &std::env::current_dir()?);
    let index = plan
        .index_of(&stage)
        .ok_or_else(|| format!("no stage `{stage}`"))?;
    let state = &status(&plan, &store)[index];
    let (State::Fresh, Some(key)) = (&state.state, &state.key) else {
        return Err(format!("`{stage}` has no current output: {}", state.reason).into());
    };
    let df = ParquetReader::new(std::fs::File::open(store.data_path(key))?).finish()?;
    println!(
        "{} rows, columns: {}",
        df.height(),
        df.get_column_names()
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("{}", df.head(Some(3)));
    Ok(())
}
