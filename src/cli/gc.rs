//! `accord gc`: remove what no kept run refers to, and say what was freed.

use super::print;
use crate::store::Store;
use crate::store::gc::GcError;

pub fn gc(store: &Store, keep_runs: usize, work: bool, dry_run: bool) -> std::io::Result<i32> {
    if !store.exists() {
        return Ok(super::no_store(store, "collect"));
    }
    // Cluster jobs hold no lease while they wait in the queue, yet need their inputs.
    let jobs = crate::exec::slurm::live_jobs(store);
    if let Some((first, _)) = jobs.first() {
        anstream::eprintln!(
            "{}: {} Slurm jobs still compute stages into this store (job {}, stage `{}`, …)\n  = hint: run `accord gc` again when they have finished (`accord status SPEC` shows them)",
            crate::output::error_label(),
            jobs.len(),
            first.job,
            first.stage
        );
        return Ok(1);
    }
    let report = match store.gc(keep_runs, work, dry_run) {
        Ok(report) => report,
        Err(GcError::Busy) => {
            anstream::eprintln!(
                "{}: another `accord run` is using this store\n  = hint: run `accord gc` again when it has finished",
                crate::output::error_label()
            );
            return Ok(1);
        }
        Err(e) => {
            anstream::eprintln!("{}: {e}", crate::output::error_label());
            return Ok(1);
        }
    };
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut out = String::new();
    for (stage, key, bytes) in &report.artifacts {
        out.push_str(&format!(
            "{verb} `{stage}` {} ({})\n",
            &key[..12],
            human_bytes(*bytes)
        ));
    }
    out.push_str(&format!(
        "{} {} artifact{} and {} old run record{}; {} {}; kept {} run{}\n",
        if dry_run { "would remove" } else { "removed" },
        report.artifacts.len(),
        if report.artifacts.len() == 1 { "" } else { "s" },
        report.runs,
        if report.runs == 1 { "" } else { "s" },
        if dry_run { "would free" } else { "freed" },
        human_bytes(report.freed),
        report.kept_runs,
        if report.kept_runs == 1 { "" } else { "s" },
    ));
    print(&out)
}

/// `12.3 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}
