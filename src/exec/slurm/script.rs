//! The batch script of a job: `accord run … --stage NAME` for the job's stage, with the
//! spec, store, overrides and variant of the run that submitted it, quoted for `sh`.

use std::path::{Path, PathBuf};

use super::job::Job;
use crate::store::Store;

/// Quotes `word` for a POSIX shell.
fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

pub(super) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The batch script computing `job`'s stage.
pub(super) fn script(plan_file: &Path, store: &Store, overrides: &[String], job: &Job) -> String {
    let accord = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("accord"));
    let mut words = vec![
        accord.display().to_string(),
        "--store".into(),
        absolute(store.root()).display().to_string(),
        "run".into(),
        absolute(plan_file).display().to_string(),
    ];
    for set in overrides {
        words.push("--set".into());
        words.push(set.clone());
    }
    if let Some(Some(variant)) = job.variants.first() {
        words.push("--variant".into());
        words.push(variant.clone());
    }
    words.extend([
        "--stage".into(),
        job.stage.clone(),
        "--identity".into(),
        job.identity.clone(),
        "--executor".into(),
        "local".into(),
        "--jobs".into(),
        "1".into(),
    ]);
    let command: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
    format!(
        "#!/bin/sh\n\
         # Stage `{}`, written by `accord run --executor slurm`.\n\
         if [ -n \"${{SLURM_CPUS_PER_TASK:-}}\" ]; then export RAYON_NUM_THREADS=$SLURM_CPUS_PER_TASK; fi\n\
         exec {}\n",
        job.stage,
        command.join(" ")
    )
}
