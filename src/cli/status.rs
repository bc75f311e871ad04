//! `accord status SPEC [--json]`.

use super::{SpecArgs, plans_or_report, print};
use crate::Registry;
use crate::exec::slurm::live_jobs;
use crate::exec::slurm::scheduler::JobState;
use crate::output::{BOLD, DIM, FRESH, MISSING, STALE, paint};
use crate::plan::Plan;
use crate::status::{StageStatus, State, status as stage_states};
use crate::store::Store;
use crate::store::jobs::JobRecord;

pub fn status(
    spec: &SpecArgs,
    registry: &Registry,
    store: &Store,
    json: bool,
) -> std::io::Result<i32> {
    let Some(plans) = plans_or_report(spec, registry)? else {
        return Ok(1);
    };
    let jobs = live_jobs(store);
    let stage_states = |plan: &Plan, store: &Store| {
        let mut states = stage_states(plan, store);
        mark_jobs(plan, &mut states, &jobs);
        states
    };
    if json {
        // One object per stage (per variant: each with its `variant`).
        let mut all = Vec::new();
        for plan in &plans {
            for state in stage_states(plan, store) {
                let mut value = serde_json::to_value(&state).expect("statuses serialise");
                if let Some(name) = &plan.variant {
                    value["variant"] = name.clone().into();
                }
                all.push(value);
            }
        }
        let mut text = serde_json::to_string_pretty(&all).expect("statuses serialise");
        text.push('\n');
        return print(&text);
    }
    let mut out = String::new();
    for plan in &plans {
        if let Some(name) = &plan.variant {
            out.push_str(&format!("{}\n", paint(BOLD, &format!("variant {name}"))));
        }
        let indent = if plan.variant.is_some() { "  " } else { "" };
        let states = stage_states(plan, store);
        let width = states.iter().map(|s| s.stage.len()).max().unwrap_or(0);
        for s in &states {
            let (style, word) = match s.state {
                State::Fresh => (FRESH, "fresh"),
                State::Stale => (STALE, "stale"),
                State::Missing => (MISSING, "missing"),
                State::Queued => (STALE, "queued"),
                State::Running => (FRESH, "running"),
            };
            let detail = match s.state {
                State::Fresh => paint(
                    DIM,
                    &s.key
                        .as_deref()
                        .map(|k| k[..12].to_string())
                        .unwrap_or_default(),
                ),
                _ => s.reason.clone(),
            };
            out.push_str(&format!(
                "{indent}{}  {}  {detail}\n",
                paint(BOLD, &format!("{:width$}", s.stage)),
                paint(style, &format!("{word:7}"))
            ));
        }
    }
    print(&out)
}

/// Marks the stages of `states` that a live cluster job (see [`live_jobs`]) is computing
/// as queued or running.
fn mark_jobs(plan: &Plan, states: &mut [StageStatus], jobs: &[(JobRecord, JobState)]) {
    for status in states.iter_mut().filter(|s| s.state != State::Fresh) {
        let Some((record, state)) = jobs.iter().find(|(r, _)| {
            r.spec_name == plan.loaded.spec.name
                && r.stage == status.stage
                && r.variants.contains(&plan.variant)
        }) else {
            continue;
        };
        status.job = Some(record.job.clone());
        match state {
            JobState::Pending { reason } => {
                status.state = State::Queued;
                status.reason = match reason.as_str() {
                    "" | "None" => format!("job {}", record.job),
                    _ => format!("job {} ({reason})", record.job),
                };
            }
            JobState::Running { node } => {
                status.state = State::Running;
                status.reason = format!("job {} on {node}", record.job);
            }
            _ => {}
        }
    }
}
