//! `executor: slurm` against a real Slurm cluster (`scripts/slurm-local.sh` starts a
//! one-node one; `.ci/run` does, and sets `ACCORD_REQUIRE_SLURM=1` so that a missing
//! cluster fails these tests instead of skipping them).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Stdio};

use common::{Workspace, accord_bin};

/// Three stages, one of them in two variants: four jobs, one shared by both variants.
const SPEC: &str = "\
version: 1
name: on-slurm
seed: 3
executor: slurm
resources:
  mem: 1G
  time: '10:00'
stages:
  dilemmas:
    kind: prompt_synthesis
    with:
      count: 6
  pairs:
    kind: persona_pairing
    needs: [dilemmas]
    with:
      pairs_per_dilemma: 1
  more_pairs:
    kind: persona_pairing
    needs: [dilemmas]
    resources:
      cpus: 1
    with:
      pairs_per_dilemma: 2
ablations:
  strategy:
    stages.pairs.with.strategy: [max_conflict, random]
";

/// Whether a Slurm cluster answers; panics instead when CI requires one.
fn slurm_available() -> bool {
    let up = std::process::Command::new("sinfo")
        .args(["--noheader", "--format=%t"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !up && std::env::var_os("ACCORD_REQUIRE_SLURM").is_some() {
        panic!("no Slurm cluster answers `sinfo`; start one with scripts/slurm-local.sh");
    }
    if !up {
        eprintln!("skipped: no Slurm cluster (scripts/slurm-local.sh starts one)");
    }
    up
}

fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write("spec.yaml", SPEC);
    ws
}

fn accord(ws: &Workspace, args: &[&str]) -> common::Output {
    let mut cmd = ws.command(&accord_bin(), args);
    cmd.env("ACCORD_SLURM_POLL_SECS", "0.5");
    common::run(cmd)
}

/// Starts `accord ARGS` with piped output; returns it and its stdout.
fn spawn(ws: &Workspace, args: &[&str]) -> (Child, BufReader<ChildStdout>) {
    let mut child = ws
        .command(&accord_bin(), args)
        .env("ACCORD_SLURM_POLL_SECS", "0.5")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (child, stdout)
}

/// How many stages (over all variants) `accord status` calls fresh.
fn fresh(ws: &Workspace) -> usize {
    let status = accord(ws, &["status", "spec.yaml"]);
    status.stdout.matches("fresh").count()
}

/// `(stage label, job id)` for every `submitted job` line.
fn submitted(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(": submitted job "))
        .map(|(stage, id)| (stage.to_string(), id.to_string()))
        .collect()
}

#[test]
fn variants_run_as_dependent_jobs_and_a_rerun_submits_nothing() {
    if !slurm_available() {
        return;
    }
    let ws = workspace();
    let out = accord(&ws, &["run", "spec.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let jobs = submitted(&out.stdout);
    let stages: Vec<&str> = jobs.iter().map(|(s, _)| s.as_str()).collect();
    // The shared stages are one job each; `pairs` differs between the variants.
    assert_eq!(
        stages,
        [
            "dilemmas",
            "pairs [strategy=max_conflict]",
            "more_pairs",
            "pairs [strategy=random]"
        ],
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.ends_with(
            "strategy=max_conflict: 3 ran, 0 cached\nstrategy=random: 1 ran, 2 cached\n\
             4 ran, 2 cached over 2 variants\n"
        ),
        "{}",
        out.stdout
    );
    for (stage, id) in &jobs {
        assert!(
            out.stderr.contains(&format!("{stage}: ran in ")) && out.stderr.contains(id),
            "{}",
            out.stderr
        );
    }
    // Each job's script runs `accord` for its one stage, with the spec's resources.
    let scripts = ws.path().join(".accord/slurm/scripts");
    let script = std::fs::read_dir(&scripts)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("more_pairs-"))
        .unwrap();
    let text = std::fs::read_to_string(script.path()).unwrap();
    assert!(
        text.contains("--stage more_pairs --identity ") && text.contains("--executor local"),
        "{text}"
    );

    assert_eq!(fresh(&ws), 6);
    // The run recorded every variant whole, so garbage collection keeps all of it.
    let gc = accord(&ws, &["gc", "--dry-run"]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    assert!(!gc.stdout.contains("would remove `"), "{}", gc.stdout);
    let again = accord(&ws, &["run", "spec.yaml"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(submitted(&again.stdout).is_empty(), "{}", again.stdout);
    assert!(again.stdout.ends_with("0 ran, 6 cached over 2 variants\n"));
}

#[test]
fn a_killed_job_is_reported_and_a_rerun_completes_only_it() {
    if !slurm_available() {
        return;
    }
    let ws = workspace();
    let mut child = ws
        .command(
            &accord_bin(),
            &["run", "spec.yaml", "--on-error", "keep-going"],
        )
        .env("ACCORD_SLURM_POLL_SECS", "0.5")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Cancel `more_pairs` as soon as it is submitted: it waits for `dilemmas`, so it is
    // still queued.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let mut victim = None;
    while victim.is_none() {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "{seen}");
        seen.push_str(&line);
        if let Some(id) = line.trim().strip_prefix("more_pairs: submitted job ") {
            victim = Some(id.to_string());
        }
    }
    let victim = victim.unwrap();
    let cancelled = std::process::Command::new("scancel")
        .arg(&victim)
        .status()
        .unwrap();
    assert!(cancelled.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let exit = child.wait().unwrap();
    seen.push_str(&rest);
    assert_eq!(exit.code(), Some(1), "{seen}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "stage `more_pairs` failed: job {victim} ended CANCELLED"
        )),
        "{stderr}"
    );
    assert!(
        seen.contains("strategy=max_conflict: 2 ran, 0 cached, 1 failed"),
        "{seen}"
    );

    assert_eq!(fresh(&ws), 4);
    let rerun = accord(&ws, &["run", "spec.yaml"]);
    assert_eq!(rerun.code, 0, "{}\n{}", rerun.stdout, rerun.stderr);
    let jobs = submitted(&rerun.stdout);
    assert_eq!(jobs.len(), 1, "{}", rerun.stdout);
    assert_eq!(jobs[0].0, "more_pairs");
    assert!(
        rerun.stdout.ends_with(
            "strategy=max_conflict: 1 ran, 2 cached\nstrategy=random: 0 ran, 3 cached\n\
             1 ran, 5 cached over 2 variants\n"
        ),
        "{}",
        rerun.stdout
    );
}

#[test]
fn ctrl_c_cancels_the_submitted_jobs() {
    if !slurm_available() {
        return;
    }
    let ws = workspace();
    let (mut child, mut stdout) = spawn(&ws, &["run", "spec.yaml"]);
    let mut ids = Vec::new();
    while ids.len() < 4 {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0);
        if let Some((_, id)) = line.trim().split_once(": submitted job ") {
            ids.push(id.to_string());
        }
    }
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(130), "{stderr}");
    assert!(stderr.contains("Slurm jobs"), "{stderr}");
    // The jobs that had not finished are cancelled, not left in the queue.
    let queue = std::process::Command::new("squeue")
        .args(["--noheader", "--states=all", "--format=%i %T", "--jobs"])
        .arg(ids.join(","))
        .output()
        .unwrap();
    let queue = String::from_utf8_lossy(&queue.stdout);
    assert!(
        !queue.contains("PENDING") && !queue.contains("RUNNING"),
        "{queue}"
    );
    assert!(queue.contains("CANCELLED"), "{queue}");
    assert!(std::fs::read_dir(ws.path().join(".accord/slurm/jobs")).map_or(0, |d| d.count()) == 0);
}

#[test]
fn a_job_refuses_a_stage_that_changed_since_it_was_submitted() {
    // What a job runs; no cluster needed.
    let ws = workspace();
    let out = accord(
        &ws,
        &[
            "run",
            "spec.yaml",
            "--variant",
            "strategy=random",
            "--stage",
            "pairs",
            "--identity",
            "0123",
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("stage `pairs` is not what this job was submitted for"),
        "{}",
        out.stderr
    );
    assert!(ws.entries().is_empty());
}

#[test]
fn a_job_killed_while_running_is_reported_with_its_log_and_a_rerun_redoes_only_it() {
    if !slurm_available() {
        return;
    }
    // `word_count` (examples/custom_kind.rs) takes 100 ms a row: 4 s of running job.
    let ws = Workspace::new();
    ws.write(
        "spec.yaml",
        "version: 1\nname: slow\nstages:\n  dilemmas:\n    kind: prompt_synthesis\n    \
         with: {count: 40}\n  words:\n    kind: word_count\n    needs: [dilemmas]\n    \
         with: {delay_ms: 100}\n",
    );
    let mut child = ws
        .command(
            &common::custom_kind_bin(),
            &["run", "spec.yaml", "--executor", "slurm"],
        )
        .env("ACCORD_SLURM_POLL_SECS", "0.3")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = String::new();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("words: running") {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "{seen}");
        seen.push_str(&line);
    }
    let record = std::fs::read_dir(ws.path().join(".accord/slurm/jobs"))
        .unwrap()
        .flatten()
        .next()
        .expect("the running job's record");
    let job = record
        .file_name()
        .to_string_lossy()
        .trim_end_matches(".json")
        .to_string();
    let killed = std::process::Command::new("scancel")
        .args(["--signal=KILL", "--full", &job])
        .status()
        .unwrap();
    assert!(killed.success());
    std::io::Read::read_to_string(&mut stderr, &mut seen).unwrap();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(1), "{stdout}\n{seen}");
    assert!(
        seen.contains(&format!("stage `words` failed: job {job} ended ")),
        "{seen}"
    );
    // The end of the job's own log comes with it.
    assert!(seen.contains("    words: running"), "{seen}");
    assert!(stdout.ends_with("1 ran, 0 cached, 1 failed\n"), "{stdout}");

    let mut rerun = ws.command(
        &common::custom_kind_bin(),
        &["run", "spec.yaml", "--executor", "slurm"],
    );
    rerun.env("ACCORD_SLURM_POLL_SECS", "0.3");
    let rerun = common::run(rerun);
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    assert_eq!(submitted(&rerun.stdout).len(), 1, "{}", rerun.stdout);
    assert!(
        rerun.stdout.starts_with("words: submitted job "),
        "{}",
        rerun.stdout
    );
    assert!(
        rerun.stdout.ends_with("1 ran, 1 cached\n"),
        "{}",
        rerun.stdout
    );
}

/// A stage the dilemma library cannot supply, one that needs it, and one on its own.
const FAILING: &str = "\
version: 1
name: failing-on-slurm
executor: slurm
resources:
  mem: 1G
  time: '10:00'
stages:
  impossible:
    kind: prompt_synthesis
    with: {count: 100000, tiers: [everyday]}
  pairs:
    kind: persona_pairing
    needs: [impossible]
  fine:
    kind: prompt_synthesis
    with: {count: 5}
";

/// `(stage, state, error)` of each stage in the run record that covers all of them.
fn recorded_outcomes(ws: &Workspace) -> Vec<(String, String, Option<String>)> {
    let mut records: Vec<serde_json::Value> = std::fs::read_dir(ws.path().join(".accord/runs"))
        .unwrap()
        .flatten()
        .map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap())
        .collect();
    // A job's own record covers only its stage and that stage's inputs.
    records.retain(|r| r["stages"].as_array().unwrap().len() == 3);
    assert_eq!(records.len(), 1, "{records:?}");
    records[0]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["state"].as_str().unwrap().to_string(),
                s["error"].as_str().map(String::from),
            )
        })
        .collect()
}

#[test]
fn a_stage_whose_input_job_failed_is_skipped_and_recorded_as_a_local_run_would() {
    if !slurm_available() {
        return;
    }
    let on_slurm = Workspace::new();
    on_slurm.write("spec.yaml", FAILING);
    let out = accord(&on_slurm, &["run", "spec.yaml", "--on-error", "keep-going"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("stage `impossible` failed: job "),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("pairs: skipped: it needs `impossible`, which did not finish"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout
            .ends_with("1 ran, 0 cached, 1 failed, 1 skipped\n"),
        "{}",
        out.stdout
    );

    let here = Workspace::new();
    here.write("spec.yaml", FAILING);
    let local = here.accord(&[
        "run",
        "spec.yaml",
        "--executor",
        "local",
        "--on-error",
        "keep-going",
    ]);
    assert_eq!(local.code, 1, "{}", local.stderr);
    let (slurm, local) = (recorded_outcomes(&on_slurm), recorded_outcomes(&here));
    // Only a failure's error differs: a job's points at its log.
    let without_failures = |outcomes: &[(String, String, Option<String>)]| {
        outcomes
            .iter()
            .map(|(stage, state, error)| {
                let error = error.clone().filter(|_| state != "failed");
                (stage.clone(), state.clone(), error)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(without_failures(&slurm), without_failures(&local));
    let state_of = |stage: &str| {
        let (_, state, error) = slurm.iter().find(|(s, _, _)| s == stage).unwrap();
        (state.as_str(), error.as_deref().unwrap_or(""))
    };
    assert_eq!(
        state_of("pairs"),
        ("skipped", "it needs `impossible`, which did not finish")
    );
    assert_eq!(state_of("impossible").0, "failed");
    assert!(state_of("impossible").1.starts_with("job "), "{slurm:?}");
}
