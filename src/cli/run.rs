//! `accord run SPEC`: run what is stale, print `N ran, M cached`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::{SpecArgs, plans_or_report, print};
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
    let Some(plans) = plans_or_report(spec, registry)? else {
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
    let progress = if quiet {
        Progress::quiet()
    } else {
        Progress::new(false)
    };
    // Variants run one after another; a stage they share has one key, so only the first
    // computes it and the rest find it in the store.
    let (mut ran, mut cached, mut failed) = (0, 0, false);
    let several = plans.len() > 1;
    for plan in &plans {
        if CANCEL.load(Ordering::SeqCst) {
            return Ok(130);
        }
        if let Some(name) = &plan.variant {
            progress.println(&format!("variant {name}"));
        }
        let options = ExecOptions {
            jobs: jobs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            on_error,
            overrides: spec.overrides(),
        };
        let summary = match exec::run(plan, store, &options, &progress, &CANCEL) {
            Ok(summary) => summary,
            Err(e) => {
                anstream::eprintln!("{}: {e}", crate::output::error_label());
                return Ok(1);
            }
        };
        if summary.interrupted() {
            print(&format!("{}\n", summary.line()))?;
            return Ok(130);
        }
        match (&plan.variant, several) {
            (Some(name), true) => print(&format!("{name}: {}\n", summary.line()))?,
            _ => print(&format!("{}\n", summary.line()))?,
        };
        ran += summary.count("ran");
        cached += summary.count("cached");
        failed |= !summary.succeeded();
        if failed && on_error == OnError::Fail {
            break;
        }
    }
    if several {
        print(&format!(
            "{ran} ran, {cached} cached over {} variants\n",
            plans.len()
        ))?;
    }
    Ok(if failed { 1 } else { 0 })
}
