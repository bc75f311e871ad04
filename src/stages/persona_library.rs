//! The persona library: personas grounded in Schwartz's basic human values, and curated
//! opposing pairs.
//!
//! Each persona ranks two or three of Schwartz's ten values; the values sit on a circle
//! (the circumplex) where neighbours are compatible and opposites conflict, which gives a
//! principled conflict score between two personas. The built-in library
//! (`data/personas.yaml`, written for this project) is compiled in; a spec may replace it
//! (`with.library`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde::Deserialize;

/// The built-in library's text.
pub const BUILTIN: &str = include_str!("../../data/personas.yaml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLibrary {
    version: u32,
    theory: String,
    values: Vec<String>,
    personas: Vec<Persona>,
    pairs: Vec<Pair>,
}

/// One persona.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persona {
    pub id: String,
    pub name: String,
    /// Values, most important first.
    pub values: Vec<String>,
    pub stance: String,
    pub priorities: Vec<String>,
}

/// A curated pair of personas with opposing commitments.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pair {
    pub a: String,
    pub b: String,
    /// The conflict, "x vs. y".
    pub axis: String,
    /// Dilemma domains where this conflict is most at home.
    #[serde(default)]
    pub domains: Vec<String>,
}

/// A checked persona library.
#[derive(Debug, Clone)]
pub struct PersonaLibrary {
    pub theory: String,
    /// The values in circumplex order.
    pub values: Vec<String>,
    pub personas: Vec<Persona>,
    pub pairs: Vec<Pair>,
    index: BTreeMap<String, usize>,
}

impl PersonaLibrary {
    /// The library built into `accord`.
    pub fn builtin() -> &'static PersonaLibrary {
        static LIBRARY: OnceLock<PersonaLibrary> = OnceLock::new();
        LIBRARY.get_or_init(|| {
            PersonaLibrary::parse(BUILTIN).expect("the built-in persona library is valid")
        })
    }

    /// Parses and checks a library.
    pub fn parse(text: &str) -> Result<PersonaLibrary, String> {
        let raw: RawLibrary = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        if raw.version != 1 {
            return Err(format!(
                "unsupported library version {} (expected 1)",
                raw.version
            ));
        }
        if raw.values.len() < 2 {
            return Err("`values` must list the value circumplex in order".into());
        }
        let known: BTreeSet<&String> = raw.values.iter().collect();
        let mut index = BTreeMap::new();
        for (i, p) in raw.personas.iter().enumerate() {
            if index.insert(p.id.clone(), i).is_some() {
                return Err(format!("persona id `{}` is used twice", p.id));
            }
            if p.values.is_empty() {
                return Err(format!("persona `{}` has no values", p.id));
            }
            if let Some(v) = p.values.iter().find(|v| !known.contains(v)) {
                return Err(format!(
                    "persona `{}` has value `{v}`, which is not in `values`",
                    p.id
                ));
            }
        }
        if raw.personas.len() < 2 {
            return Err("the library needs at least two personas".into());
        }
        let mut seen = BTreeSet::new();
        for pair in &raw.pairs {
            for id in [&pair.a, &pair.b] {
                if !index.contains_key(id) {
                    return Err(format!(
                        "pair `{} vs. {}` names unknown persona `{id}`",
                        pair.a, pair.b
                    ));
                }
            }
            if pair.a == pair.b {
                return Err(format!("pair `{}` pairs a persona with itself", pair.a));
            }
            let unordered = if pair.a < pair.b {
                (&pair.a, &pair.b)
            } else {
                (&pair.b, &pair.a)
            };
            if !seen.insert(unordered) {
                return Err(format!("pair `{}` / `{}` is listed twice", pair.a, pair.b));
            }
        }
        Ok(PersonaLibrary {
            theory: raw.theory,
            values: raw.values,
            personas: raw.personas,
            pairs: raw.pairs,
            index,
        })
    }

    pub fn persona(&self, id: &str) -> &Persona {
        &self.personas[self.index[id]]
    }

    /// Distance of two values on the circumplex, from 0 (same) to 1 (opposite).
    pub fn value_distance(&self, a: &str, b: &str) -> f64 {
        let n = self.values.len();
        let i = self
            .values
            .iter()
            .position(|v| v == a)
            .expect("values are checked");
        let j = self
            .values
            .iter()
            .position(|v| v == b)
            .expect("values are checked");
        let d = i.abs_diff(j);
        d.min(n - d) as f64 / (n / 2) as f64
    }

    /// How strongly two personas' values conflict, from 0 to 1: the circumplex distance of
    /// their values, weighted by rank (first value 1, second ½, third ¼).
    pub fn conflict(&self, a: &Persona, b: &Persona) -> f64 {
        let mut total = 0.0;
        let mut weights = 0.0;
        for (i, va) in a.values.iter().enumerate() {
            for (j, vb) in b.values.iter().enumerate() {
                let w = 0.5f64.powi(i as i32) * 0.5f64.powi(j as i32);
                total += w * self.value_distance(va, vb);
                weights += w;
            }
        }
        total / weights
    }

    /// The text an agent's system prompt uses to present a persona.
    pub fn profile(&self, p: &Persona) -> String {
        let values: Vec<String> = p.values.iter().map(|v| v.replace('_', "-")).collect();
        format!(
            "{}. {} Your core values: {}. Your priorities: {}.",
            p.name,
            p.stance.trim(),
            values.join(", "),
            p.priorities.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_library_meets_the_paper_scale() {
        let lib = PersonaLibrary::builtin();
        assert!(lib.personas.len() >= 50, "{} personas", lib.personas.len());
        assert!(lib.pairs.len() >= 25, "{} pairs", lib.pairs.len());
        assert_eq!(lib.values.len(), 10);
        assert!(lib.theory.contains("Schwartz"));
        for p in &lib.personas {
            assert!(!p.stance.is_empty() && p.priorities.len() == 3, "{}", p.id);
        }
    }

    #[test]
    fn opposite_values_conflict_most() {
        let lib = PersonaLibrary::builtin();
        assert_eq!(lib.value_distance("power", "universalism"), 1.0);
        assert_eq!(lib.value_distance("power", "power"), 0.0);
        assert_eq!(lib.value_distance("self_direction", "universalism"), 0.2);
        let mean: f64 = lib
            .pairs
            .iter()
            .map(|p| lib.conflict(lib.persona(&p.a), lib.persona(&p.b)))
            .sum::<f64>()
            / lib.pairs.len() as f64;
        assert!(mean > 0.5, "curated pairs should conflict, mean {mean}");
    }

    #[test]
    fn rejects_pairs_naming_unknown_personas() {
        let text = "version: 1\ntheory: t\nvalues: [a, b]\npersonas:\n  - {id: x, name: X, values: [a], stance: s, priorities: []}\n  - {id: y, name: Y, values: [b], stance: s, priorities: []}\npairs:\n  - {a: x, b: z, axis: q}\n";
        let err = PersonaLibrary::parse(text).unwrap_err();
        assert!(err.contains("unknown persona `z`"), "{err}");
    }
}
