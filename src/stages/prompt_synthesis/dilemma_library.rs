//! The dilemma library: scenario templates with `{slot}` placeholders.
//!
//! The built-in library (`data/dilemmas.yaml`, written for this project) is compiled into
//! the binary; a spec may name its own file in the same format (`with.library`). A
//! library is checked when loaded: every placeholder has a vocabulary, ids are unique, no
//! vocabulary is empty. Errors name the file and, for YAML mistakes, the line.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::OnceLock;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The built-in library's text.
pub const BUILTIN: &str = include_str!("../../../data/dilemmas.yaml");

/// The paper's three severity tiers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// High-stakes professional decisions.
    Professional,
    /// Conflicts between people who know each other.
    Interpersonal,
    /// Everyday micro-ethical choices.
    Everyday,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Professional, Tier::Interpersonal, Tier::Everyday];

    pub fn name(self) -> &'static str {
        match self {
            Tier::Professional => "professional",
            Tier::Interpersonal => "interpersonal",
            Tier::Everyday => "everyday",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLibrary {
    version: u32,
    #[serde(default)]
    slots: BTreeMap<String, Vec<String>>,
    templates: Vec<RawTemplate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    id: String,
    tier: Tier,
    domain: String,
    text: String,
    #[serde(default)]
    slots: BTreeMap<String, Vec<String>>,
}

/// A piece of a template's text.
#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    /// The index of a slot in [`Template::slots`].
    Slot(usize),
}

/// A checked template, ready to fill.
#[derive(Debug, Clone)]
pub struct Template {
    pub id: String,
    pub tier: Tier,
    pub domain: String,
    pieces: Vec<Piece>,
    /// Each placeholder's alternatives, in order of first appearance.
    slots: Vec<Vec<String>>,
}

impl Template {
    /// How many distinct texts the template can produce.
    pub fn capacity(&self) -> u128 {
        self.slots
            .iter()
            .fold(1u128, |n, s| n.saturating_mul(s.len() as u128))
    }

    /// How many alternatives each slot has.
    pub fn slot_sizes(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots.iter().map(Vec::len)
    }

    /// The text with slot *k* filled by its `choices[k]`-th alternative.
    pub fn fill(&self, choices: &[usize]) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Slot(k) => out.push_str(&self.slots[*k][choices[*k]]),
            }
        }
        out
    }
}

/// A checked dilemma library.
#[derive(Debug, Clone)]
pub struct DilemmaLibrary {
    pub templates: Vec<Template>,
}

impl DilemmaLibrary {
    /// The library built into `accord`.
    pub fn builtin() -> &'static DilemmaLibrary {
        static LIBRARY: OnceLock<DilemmaLibrary> = OnceLock::new();
        LIBRARY.get_or_init(|| {
            DilemmaLibrary::parse(BUILTIN).expect("the built-in dilemma library is valid")
        })
    }

    /// Parses and checks a library.
    pub fn parse(text: &str) -> Result<DilemmaLibrary, String> {
        let raw: RawLibrary = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        if raw.version != 1 {
            return Err(format!(
                "unsupported library version {} (expected 1)",
                raw.version
            ));
        }
        let mut ids = BTreeSet::new();
        let mut templates = Vec::with_capacity(raw.templates.len());
        for t in raw.templates {
            if !ids.insert(t.id.clone()) {
                return Err(format!("template id `{}` is used twice", t.id));
            }
            let mut pieces = Vec::new();
            let mut names: Vec<String> = Vec::new();
            let mut rest = t.text.as_str();
            while let Some(open) = rest.find('{') {
                let close = rest[open..]
                    .find('}')
                    .map(|c| open + c)
                    .ok_or_else(|| format!("template `{}` has a `{{` without a `}}`", t.id))?;
                if open > 0 {
                    pieces.push(Piece::Text(rest[..open].to_string()));
                }
                let name = &rest[open + 1..close];
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    return Err(format!(
                        "template `{}` has an invalid placeholder `{{{name}}}`",
                        t.id
                    ));
                }
                let k = match names.iter().position(|n| n == name) {
                    Some(k) => k,
                    None => {
                        names.push(name.to_string());
                        names.len() - 1
                    }
                };
                pieces.push(Piece::Slot(k));
                rest = &rest[close + 1..];
            }
            if !rest.is_empty() {
                pieces.push(Piece::Text(rest.to_string()));
            }
            let mut slots = Vec::with_capacity(names.len());
            for name in &names {
                let options = t
                    .slots
                    .get(name)
                    .or_else(|| raw.slots.get(name))
                    .ok_or_else(|| {
                        format!(
                            "template `{}` uses `{{{name}}}`, which has no vocabulary",
                            t.id
                        )
                    })?;
                if options.is_empty() {
                    return Err(format!("the vocabulary of `{name}` is empty"));
                }
                let distinct: BTreeSet<&String> = options.iter().collect();
                if distinct.len() != options.len() {
                    return Err(format!(
                        "the vocabulary of `{name}` lists an alternative twice"
                    ));
                }
                slots.push(options.clone());
            }
            templates.push(Template {
                id: t.id,
                tier: t.tier,
                domain: t.domain,
                pieces,
                slots,
            });
        }
        if templates.is_empty() {
            return Err("the library has no templates".into());
        }
        Ok(DilemmaLibrary { templates })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_library_is_large_and_covers_tiers_and_domains() {
        let library = DilemmaLibrary::builtin();
        assert!(
            library.templates.len() >= 60,
            "{} templates",
            library.templates.len()
        );
        for tier in Tier::ALL {
            let n = library.templates.iter().filter(|t| t.tier == tier).count();
            assert!(n >= 20, "{n} templates in tier {tier}");
        }
        let domains: BTreeSet<&str> = library
            .templates
            .iter()
            .map(|t| t.domain.as_str())
            .collect();
        assert!(domains.len() >= 8, "{domains:?}");
        for t in &library.templates {
            assert!(
                t.capacity() >= 9,
                "template `{}` can make only {} texts",
                t.id,
                t.capacity()
            );
        }
    }

    #[test]
    fn fills_placeholders_in_order() {
        let lib = DilemmaLibrary::parse(
            "version: 1\nslots: {who: [a, b]}\ntemplates:\n  - {id: t, tier: everyday, domain: d, text: '{who} and {what}, {who}.', slots: {what: [x, y, z]}}\n",
        )
        .unwrap();
        let t = &lib.templates[0];
        assert_eq!(t.capacity(), 6);
        assert_eq!(t.fill(&[1, 2]), "b and z, b.");
    }

    #[test]
    fn rejects_undefined_placeholders_and_unknown_fields() {
        let err = DilemmaLibrary::parse(
            "version: 1\ntemplates:\n  - {id: t, tier: everyday, domain: d, text: '{nope}'}\n",
        )
        .unwrap_err();
        assert!(err.contains("no vocabulary"), "{err}");
        let err = DilemmaLibrary::parse(
            "version: 1\ntemplates:\n  - {id: t, tier: everyday, domain: d, text: x, extra: 1}\n",
        )
        .unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = DilemmaLibrary::parse(
            "version: 1\ntemplates:\n  - {id: t, tier: weekly, domain: d, text: x}\n",
        )
        .unwrap_err();
        assert!(err.contains("weekly"), "{err}");
    }
}
