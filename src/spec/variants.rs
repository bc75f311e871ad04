//! Ablation axes expanded into named variants.
//!
//! Each axis lists values; paths within one axis are zipped (`{a.lr: [1, 2], a.warmup:
//! [0, 5]}` gives two settings, not four) and axes are crossed, first axis outermost. A
//! variant is a list of `path=value` overrides, applied like `--set`, plus an optional seed
//! for the stages that sample from a model (the `seeds` axis); its name is `axis=value`
//! pairs joined by commas, e.g. `kl_beta=0.04,seed=2`, where the value is the axis's first
//! path's, or the axis's `name` list's when it has one (one-at-a-time ablations zip several
//! paths in one axis and name each setting). A value that holds `,`, `=` or `"` (or is
//! empty, or starts or ends with a space) is written as a JSON string, `prompt="a, b"`, so
//! that a name reads back into its settings one way only ([`settings_of`]); the checker
//! makes sure axis names need no quoting and that no two settings of an axis are the
//! same. This module only names and lists; loading a variant is loading the spec with its
//! overrides.

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

/// How a value reads in a variant name: strings bare, everything else as JSON, and quoted
/// as a JSON string when it holds a character that separates settings.
pub fn label(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.is_empty() || text.contains([',', '=', '"']) || text.trim() != text {
        Value::String(text).to_string()
    } else {
        text
    }
}

/// Whether `name` can be an axis's name in variant names without quoting.
pub fn is_axis_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The `axis=value` settings of a variant name, in order, values unquoted: the inverse
/// of how [`variants`] writes names. A part that is not `axis=value` is left out.
pub fn settings_of(name: &str) -> Vec<(String, String)> {
    let mut settings = Vec::new();
    let mut rest = name;
    while !rest.is_empty() {
        let Some((axis, after)) = rest.split_once('=') else {
            break;
        };
        let (value, after) = match after.strip_prefix('"') {
            // A quoted value runs to the first unescaped `"`.
            Some(quoted) => {
                let mut end = None;
                let mut escaped = false;
                for (i, c) in quoted.char_indices() {
                    match c {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        '"' => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let Some(end) = end else { break };
                let json = &after[..end + 2];
                let value = serde_json::from_str::<String>(json).unwrap_or_else(|_| json.into());
                (value, &quoted[end + 1..])
            }
            None => {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].to_string(), &after[end..])
            }
        };
        settings.push((axis.to_string(), value));
        rest = after.strip_prefix(',').unwrap_or(after);
    }
    settings
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

    /// Values holding `,`, `=` or `"` are quoted, so names that would read alike differ,
    /// and every name reads back into the settings it was written from.
    #[test]
    fn names_quote_separators_and_read_back() {
        let all = variants(&spec(
            "  a: {stages.t.with.x: [\"1,b=2\", \"1\", \"say \\\"hi\\\"\", \"\"]}\n  \
             b: {stages.t.with.y: [\"3\", \"2,b=3\"]}\n",
        ));
        let names: Vec<&str> = all.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                r#"a="1,b=2",b=3"#,
                r#"a="1,b=2",b="2,b=3""#,
                "a=1,b=3",
                r#"a=1,b="2,b=3""#,
                r#"a="say \"hi\"",b=3"#,
                r#"a="say \"hi\"",b="2,b=3""#,
                r#"a="",b=3"#,
                r#"a="",b="2,b=3""#,
            ]
        );
        assert_eq!(
            settings_of(names[1]),
            [
                ("a".to_string(), "1,b=2".to_string()),
                ("b".to_string(), "2,b=3".to_string())
            ]
        );
        assert_eq!(settings_of(names[4])[0].1, r#"say "hi""#);
        assert_eq!(settings_of(names[6])[0].1, "");
        assert_eq!(
            settings_of("kl=0.04,seed=2"),
            [
                ("kl".to_string(), "0.04".to_string()),
                ("seed".to_string(), "2".to_string())
            ]
        );
    }
}
