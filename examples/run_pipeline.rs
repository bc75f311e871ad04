//! Building and running a pipeline from Rust instead of the command line.
//!
//! The spec is written in code (any YAML the command line reads works), checked,
//! planned and run into a store in the folder given, exactly as `accord run` would:
//!
//! ```text
//! cargo run --example run_pipeline -- /tmp/my-store
//! ```
//!
//! It prints each stage's outcome and key, then the run's summary line. Run it twice:
//! the second run finds everything in the store.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use accord::exec::{self, ExecOptions};
use accord::progress::Progress;
use accord::spec::{LoadOptions, load_text};
use accord::{Plan, Registry, Store};

const SPEC: &str = "\
version: 1
name: from-rust
seed: 3
stages:
  dilemmas:
    kind: prompt_synthesis
    with: {count: 5, split: train}
  pairs:
    kind: persona_pairing
    needs: [dilemmas]
";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or("usage: run_pipeline STORE_DIR")?;
    let registry = Registry::builtin();
    let loaded = load_text(
        &dir.join("spec.yaml"),
        &dir,
        SPEC.to_string(),
        &LoadOptions::default(),
        &registry,
    )
    .map_err(|failure| failure.render(false))?;
    let plan = Plan::new(loaded, &registry)?;
    let store = Store::locate(Some(&dir.join(".accord")), &dir);
    let summary = exec::run(
        &plan,
        &store,
        &ExecOptions::default(),
        &Progress::quiet(),
        &AtomicBool::new(false),
    )?;
    for result in &summary.results {
        println!(
            "{}: {} {}",
            result.name,
            result.outcome.name(),
            result.key.as_deref().unwrap_or("-")
        );
    }
    println!("{}", summary.line());
    Ok(())
}
