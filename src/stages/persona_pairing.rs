//! `persona_pairing`: opposing personas for each dilemma.
//!
//! `max_conflict` ranks the library's curated opposing pairs for a dilemma — pairs whose
//! domains include the dilemma's first, then by how strongly their values conflict on
//! Schwartz's circumplex — and draws `pairs_per_dilemma` of them without replacement,
//! with probabilities softmax(score / `temperature`) (temperature 0: the top-ranked ones).
//! `random` pairs any two distinct personas uniformly, a baseline for the curation.
//! Each dilemma's pairs come from a stream seeded by the stage seed and the dilemma's id
//! alone, so adding dilemmas keeps earlier pairs. Rows carry the dilemma text and both
//! persona profiles, so later stages read only this table.

use std::path::PathBuf;

use arrow::array::Array;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::persona_library::{self, Persona, PersonaLibrary};
use crate::dialogue::MAX_PARTIES;
use crate::seed::SeededRng;
use crate::stage::{Resource, Stage, StageContext, StageError, Upstream};
use crate::table;

/// Pairs opposing personas with dilemmas.
pub struct PersonaPairing;

/// How pairs are chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Curated opposing pairs that fit the dilemma's domain, most conflicting first.
    #[default]
    MaxConflict,
    /// Any two distinct personas, uniformly.
    Random,
}

/// Parameters of `persona_pairing`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Persona pairs per dilemma (distinct pairs).
    #[serde(default = "default_pairs")]
    pub pairs_per_dilemma: usize,
    /// How pairs are chosen.
    #[serde(default)]
    pub strategy: Strategy,
    /// For `max_conflict`: how far draws stray from the top-ranked pairs (softmax temperature
    /// over conflict scores in [0, 2]); 0 always takes the top-ranked.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// A persona library file in the format of the built-in one, replacing it; relative to
    /// the spec's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<PathBuf>,
    /// Parties per row: 2 is a pair; each further party is the persona that conflicts most
    /// with those chosen (`max_conflict`) or any other one (`random`), in `more_personas`.
    #[serde(default = "default_parties")]
    pub parties: usize,
}

fn default_parties() -> usize {
    2
}

fn default_pairs() -> usize {
    1
}

fn default_temperature() -> f64 {
    0.25
}

impl Stage for PersonaPairing {
    type Params = Params;
    const KIND: &'static str = "persona_pairing";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "Opposing persona pairs for each dilemma, from a Schwartz-values persona library.";

    fn output_schema(&self) -> SchemaRef {
        table::schema(vec![
            table::column(
                "pair_id",
                DataType::Utf8,
                "Pair id: the first 12 hex digits of blake3(dilemma id, persona A, persona B).",
            ),
            table::column("dilemma_id", DataType::Utf8, "The dilemma's id."),
            table::column("tier", DataType::Utf8, "The dilemma's tier."),
            table::column("domain", DataType::Utf8, "The dilemma's domain."),
            table::column("dilemma", DataType::Utf8, "The dilemma's text."),
            table::column("persona_a", DataType::Utf8, "Persona A's id."),
            table::column(
                "persona_a_profile",
                DataType::Utf8,
                "Persona A's name, stance, values and priorities, as put in its system prompt.",
            ),
            table::column("persona_b", DataType::Utf8, "Persona B's id."),
            table::column("persona_b_profile", DataType::Utf8, "Persona B's profile."),
            table::column(
                "conflict_axis",
                DataType::Utf8,
                "The conflict, \"x vs. y\".",
            ),
            table::column(
                "conflict_score",
                DataType::Float64,
                "Circumplex conflict of the two personas' values, 0 (same) to 1 (opposite).",
            ),
            table::column(
                "more_personas",
                table::list_of(DataType::Utf8),
                "The ids of parties 3, 4, … (`parties` above 2); empty for pairs.",
            ),
            table::column(
                "more_profiles",
                table::list_of(DataType::Utf8),
                "Their profiles, in the same order.",
            ),
        ])
    }

    fn check_params(&self, params: &Params) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if params.parties < 2 || params.parties > MAX_PARTIES {
            problems.push((
                "parties".into(),
                format!("a negotiation needs 2 to {MAX_PARTIES} parties"),
            ));
        }
        if params.pairs_per_dilemma == 0 {
            problems.push((
                "pairs_per_dilemma".into(),
                "`pairs_per_dilemma` is 0, so the stage would produce nothing".into(),
            ));
        }
        // The built-in library is known now; a `library` file is checked when it is read.
        if params.library.is_none() {
            problems.extend(library_problems(params, PersonaLibrary::builtin()));
        }
        if !(params.temperature >= 0.0 && params.temperature.is_finite()) {
            problems.push((
                "temperature".into(),
                format!(
                    "`temperature` is {}, but must be 0 or more",
                    params.temperature
                ),
            ));
        }
        problems
    }

    fn check_inputs(&self, _params: &Params, inputs: &[Upstream]) -> Result<(), String> {
        match inputs {
            [_] => Ok(()),
            _ => Err(format!(
                "`persona_pairing` reads one table of dilemmas (columns id, tier, domain, text), but `needs` lists {} stages",
                inputs.len()
            )),
        }
    }

    fn resources(&self, params: &Params) -> Vec<Resource> {
        super::library_resource(&params.library, "persona library", persona_library::BUILTIN)
    }

    fn run(&self, params: &Params, ctx: &StageContext) -> Result<RecordBatch, StageError> {
        let library = super::load_library(
            ctx,
            &params.library,
            PersonaLibrary::builtin(),
            PersonaLibrary::parse,
        )?;
        let [input] = ctx.inputs.as_slice() else {
            return Err(StageError::Failed(
                "`persona_pairing` needs exactly one input".into(),
            ));
        };
        let ids = table::string_column(input, "id")?;
        let tiers = table::string_column(input, "tier")?;
        let domains = table::string_column(input, "domain")?;
        let texts = table::string_column(input, "text")?;
        if let Some((_, problem)) = library_problems(params, &library).into_iter().next() {
            return Err(StageError::Failed(problem));
        }
        ctx.progress.set_total(ids.len() as u64);
        let mut rows: Vec<Row> = Vec::with_capacity(ids.len() * params.pairs_per_dilemma);
        for i in 0..ids.len() {
            ctx.check_cancelled()?;
            let dilemma = Dilemma {
                id: ids.value(i),
                tier: tiers.value(i),
                domain: domains.value(i),
                text: texts.value(i),
            };
            rows.extend(pair(&library, params, ctx.seed, &dilemma));
            ctx.progress.advance(1);
        }
        let schema = Stage::output_schema(self);
        table::batch(
            &schema,
            vec![
                table::strings(rows.iter().map(|r| r.pair_id.as_str())),
                table::strings(rows.iter().map(|r| r.dilemma_id.as_str())),
                table::strings(rows.iter().map(|r| r.tier.as_str())),
                table::strings(rows.iter().map(|r| r.domain.as_str())),
                table::strings(rows.iter().map(|r| r.dilemma.as_str())),
                table::strings(rows.iter().map(|r| r.persona_a.as_str())),
                table::strings(rows.iter().map(|r| r.persona_a_profile.as_str())),
                table::strings(rows.iter().map(|r| r.persona_b.as_str())),
                table::strings(rows.iter().map(|r| r.persona_b_profile.as_str())),
                table::strings(rows.iter().map(|r| r.conflict_axis.as_str())),
                table::floats(rows.iter().map(|r| r.conflict_score)),
                table::string_lists(rows.iter().map(|r| &r.more_personas)),
                table::string_lists(rows.iter().map(|r| &r.more_profiles)),
            ],
        )
    }
}

/// What `library` cannot supply: more pairs per dilemma than it has, or more parties than
/// it has personas (which would silently give rows fewer parties than asked).
fn library_problems(params: &Params, library: &PersonaLibrary) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let n = library.personas.len();
    let which = if params.library.is_some() {
        "the `library`"
    } else {
        "the built-in library"
    };
    let pairs = match params.strategy {
        Strategy::MaxConflict => library.pairs.len(),
        Strategy::Random => n * n.saturating_sub(1) / 2,
    };
    if params.pairs_per_dilemma > pairs {
        let made = match params.strategy {
            Strategy::MaxConflict => "curated pairs",
            Strategy::Random => "distinct pairs its personas make",
        };
        problems.push((
            "pairs_per_dilemma".into(),
            format!(
                "`pairs_per_dilemma: {}` asks for more pairs than the {pairs} {made} in {which}",
                params.pairs_per_dilemma
            ),
        ));
    }
    if params.parties > n {
        problems.push((
            "parties".into(),
            format!(
                "`parties: {}` asks for more parties than the {n} personas in {which}",
                params.parties
            ),
        ));
    }
    problems
}

/// The dilemma fields pairing looks at.
pub struct Dilemma<'a> {
    pub id: &'a str,
    pub tier: &'a str,
    pub domain: &'a str,
    pub text: &'a str,
}

/// One output row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub pair_id: String,
    pub dilemma_id: String,
    pub tier: String,
    pub domain: String,
    pub dilemma: String,
    pub persona_a: String,
    pub persona_a_profile: String,
    pub persona_b: String,
    pub persona_b_profile: String,
    pub conflict_axis: String,
    pub conflict_score: f64,
    /// Parties beyond the pair: ids and profiles.
    pub more_personas: Vec<String>,
    pub more_profiles: Vec<String>,
}

/// Parties 3, 4, … for a row whose pair is `chosen`.
fn more_parties<'a>(
    library: &'a PersonaLibrary,
    params: &Params,
    rng: &mut SeededRng,
    chosen: &[&'a Persona],
) -> Vec<&'a Persona> {
    let mut all: Vec<&Persona> = chosen.to_vec();
    let mut more = Vec::new();
    while all.len() < params.parties.min(library.personas.len()) {
        let free: Vec<&Persona> = library
            .personas
            .iter()
            .filter(|p| !all.iter().any(|q| q.id == p.id))
            .collect();
        let next = match params.strategy {
            Strategy::Random => free[rng.below(free.len())],
            Strategy::MaxConflict => {
                let score = |p: &Persona| {
                    all.iter().map(|q| library.conflict(p, q)).sum::<f64>() / all.len() as f64
                };
                let best = free
                    .iter()
                    .map(|p| score(p))
                    .fold(f64::NEG_INFINITY, f64::max);
                let ties: Vec<&Persona> =
                    free.iter().copied().filter(|p| score(p) == best).collect();
                ties[rng.below(ties.len())]
            }
        };
        all.push(next);
        more.push(next);
    }
    more
}

/// The pairs for one dilemma; depends only on the library, parameters, seed and dilemma.
pub fn pair(library: &PersonaLibrary, params: &Params, seed: u64, dilemma: &Dilemma) -> Vec<Row> {
    let mut rng = SeededRng::new(seed, &[b"pairing", dilemma.id.as_bytes()]);
    let chosen = match params.strategy {
        Strategy::MaxConflict => max_conflict_pairs(library, params, &mut rng, dilemma),
        Strategy::Random => random_pairs(library, params, &mut rng),
    };
    // Every pair's further parties are drawn after all the pairs, from the same stream.
    let with_more: Vec<_> = chosen
        .into_iter()
        .map(|(a, b, axis)| {
            let more = more_parties(library, params, &mut rng, &[a, b]);
            (a, b, axis, more)
        })
        .collect();
    with_more
        .into_iter()
        .map(|(a, b, axis, more)| {
            let mut id = format!("{}\n{}\n{}", dilemma.id, a.id, b.id);
            for p in &more {
                id.push('\n');
                id.push_str(&p.id);
            }
            Row {
                pair_id: blake3::hash(id.as_bytes()).to_hex()[..12].to_string(),
                dilemma_id: dilemma.id.to_string(),
                tier: dilemma.tier.to_string(),
                domain: dilemma.domain.to_string(),
                dilemma: dilemma.text.to_string(),
                persona_a: a.id.clone(),
                persona_a_profile: library.profile(a),
                persona_b: b.id.clone(),
                persona_b_profile: library.profile(b),
                conflict_axis: axis,
                conflict_score: library.conflict(a, b),
                more_personas: more.iter().map(|p| p.id.clone()).collect(),
                more_profiles: more.iter().map(|p| library.profile(p)).collect(),
            }
        })
        .collect()
}

/// A chosen pair: its two personas and its conflict axis.
type Chosen<'a> = (&'a Persona, &'a Persona, String);

/// `max_conflict`: curated pairs scored by domain fit (1 or 0) plus value conflict (0 to
/// 1), taken best first (ties drawn at random) or, above temperature 0, drawn with
/// weights `exp((score - best) / temperature)`.
fn max_conflict_pairs<'a>(
    library: &'a PersonaLibrary,
    params: &Params,
    rng: &mut SeededRng,
    dilemma: &Dilemma,
) -> Vec<Chosen<'a>> {
    let mut candidates: Vec<(f64, usize)> = library
        .pairs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let fit = if p.domains.iter().any(|d| d == dilemma.domain) {
                1.0
            } else {
                0.0
            };
            let conflict = library.conflict(library.persona(&p.a), library.persona(&p.b));
            (fit + conflict, i)
        })
        .collect();
    let mut picked = Vec::new();
    for _ in 0..params.pairs_per_dilemma {
        let best = candidates
            .iter()
            .map(|c| c.0)
            .fold(f64::NEG_INFINITY, f64::max);
        let k = if params.temperature == 0.0 {
            let ties: Vec<usize> = (0..candidates.len())
                .filter(|k| candidates[*k].0 == best)
                .collect();
            ties[rng.below(ties.len())]
        } else {
            let weights: Vec<f64> = candidates
                .iter()
                .map(|c| ((c.0 - best) / params.temperature).exp())
                .collect();
            rng.weighted(&weights)
        };
        let (_, index) = candidates.remove(k);
        let p = &library.pairs[index];
        picked.push((library.persona(&p.a), library.persona(&p.b), p.axis.clone()));
    }
    picked
}

/// `random`: distinct unordered pairs of any two personas, the axis named after their
/// first values.
fn random_pairs<'a>(
    library: &'a PersonaLibrary,
    params: &Params,
    rng: &mut SeededRng,
) -> Vec<Chosen<'a>> {
    let n = library.personas.len();
    let mut picked: Vec<(usize, usize)> = Vec::new();
    while picked.len() < params.pairs_per_dilemma {
        let a = rng.below(n);
        let b = rng.below(n - 1);
        let b = if b >= a { b + 1 } else { b };
        if !picked
            .iter()
            .any(|&(x, y)| (x, y) == (a, b) || (x, y) == (b, a))
        {
            picked.push((a, b));
        }
    }
    picked
        .into_iter()
        .map(|(a, b)| {
            let (a, b) = (&library.personas[a], &library.personas[b]);
            let axis = format!(
                "{} vs. {}",
                a.values[0].replace('_', "-"),
                b.values[0].replace('_', "-")
            );
            (a, b, axis)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(strategy: Strategy, k: usize, temperature: f64) -> Params {
        Params {
            pairs_per_dilemma: k,
            strategy,
            temperature,
            library: None,
            parties: 2,
        }
    }

    #[test]
    fn further_parties_conflict_with_the_pair_and_are_distinct() {
        let lib = PersonaLibrary::builtin();
        let mut p = params(Strategy::MaxConflict, 2, 0.0);
        p.parties = 4;
        for row in pair(lib, &p, 3, &dilemma("d1")) {
            assert_eq!(row.more_personas.len(), 2);
            assert_eq!(row.more_profiles.len(), 2);
            let mut all = vec![row.persona_a.clone(), row.persona_b.clone()];
            all.extend(row.more_personas.clone());
            all.sort();
            all.dedup();
            assert_eq!(all.len(), 4, "parties are distinct");
        }
        let two = pair(
            lib,
            &params(Strategy::MaxConflict, 2, 0.0),
            3,
            &dilemma("d1"),
        );
        assert!(two.iter().all(|r| r.more_personas.is_empty()));
    }

    fn dilemma(id: &str) -> Dilemma<'_> {
        Dilemma {
            id,
            tier: "professional",
            domain: "healthcare",
            text: "t",
        }
    }

    #[test]
    fn pairs_are_distinct_and_reproducible() {
        let lib = PersonaLibrary::builtin();
        for strategy in [Strategy::MaxConflict, Strategy::Random] {
            let a = pair(lib, &params(strategy, 5, 0.25), 3, &dilemma("d1"));
            let b = pair(lib, &params(strategy, 5, 0.25), 3, &dilemma("d1"));
            assert_eq!(a, b);
            let ids: std::collections::BTreeSet<_> = a.iter().map(|r| r.pair_id.clone()).collect();
            assert_eq!(ids.len(), 5);
            assert!(a.iter().all(|r| r.persona_a != r.persona_b));
        }
    }

    #[test]
    fn max_conflict_at_zero_temperature_takes_fitting_top_pairs() {
        let lib = PersonaLibrary::builtin();
        let rows = pair(
            lib,
            &params(Strategy::MaxConflict, 3, 0.0),
            1,
            &dilemma("d1"),
        );
        for row in &rows {
            let p = lib
                .pairs
                .iter()
                .find(|p| p.a == row.persona_a && p.b == row.persona_b)
                .unwrap();
            assert!(p.domains.iter().any(|d| d == "healthcare"), "{p:?}");
        }
    }

    #[test]
    fn different_dilemmas_get_different_draws() {
        let lib = PersonaLibrary::builtin();
        let firsts: std::collections::BTreeSet<String> = (0..20)
            .map(|i| {
                let id = format!("d{i}");
                pair(
                    lib,
                    &params(Strategy::MaxConflict, 1, 0.25),
                    0,
                    &dilemma(&id),
                )[0]
                .persona_a
                .clone()
            })
            .collect();
        assert!(firsts.len() > 1, "temperature should spread the draws");
    }
}
