//! Ablation axes expanded into named variants.
//!
//! Each axis lists values; paths within one axis are zipped (`{a.lr: [1, 2], a.warmup:
//! [0, 5]}` gives two settings, not four) and axes are crossed, first axis outermost. A
//! variant is a list of `path=value` overrides, applied like `--set`, plus an optional seed
//! for the stages that sample from a model (the `seeds` axis); its name is `axis=value`
//! pairs joined by commas, e.g. `kl_beta=0.04,seed=2`, where the value is the axis's first
//! path's, or the axis's `name` list's when it has one (one-at-a-time ablations zip several
//! paths in one axis and name each setting). This module only names and lists; loading a
//! variant is loading the spec with its overrides.

use serde_json::Value;

use super::path::FieldPath;
use super::{AblationAxis, Spec};

/// The axis whose values are seeds.
pub const SEEDS_AXIS: &str = "seeds";

/// A key of an axis that names its settings instead of setting a field
/// (`{name: [paper, no_kl], stages.train.with.kl_beta: [0.0, 0.04]}`).
pub const NAME_KEY: &str = "name";

/// One point of the ablation grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// `axis=value` pairs joined by commas.
    pub name: String,
    /// `path=value` overrides, the value as YAML (JSON).
    pub overrides: Vec<String>,
    /// Where each override's value is written in the spec (`ablations.AXIS.PATH[i]`), so
    /// that an error about it points there.
    pub written_at: Vec<FieldPath>,
    /// The root seed of the stages that sample from a model, when the `seeds` axis sets it.
    pub seed: Option<u64>,
}

/// How a value reads in a variant name: strings bare, everything else as JSON.
pub fn label(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The variants of `spec`, in grid order; none when it has no ablation axes.
pub fn variants(spec: &Spec) -> Vec<Variant> {
    if spec.ablations.is_empty() {
        return Vec::new();
    }
    let mut grid = vec![Variant {
        name: String::new(),
        overrides: Vec::new(),
        written_at: Vec::new(),
        seed: None,
    }];
    for (axis, values) in &spec.ablations {
        // Each setting of this axis: its label, overrides (with where each value is
        // written) and seed.
        type Setting = (String, Vec<(String, FieldPath)>, Option<u64>);
        let settings: Vec<Setting> = match values {
            AblationAxis::Values(seeds) => seeds
                .iter()
                .map(|s| {
                    let name = if axis == SEEDS_AXIS { "seed" } else { axis };
                    (format!("{name}={}", label(s)), Vec::new(), s.as_u64())
                })
                .collect(),
            AblationAxis::Fields(fields) => {
                let count = fields.values().map(Vec::len).min().unwrap_or(0);
                (0..count)
                    .map(|i| {
                        let first = fields
                            .get(NAME_KEY)
                            .or_else(|| fields.values().next())
                            .map(|v| label(&v[i]));
                        let overrides = fields
                            .iter()
                            .filter(|(path, _)| path.as_str() != NAME_KEY)
                            .map(|(path, values)| {
                                let at = FieldPath::root()
                                    .key("ablations")
                                    .key(axis.clone())
                                    .key(path.clone())
                                    .index(i);
                                (format!("{path}={}", values[i]), at)
                            })
                            .collect();
                        (
                            format!("{axis}={}", first.unwrap_or_default()),
                            overrides,
                            None,
                        )
                    })
                    .collect()
            }
        };
        grid = grid
            .iter()
            .flat_map(|variant| {
                settings.iter().map(move |(name, overrides, seed)| Variant {
                    name: if variant.name.is_empty() {
                        name.clone()
                    } else {
                        format!("{},{name}", variant.name)
                    },
                    overrides: variant
                        .overrides
                        .iter()
                        .chain(overrides.iter().map(|(o, _)| o))
                        .cloned()
                        .collect(),
                    written_at: variant
                        .written_at
                        .iter()
                        .chain(overrides.iter().map(|(_, at)| at))
                        .cloned()
                        .collect(),
                    seed: seed.or(variant.seed),
                })
            })
            .collect();
    }
    grid
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ablations: &str) -> Spec {
        let text = format!("version: 1\nname: x\nstages: {{}}\nablations:\n{ablations}");
        serde_yaml::from_str(&text).unwrap()
    }

    /// Zipped paths within an axis, crossed axes, seeds last: names and overrides.
    #[test]
    fn axes_cross_and_paths_zip() {
        let spec = spec(
            "  kl: {stages.t.with.kl_beta: [0.0, 0.04], stages.t.with.lr: [1.0e-5, 2.0e-5]}\n  \
             mode: {stages.t.with.mode: [self_play, single_agent]}\n  seeds: [1, 2]\n",
        );
        let all = variants(&spec);
        assert_eq!(all.len(), 8);
        assert_eq!(all[0].name, "kl=0.0,mode=self_play,seed=1");
        assert_eq!(
            all[0].overrides,
            vec![
                "stages.t.with.kl_beta=0.0",
                "stages.t.with.lr=0.00001",
                "stages.t.with.mode=\"self_play\""
            ]
        );
        assert_eq!(all[0].seed, Some(1));
        assert_eq!(
            all[0].written_at[2].to_string(),
            "ablations.mode.stages.t.with.mode[0]"
        );
        assert_eq!(all[7].name, "kl=0.04,mode=single_agent,seed=2");
        let named = variants(&self::spec(
            "  setting: {name: [paper, no_kl], stages.t.with.kl_beta: [0.0, 0.04]}\n",
        ));
        assert_eq!(named[1].name, "setting=no_kl");
        assert_eq!(named[1].overrides, vec!["stages.t.with.kl_beta=0.04"]);
        assert_eq!(all[7].overrides[1], "stages.t.with.lr=0.00002");
    }
}
