//! `accord run SPEC`: run what is stale, print `N ran, M cached`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::{SpecArgs, plan_or_report, print};
use crate::Registry;
use crate::exec::{self, ExecOptions, OnError};
use crate::progress::Progress;
use crate::store::Store;

/// Set by the first Ctrl-C; running stages stop at their next row.
static CANCEL: AtomicBool = AtomicBool::new(false);
static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);

pub fn run(
    spec: &SpecArgs,
    registry: &Registry,
    store: &Store,
    jobs: Option<usize>,
    on_error: OnError,
    quiet: bool,
) -> std::io::Result<i32> {
    let Some(plan) = plan_or_report(spec, registry)? else {
        return Ok(1);
    };
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTS.fetch_add(1, Ordering::SeqCst) == 0 {
            CANCEL.store(true, Ordering::SeqCst);
            anstream::eprintln!(
                "interrupted: stopping the running stages (Ctrl-C again to quit at once)"
            );
        } else {
            std::process::exit(130);
        }
    });
    let options = ExecOptions {
        jobs: jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        on_error,
        overrides: spec.overrides(),
    };
    let progress = if quiet {
        Progress::quiet()
    } else {
        Progress::new(false)
    };
    let summary = match exec::run(&plan, store, &options, &progress, &CANCEL) {
        Ok(summary) => summary,
        Err(e) => {
            anstream::eprintln!("{}: {e}", crate::output::error_label());
            return Ok(1);
        }
    };
    print(&format!("{}\n", summary.line()))?;
    Ok(if summary.interrupted() {
        130
    } else if summary.succeeded() {
        0
    } else {
        1
    })
}
