//! `accord run SPEC`: run what is stale, here or as Slurm jobs, print `N ran, M cached`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::{SpecArgs, plans_or_report, print};
use crate::Registry;
use crate::exec::outcome::Tally;
use crate::exec::slurm::{self, SlurmOptions};
use crate::exec::{self, ExecOptions, OnError};
use crate::progress::Progress;
use crate::spec::Executor;
use crate::store::Store;

/// Set by the first Ctrl-C; running stages stop at their next row.
static CANCEL: AtomicBool = AtomicBool::new(false);
static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);

/// `accord run`'s own options.
pub struct RunArgs {
    pub jobs: Option<usize>,
    pub on_error: OnError,
    pub executor: Option<Executor>,
    /// Compute only this stage (a Slurm job).
    pub stage: Option<String>,
    /// The identity the stage had when its job was submitted.
    pub identity: Option<String>,
}

pub fn run(
    spec: &SpecArgs,
    registry: &Registry,
    store: &Store,
    args: RunArgs,
    quiet: bool,
) -> std::io::Result<i32> {
    let RunArgs {
        jobs,
        on_error,
        executor,
        stage,
        identity,
    } = args;
    let Some(mut plans) = plans_or_report(spec, registry)? else {
        return Ok(1);
    };
    if let Some(name) = &stage {
        let Some(i) = (plans.len() == 1)
            .then(|| plans[0].index_of(name))
            .flatten()
        else {
            anstream::eprintln!(
                "{}: `--stage {name}` needs one plan that has that stage (and `--variant` when \
                 the spec has ablations)",
                crate::output::error_label()
            );
            return Ok(2);
        };
        if let Some(expected) = &identity
            && slurm::stage_identity(&plans[0], i) != *expected
        {
            anstream::eprintln!(
                "{}: stage `{name}` is not what this job was submitted for: the spec or an \
                 override changed since\n  = hint: run `accord run` again \
                 to submit what the spec describes now",
                crate::output::error_label()
            );
            return Ok(1);
        }
        plans = vec![plans[0].upstream_of(i)];
    }
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
    let executor = executor.unwrap_or(plans[0].loaded.spec.executor);
    if executor == Executor::Slurm && stage.is_none() {
        let options = SlurmOptions {
            on_error,
            overrides: spec.overrides(),
        };
        return match slurm::run(&plans, store, &options, &progress, &CANCEL) {
            Ok(code) => Ok(code),
            Err(e) => {
                anstream::eprintln!("{}: {e}", crate::output::error_label());
                Ok(1)
            }
        };
    }
    // Variants run one after another; a stage they share has one key, so only the first
    // computes it and the rest find it in the store. They share one lease on the store.
    let _lease = match store.lock_shared_for_run() {
        Ok(lease) => lease,
        Err(e) => {
            anstream::eprintln!("{}: {e}", crate::output::error_label());
            return Ok(1);
        }
    };
    let (mut total, mut failed) = (Tally::default(), false);
    let several = plans.len() > 1;
    for plan in &plans {
        if CANCEL.load(Ordering::SeqCst) {
            return Ok(130);
        }
        if let Some(name) = &plan.variant {
            progress.println(&format!("variant {name}"));
        }
        let options = ExecOptions {
            jobs: jobs.unwrap_or_else(crate::exec::available_threads),
            on_error,
            overrides: spec.overrides(),
            compute_only: stage.clone(),
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
        total += summary.tally();
        failed |= !summary.succeeded();
        if failed && on_error == OnError::Fail {
            break;
        }
    }
    if several {
        print(&format!("{}\n", total.over_variants(plans.len())))?;
    }
    Ok(if failed { 1 } else { 0 })
}
