//! What a stage's cluster job asks for (`resources:` in a spec, `executor: slurm`).
//!
//! Resources are not part of any stage key: the same stage computed on a laptop or on a
//! cluster node is the same artifact. They are layered: the stage's own `resources`, then
//! the spec's top-level `resources`, then the defaults of the stage's kind
//! ([`super::Stage::cluster_resources`]). Values Slurm would refuse are found here, so the
//! spec checker can point at them before anything is submitted.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a stage's cluster job asks for; unset fields fall back to the spec's top-level
/// `resources`, then to the stage kind's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// GPUs (`--gres=gpu:N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// CPU cores (`--cpus-per-task`); also the stage's `--jobs` and thread count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Memory, as Slurm spells it: `16G`, `512M`, `64000` (megabytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<String>,
    /// Wall-clock limit, as Slurm spells it: `30` (minutes), `4:00:00`, `2-00:00:00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// The partition (queue) to submit to; the cluster's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// More `sbatch` arguments, passed as written (e.g. `--account=lab`, `--qos=high`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<String>,
}

impl Resources {
    /// `self`, with its unset fields taken from `fallback`.
    pub fn or(&self, fallback: &Resources) -> Resources {
        Resources {
            gpus: self.gpus.or(fallback.gpus),
            cpus: self.cpus.or(fallback.cpus),
            mem: self.mem.clone().or_else(|| fallback.mem.clone()),
            time: self.time.clone().or_else(|| fallback.time.clone()),
            partition: self
                .partition
                .clone()
                .or_else(|| fallback.partition.clone()),
            extra: if self.extra.is_empty() {
                fallback.extra.clone()
            } else {
                self.extra.clone()
            },
        }
    }

    /// The `sbatch` arguments asking for these resources.
    pub fn sbatch_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(gpus) = self.gpus.filter(|g| *g > 0) {
            args.push(format!("--gres=gpu:{gpus}"));
        }
        if let Some(cpus) = self.cpus {
            args.push(format!("--cpus-per-task={cpus}"));
        }
        if let Some(mem) = &self.mem {
            args.push(format!("--mem={mem}"));
        }
        if let Some(time) = &self.time {
            args.push(format!("--time={time}"));
        }
        if let Some(partition) = &self.partition {
            args.push(format!("--partition={partition}"));
        }
        args.extend(self.extra.iter().cloned());
        args
    }

    /// The fields whose values Slurm would refuse: (field, message, expected).
    pub fn problems(&self) -> Vec<(&'static str, String, &'static str)> {
        let mut out = Vec::new();
        if let Some(mem) = &self.mem
            && !valid_mem(mem)
        {
            out.push((
                "mem",
                format!("`{mem}` is not a memory size"),
                "a number of megabytes, or a number with K, M, G or T (e.g. `16G`)",
            ));
        }
        if let Some(time) = &self.time
            && !valid_time(time)
        {
            out.push((
                "time",
                format!("`{time}` is not a Slurm time limit"),
                "minutes, `H:MM:SS` or `D-HH:MM:SS` (e.g. `4:00:00`)",
            ));
        }
        if self.cpus == Some(0) {
            out.push((
                "cpus",
                "a job needs at least one CPU".into(),
                "a whole number of at least 1",
            ));
        }
        out
    }
}

fn valid_mem(mem: &str) -> bool {
    let digits = mem.trim_end_matches(['K', 'M', 'G', 'T']);
    mem.len() - digits.len() <= 1
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Slurm's formats: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`.
fn valid_time(time: &str) -> bool {
    let numbers = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (days, rest) = match time.split_once('-') {
        Some((d, rest)) => (Some(d), rest),
        None => (None, time),
    };
    if days.is_some_and(|d| !numbers(d)) {
        return false;
    }
    let parts: Vec<&str> = rest.split(':').collect();
    parts.iter().all(|p| numbers(p)) && (1..=3).contains(&parts.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_spellings_are_accepted_and_others_refused() {
        for ok in ["16G", "512M", "64000", "1T"] {
            assert!(valid_mem(ok), "{ok}");
        }
        for bad in ["16GB", "G", "", "1.5G", "-1"] {
            assert!(!valid_mem(bad), "{bad}");
        }
        for ok in ["30", "4:00:00", "2-00:00:00", "1-12", "10:00"] {
            assert!(valid_time(ok), "{ok}");
        }
        for bad in ["", "4h", "1-", "-1", "1:2:3:4", "a:00"] {
            assert!(!valid_time(bad), "{bad}");
        }
    }

    #[test]
    fn a_stage_overrides_the_spec_which_overrides_the_kind() {
        let kind = Resources {
            gpus: Some(1),
            cpus: Some(8),
            mem: Some("64G".into()),
            ..Default::default()
        };
        let spec = Resources {
            partition: Some("gpu".into()),
            cpus: Some(4),
            ..Default::default()
        };
        let stage = Resources {
            gpus: Some(0),
            ..Default::default()
        };
        let merged = stage.or(&spec).or(&kind);
        assert_eq!(
            merged.sbatch_args(),
            ["--cpus-per-task=4", "--mem=64G", "--partition=gpu"]
        );
    }
}
