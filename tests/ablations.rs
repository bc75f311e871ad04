//! Ablation axes: variants named `axis=value`, run together with shared stages computed
//! once, one at a time with `--variant`, and shown by `status`, `dag` and `validate`.

mod common;

use common::Workspace;

fn spec(model: &str) -> String {
    format!(
        "version: 1\nname: ablate\nseed: 5\nmodels:\n  policy:\n    source: {model}\nstages:\n  \
         dilemmas:\n    kind: prompt_synthesis\n    with: {{count: 2}}\n  \
         pairs:\n    kind: persona_pairing\n    needs: [dilemmas]\n  \
         dialogues:\n    kind: rollout\n    needs: [pairs]\n    with: {{model: policy, group_size: 1, \
         max_turns: 2, max_new_tokens: 4, agreement: marker}}\n\
         ablations:\n  temperature: {{stages.dialogues.with.temperature: [0.7, 1.0]}}\n  seeds: [1, 2]\n"
    )
}

const VARIANTS: [&str; 4] = [
    "temperature=0.7,seed=1",
    "temperature=0.7,seed=2",
    "temperature=1.0,seed=1",
    "temperature=1.0,seed=2",
];

#[test]
fn variants_share_what_they_do_not_change() {
    let ws = Workspace::new();
    let model = common::tiny_long_context(&ws);
    ws.write("spec.yaml", &spec(&model));

    let out = ws.accord(&["validate", "spec.yaml"]);
    assert_eq!(
        out.stdout, "`spec.yaml` is valid: 3 stages, 4 variants\n",
        "{}",
        out.stderr
    );
    let out = ws.accord(&["dag", "spec.yaml"]);
    assert!(out.stdout.contains("variants (4):"), "{}", out.stdout);
    assert!(
        out.stdout.contains(
            "temperature=1.0,seed=2  stages.dialogues.with.temperature=1.0, seed 2 for the stages that sample"
        ),
        "{}",
        out.stdout
    );

    // The data stages do not depend on the axes: the first variant computes them, the
    // other three find them in the store.
    let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        vec![
            "temperature=0.7,seed=1: 3 ran, 0 cached",
            "temperature=0.7,seed=2: 1 ran, 2 cached",
            "temperature=1.0,seed=1: 1 ran, 2 cached",
            "temperature=1.0,seed=2: 1 ran, 2 cached",
            "6 ran, 6 cached over 4 variants",
        ]
    );
    for name in VARIANTS {
        assert!(
            out.stderr.contains(&format!("variant {name}")),
            "{}",
            out.stderr
        );
    }

    let out = ws.accord(&["status", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.matches("fresh").count(), 12, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("variant temperature=1.0,seed=2\n  dilemmas"),
        "{}",
        out.stdout
    );
    let out = ws.accord(&["status", "spec.yaml", "--backend", "flex", "--json"]);
    let states: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(states.as_array().unwrap().len(), 12);
    assert_eq!(states[11]["variant"], VARIANTS[3]);

    // One variant alone: everything is there already.
    let one = [
        "run",
        "spec.yaml",
        "--backend",
        "flex",
        "--variant",
        VARIANTS[2],
    ];
    let out = ws.accord(&one);
    assert_eq!(out.stdout, "0 ran, 3 cached\n", "{}", out.stderr);

    // Different seeds give different dialogues; the dilemmas are the same.
    let path = |variant: &str, stage: &str| {
        let out = ws.accord(&[
            "show",
            "spec.yaml",
            stage,
            "--path",
            "--backend",
            "flex",
            "--variant",
            variant,
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stdout.trim().to_string()
    };
    assert_eq!(path(VARIANTS[0], "dilemmas"), path(VARIANTS[3], "dilemmas"));
    assert_ne!(
        path(VARIANTS[0], "dialogues"),
        path(VARIANTS[1], "dialogues")
    );

    // A command on one artifact needs a variant; an unknown one lists them.
    let out = ws.accord(&["show", "spec.yaml", "dialogues"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .contains("has 4 variants; pick one with `--variant`"),
        "{}",
        out.stderr
    );
    let out = ws.accord(&["run", "spec.yaml", "--variant", "temperature=0.5"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .contains("has no variant `temperature=0.5`; its variants: temperature=0.7,seed=1,"),
        "{}",
        out.stderr
    );
}

/// A value that does not fit its field is an error naming the variant.
#[test]
fn a_bad_ablation_value_names_its_variant() {
    let ws = Workspace::new();
    ws.write(
        "spec.yaml",
        &spec("path:tiny").replace("[0.7, 1.0]", "[0.7, hot]"),
    );
    let out = ws.accord(&["validate", "spec.yaml"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("in variant `temperature=hot,seed=1`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("temperature"), "{}", out.stderr);
}

/// `accord compare` puts every variant's evaluation side by side, with the setting that
/// tells them apart, and paired differences against a baseline variant in every format.
#[test]
fn compare_shows_variants_with_intervals_and_paired_differences() {
    let ws = Workspace::new();
    let model = common::tiny_long_context(&ws);
    let text = format!(
        "version: 1\nname: compared\nseed: 2\nmodels:\n  base:\n    source: {model}\nstages:\n  \
         heldout_dilemmas:\n    kind: prompt_synthesis\n    with: {{count: 3, split: heldout}}\n  \
         heldout:\n    kind: persona_pairing\n    needs: [heldout_dilemmas]\n  \
         eval:\n    kind: evaluate\n    needs: [heldout]\n    with: {{models: [base], baseline: base, judge: base, \
         suites: [collective_agency], repeats: 2, items: 3, max_new_tokens: 6, resamples: 200}}\n\
         ablations:\n  temperature: {{stages.eval.with.temperature: [0.5, 1.0]}}\n"
    );
    ws.write("spec.yaml", &text);
    let out = ws.accord(&["compare", "spec.yaml", "--backend", "flex"]);
    assert_ne!(out.code, 0, "nothing evaluated yet");
    assert!(
        out.stderr.contains("no finished `evaluate` stage"),
        "{}",
        out.stderr
    );
    let run = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    let base = "temperature=0.5";
    let args = |format: &'static str| {
        vec![
            "compare",
            "spec.yaml",
            "--backend",
            "flex",
            "--baseline",
            base,
            "--format",
            format,
        ]
    };
    let out = ws.accord(&args("table"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    for needle in ["temperature", "ca_score", "95% CI", "Δ vs temperature=0.5"] {
        assert!(out.stdout.contains(needle), "{needle}: {}", out.stdout);
    }
    let out = ws.accord(&args("markdown"));
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("| temperature | model | metric | mean | ± sd | 95% CI | n |"),
        "{}",
        out.stdout
    );
    assert_eq!(
        lines.len(),
        2 + 2,
        "a header, a rule and one row per variant: {}",
        out.stdout
    );
    assert!(
        lines[2].ends_with("| - |"),
        "the baseline has no difference: {}",
        lines[2]
    );
    let out = ws.accord(&args("csv"));
    // The same comparison from the two runs' records: `accord compare RUN RUN`.
    let mut runs: Vec<String> = std::fs::read_dir(ws.path().join(".accord/runs"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".json")
                .to_string()
        })
        .collect();
    runs.sort();
    assert_eq!(runs.len(), 2, "one record per variant");
    let by_runs = ws.accord(&[
        "compare",
        &runs[0],
        &runs[1][..22],
        "--baseline",
        base,
        "--format",
        "csv",
    ]);
    assert_eq!(by_runs.code, 0, "{}", by_runs.stderr);
    assert_eq!(
        by_runs.stdout, out.stdout,
        "runs compare as their spec does"
    );
    let unknown = ws.accord(&["compare", "20990101T000000"]);
    assert!(
        unknown
            .stderr
            .contains("is neither a spec file nor a run in the store"),
        "{}",
        unknown.stderr
    );
    assert!(out.stdout.starts_with("variant,temperature,stage,model,suite,metric,mean,std_dev,ci_low,ci_high,items,repeats,delta,delta_low,delta_high,significant\n"), "{}", out.stdout);
    let out = ws.accord(&args("json"));
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let rows = json["metrics"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["variant"], "temperature=1.0");
    assert_eq!(rows[1]["items"], 6, "3 dilemmas and 3 questions");
    let delta = &rows[1]["delta"];
    assert!(delta["ci"]["low"].as_f64().unwrap() <= delta["mean"].as_f64().unwrap());
    assert_eq!(delta["items"], 6);
    // Each interval is the one the stage printed and stored, at its own `resamples: 200`.
    for row in rows {
        let variant = row["variant"].as_str().unwrap();
        let out = ws.accord(&[
            "show",
            "spec.yaml",
            "eval",
            "--path",
            "--backend",
            "flex",
            "--variant",
            variant,
        ]);
        let stored =
            common::parquet_metadata(&ws.path().join(out.stdout.trim()), "accord.evaluation")
                .unwrap();
        let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(stored[0]["metric"], row["metric"]);
        assert_eq!(stored[0]["ci"], row["ci"], "{variant}");
    }
    let out = ws.accord(&["compare", "spec.yaml", "--resamples", "0"]);
    assert_eq!(out.code, 2, "{}", out.stderr);

    let out = ws.accord(&[
        "compare",
        "spec.yaml",
        "--backend",
        "flex",
        "--baseline",
        "temperature=9",
    ]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .contains("is neither an evaluated variant nor an evaluated model"),
        "{}",
        out.stderr
    );
}

/// `pipelines/ablations.yaml` runs as shipped, shrunk with `--set` and on the tiny model:
/// one variant (three agents) trains both models and compares them with the base.
#[test]
fn the_shipped_ablation_spec_runs() {
    let ws = Workspace::new();
    let model = common::tiny_long_context(&ws);
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/ablations.yaml");
    ws.write("ablations.yaml", &std::fs::read_to_string(spec).unwrap());
    let mut args: Vec<String> = [
        "run",
        "ablations.yaml",
        "--backend",
        "flex",
        "--variant",
        "setting=three_agents,seed=1",
    ]
    .map(String::from)
    .to_vec();
    let sets = [
        format!("models.policy.source={model}"),
        "models.policy.sha256=null".into(),
        "stages.dilemmas.with.count=6".into(),
        "stages.heldout_dilemmas.with.count=2".into(),
        "stages.self_play.with={policy: policy, judge: policy, steps: 1, batch_prompts: 1, group_size: 2, max_turns: 3, max_new_tokens: 4, agreement: marker, parties: 3}".into(),
        "stages.single_agent.with={policy: policy, judge: policy, mode: single_agent, steps: 1, batch_prompts: 1, group_size: 2, max_new_tokens: 4}".into(),
        "stages.eval.with={models: [self_play_trained, single_agent_trained], baseline: policy, judge: policy, repeats: 1, items: 1, max_turns: 2, max_new_tokens: 4, agreement: marker, suites: [collective_agency, conflict_resolution]}".into(),
    ];
    for set in &sets {
        args.push("--set".into());
        args.push(set.clone());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ws.accord(&refs);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "7 ran, 0 cached\n", "{}", out.stderr);
    let mut compare: Vec<&str> = vec![
        "compare",
        "ablations.yaml",
        "--backend",
        "flex",
        "--variant",
        "setting=three_agents,seed=1",
        "--baseline",
        "policy",
        "--format",
        "csv",
    ];
    compare.extend(refs[6..].iter().copied());
    let out = ws.accord(&compare);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for model in ["self_play_trained", "single_agent_trained"] {
        assert!(
            out.stdout
                .contains(&format!(",eval,{model},collective_agency,ca_score,")),
            "{}",
            out.stdout
        );
    }
}

/// A value holding `,` or `"` is quoted in its variant's name, so `--variant` picks
/// exactly the variant `validate` and `dag` name, and `status` reads it back.
#[test]
fn variant_names_quote_values_that_hold_separators() {
    let ws = Workspace::new();
    ws.write(
        "spec.yaml",
        "version: 1\nname: quoted\nstages:\n  dilemmas:\n    kind: prompt_synthesis\n    with: {count: 2}\n\
         ablations:\n  tiers: {stages.dilemmas.with.tiers: [[everyday], [professional, everyday]]}\n",
    );
    let names = [
        r#"tiers="[\"everyday\"]""#,
        r#"tiers="[\"professional\",\"everyday\"]""#,
    ];
    let out = ws.accord(&["dag", "spec.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for name in names {
        assert!(out.stdout.contains(name), "{name} in {}", out.stdout);
    }
    let out = ws.accord(&["run", "spec.yaml", "--variant", names[1]]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = ws.accord(&["status", "spec.yaml", "--json"]);
    let states: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let fresh: Vec<(&str, &str)> = states
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["variant"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(fresh, [(names[0], "missing"), (names[1], "fresh")]);
}
