//! `accord validate SPEC`: check a spec without running anything.

use super::{SpecArgs, plans_or_report, print};
use crate::Registry;

pub fn validate(spec: &SpecArgs, registry: &Registry) -> std::io::Result<i32> {
    // Every variant is loaded, so a bad ablation value is found too.
    let Some(plans) = plans_or_report(spec, registry)? else {
        return Ok(1);
    };
    let n = plans[0].stages.len();
    let variants = match plans.len() {
        1 if plans[0].variant.is_none() => String::new(),
        1 => ", 1 variant".to_string(),
        v => format!(", {v} variants"),
    };
    print(&format!(
        "`{}` is valid: {n} stage{}{variants}\n",
        spec.spec.display(),
        if n == 1 { "" } else { "s" }
    ))
}
