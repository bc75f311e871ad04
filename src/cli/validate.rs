//! `accord validate SPEC`: check a spec without running anything.

use super::{SpecArgs, plan_or_report, print};
use crate::Registry;

pub fn validate(spec: &SpecArgs, registry: &Registry) -> std::io::Result<i32> {
    let Some(plan) = plan_or_report(spec, registry)? else {
        return Ok(1);
    };
    let n = plan.stages.len();
    print(&format!(
        "`{}` is valid: {n} stage{}\n",
        spec.spec.display(),
        if n == 1 { "" } else { "s" }
    ))
}
