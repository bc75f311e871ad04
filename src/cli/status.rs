//! `accord status SPEC [--json]`.

use super::{SpecArgs, plan_or_report, print};
use crate::Registry;
use crate::output::{BOLD, DIM, FRESH, MISSING, STALE, paint};
use crate::status::{State, status as stage_states};
use crate::store::Store;

pub fn status(
    spec: &SpecArgs,
    registry: &Registry,
    store: &Store,
    json: bool,
) -> std::io::Result<i32> {
    let Some(plan) = plan_or_report(spec, registry)? else {
        return Ok(1);
    };
    let states = stage_states(&plan, store);
    if json {
        let mut text = serde_json::to_string_pretty(&states).expect("statuses serialise");
        text.push('\n');
        return print(&text);
    }
    let width = states.iter().map(|s| s.stage.len()).max().unwrap_or(0);
    let mut out = String::new();
    for s in &states {
        let (style, word) = match s.state {
            State::Fresh => (FRESH, "fresh"),
            State::Stale => (STALE, "stale"),
            State::Missing => (MISSING, "missing"),
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
            "{}  {}  {detail}\n",
            paint(BOLD, &format!("{:width$}", s.stage)),
            paint(style, &format!("{word:7}"))
        ));
    }
    print(&out)
}
