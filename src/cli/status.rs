//! `accord status SPEC [--json]`.

use super::{SpecArgs, plans_or_report, print};
use crate::Registry;
use crate::output::{BOLD, DIM, FRESH, MISSING, STALE, paint};
use crate::status::{State, mark_jobs, status as stage_states};
use crate::store::Store;

pub fn status(
    spec: &SpecArgs,
    registry: &Registry,
    store: &Store,
    json: bool,
) -> std::io::Result<i32> {
    let Some(plans) = plans_or_report(spec, registry)? else {
        return Ok(1);
    };
    let jobs = crate::slurm::live_jobs(store);
    let stage_states = |plan: &crate::plan::Plan, store: &Store| {
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
