//! `prompt_synthesis`'s template mode: each row fills a library template's slots from
//! its own seeded stream, redrawing texts an earlier row already has.

use std::collections::{BTreeMap, HashSet};

use super::dilemma_library::{DilemmaLibrary, Template, Tier};
use super::{Dilemma, Params};
use crate::seed::SeededRng;
use crate::stage::{StageContext, StageError};

/// Produces `params.count` distinct dilemmas.
pub fn synthesise(
    library: &DilemmaLibrary,
    params: &Params,
    ctx: &StageContext,
) -> Result<Vec<Dilemma>, StageError> {
    let by_tier: Vec<(Tier, Vec<&Template>)> = params
        .tiers
        .iter()
        .map(|tier| {
            let templates = library
                .templates
                .iter()
                .filter(|t| {
                    t.tier == *tier
                        && (params.domains.is_empty() || params.domains.contains(&t.domain))
                })
                .collect();
            (*tier, templates)
        })
        .collect();
    // Fail up front when some tier cannot supply its share of distinct dilemmas. Row i
    // takes tier i % k, so the j-th listed tier gets count / k rows, one more when j is
    // below count % k (counted, not walked row by row).
    let mut needed: BTreeMap<Tier, u128> = BTreeMap::new();
    let k = by_tier.len();
    for (j, (tier, _)) in by_tier.iter().enumerate() {
        let share = params.count / k + usize::from(j < params.count % k);
        *needed.entry(*tier).or_default() += share as u128;
    }
    for (tier, needed) in needed {
        let (_, templates) = by_tier
            .iter()
            .find(|(t, _)| *t == tier)
            .expect("tier is listed");
        let capacity: u128 = templates.iter().map(|t| t.capacity()).sum();
        let capacity = (capacity as f64 * params.split.share(params.heldout_share)).floor() as u128;
        if needed > capacity {
            let domains = if params.domains.is_empty() {
                String::new()
            } else {
                format!(" in domains {}", params.domains.join(", "))
            };
            return Err(StageError::Failed(format!(
                "the dilemma library can supply only {capacity} distinct `{tier}` dilemmas{domains}, but `count: {}` needs {needed}; lower `count`, add tiers or domains, or use a larger `library`",
                params.count
            )));
        }
    }
    ctx.progress.set_total(params.count as u64);
    let mut seen = HashSet::new();
    let mut rows = Vec::with_capacity(params.count);
    for i in 0..params.count {
        ctx.check_cancelled()?;
        let (tier, templates) = &by_tier[i % by_tier.len()];
        let usable =
            |text: &str| !seen.contains(text) && params.split.holds(text, params.heldout_share);
        let Some((template, text)) = draw(templates, ctx.seed, i, usable, ctx)? else {
            return Err(StageError::Failed(format!(
                "the dilemma library ran out of distinct `{tier}` dilemmas in `split: {}` after {i} rows; lower `count` or use a larger `library`",
                serde_json::to_value(params.split)
                    .expect("a name")
                    .as_str()
                    .unwrap_or_default()
            )));
        };
        seen.insert(text.clone());
        let id = blake3::hash(format!("{tier}\n{}\n{text}", template.domain).as_bytes()).to_hex()
            [..12]
            .to_string();
        rows.push(Dilemma {
            id,
            tier: *tier,
            domain: template.domain.clone(),
            template: template.id.clone(),
            text,
        });
        ctx.progress.advance(1);
    }
    Ok(rows)
}

/// Draws row `i`'s template and a text `usable` accepts; `None` when no combination is.
/// The walk over every combination checks for cancellation as it goes: a large library
/// can take longer than a second to walk.
fn draw<'a>(
    templates: &[&'a Template],
    seed: u64,
    i: usize,
    usable: impl Fn(&str) -> bool,
    ctx: &StageContext,
) -> Result<Option<(&'a Template, String)>, StageError> {
    let index = (i as u64).to_le_bytes();
    for attempt in 0u32..64 {
        let mut rng = SeededRng::new(seed, &[b"dilemma", &index, &attempt.to_le_bytes()]);
        let template = templates[rng.below(templates.len())];
        let choices: Vec<usize> = template.slot_sizes().map(|n| rng.below(n)).collect();
        let text = template.fill(&choices);
        if usable(&text) {
            return Ok(Some((template, text)));
        }
    }
    // Nearly exhausted: walk every combination from a seeded starting point.
    let total: u128 = templates.iter().map(|t| t.capacity()).sum();
    let mut rng = SeededRng::new(seed, &[b"dilemma-walk", &index]);
    let start = ((rng.next_u64() as u128) << 64 | rng.next_u64() as u128) % total;
    for step in 0..total {
        if step % 4096 == 0 {
            ctx.check_cancelled()?;
        }
        let mut flat = (start + step) % total;
        for template in templates {
            if flat >= template.capacity() {
                flat -= template.capacity();
                continue;
            }
            let mut choices = Vec::new();
            for n in template.slot_sizes() {
                choices.push((flat % n as u128) as usize);
                flat /= n as u128;
            }
            let text = template.fill(&choices);
            if usable(&text) {
                return Ok(Some((template, text)));
            }
            break;
        }
    }
    Ok(None)
}
