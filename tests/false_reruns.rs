//! Keys: edits that change nothing re-run nothing; real changes re-run only what they affect.

mod common;

use common::{PIPELINE, Workspace};

fn run(ws: &Workspace, spec: &str) -> String {
    let out = ws.accord(&["run", spec]);
    assert_eq!(out.code, 0, "stderr:\n{}", out.stderr);
    out.stdout.trim().to_string()
}

fn fresh_workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    assert_eq!(run(&ws, "spec.yaml"), "2 ran, 0 cached");
    assert_eq!(run(&ws, "spec.yaml"), "0 ran, 2 cached");
    ws
}

#[test]
fn comment_edit_reruns_nothing() {
    let ws = fresh_workspace();
    ws.write(
        "spec.yaml",
        &PIPELINE.replace(
            "# A test pipeline.",
            "# A test pipeline, now with a longer comment.\n# And another line.",
        ),
    );
    assert_eq!(run(&ws, "spec.yaml"), "0 ran, 2 cached");
}

#[test]
fn reordered_mapping_keys_rerun_nothing() {
    let ws = fresh_workspace();
    let reordered = "\
stages:
  pairs:
    with:
      temperature: 0.00001
      pairs_per_dilemma: 2
    needs: [dilemmas]
    kind: persona_pairing
  dilemmas:
    with:
      tiers: [professional, interpersonal, everyday]
      count: 12
    kind: prompt_synthesis
seed: 7
name: test
version: 1
";
    ws.write("spec.yaml", reordered);
    assert_eq!(run(&ws, "spec.yaml"), "0 ran, 2 cached");
}

#[test]
fn number_spelling_reruns_nothing() {
    let ws = fresh_workspace();
    ws.write(
        "spec.yaml",
        &PIPELINE.replace("temperature: 0.00001", "temperature: 1e-5"),
    );
    assert_eq!(run(&ws, "spec.yaml"), "0 ran, 2 cached");
    ws.write(
        "spec.yaml",
        &PIPELINE.replace("temperature: 0.00001", "temperature: 1.0E-5"),
    );
    assert_eq!(run(&ws, "spec.yaml"), "0 ran, 2 cached");
}

#[test]
fn flow_style_reruns_nothing() {
    let ws = fresh_workspace();
    let flow = "{version: 1, name: test, seed: 7, stages: {dilemmas: {kind: prompt_synthesis, with: {count: 12, tiers: [professional, interpersonal, everyday]}}, pairs: {kind: persona_pairing, needs: [dilemmas], with: {pairs_per_dilemma: 2, temperature: 0.00001}}}}\n";
    ws.write("spec.yaml", flow);
    assert_eq!(run(&ws, "spec.yaml"), "0 ran, 2 cached");
}

#[test]
fn spelling_out_a_default_reruns_nothing() {
    let ws = fresh_workspace();
    ws.write(
        "spec.yaml",
        &PIPELINE.replace(
            "      temperature: 0.00001\n",
            "      temperature: 0.00001\n      strategy: max_conflict\n",
        ),
    );
    assert_eq!(run(&ws, "spec.yaml"), "0 ran, 2 cached");
}

#[test]
fn touching_a_referenced_file_reruns_nothing_but_editing_it_does() {
    let ws = Workspace::new();
    ws.write("personas.yaml", accord::stages::persona_library::BUILTIN);
    let spec = PIPELINE.replace(
        "      temperature: 0.00001\n",
        "      temperature: 0.00001\n      library: personas.yaml\n",
    );
    ws.write("spec.yaml", &spec);
    assert_eq!(run(&ws, "spec.yaml"), "2 ran, 0 cached");
    // A new mtime and the same bytes: the digest memo re-hashes and finds no change.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let file = std::fs::File::options()
        .append(true)
        .open(ws.path().join("personas.yaml"))
        .unwrap();
    file.set_modified(std::time::SystemTime::now()).unwrap();
    drop(file);
    assert_eq!(run(&ws, "spec.yaml"), "0 ran, 2 cached");
    // Different bytes: the pairing re-runs, the dilemmas stay.
    ws.write(
        "personas.yaml",
        &format!("{}\n# an edit\n", accord::stages::persona_library::BUILTIN),
    );
    assert_eq!(run(&ws, "spec.yaml"), "1 ran, 1 cached");
}

#[test]
fn a_real_change_reruns_that_stage_and_its_dependents() {
    let ws = fresh_workspace();
    ws.write("spec.yaml", &PIPELINE.replace("count: 12", "count: 13"));
    assert_eq!(run(&ws, "spec.yaml"), "2 ran, 0 cached");
}

#[test]
fn a_downstream_change_leaves_upstream_cached() {
    let ws = fresh_workspace();
    ws.write(
        "spec.yaml",
        &PIPELINE.replace("pairs_per_dilemma: 2", "pairs_per_dilemma: 3"),
    );
    assert_eq!(run(&ws, "spec.yaml"), "1 ran, 1 cached");
}

#[test]
fn identical_output_keeps_dependents_cached() {
    let ws = fresh_workspace();
    // Listing every domain explicitly changes the parameters but not the output bytes.
    let all = "[community, education, environment, family, finance, healthcare, law, research, technology, workplace]";
    ws.write(
        "spec.yaml",
        &PIPELINE.replace(
            "      count: 12\n",
            &format!("      count: 12\n      domains: {all}\n"),
        ),
    );
    assert_eq!(run(&ws, "spec.yaml"), "1 ran, 1 cached");
}

#[test]
fn set_overrides_are_keyed_like_file_edits() {
    let ws = fresh_workspace();
    let out = ws.accord(&[
        "run",
        "spec.yaml",
        "--set",
        "stages.pairs.with.temperature=1e-5",
    ]);
    assert_eq!(out.stdout.trim(), "0 ran, 2 cached");
    let out = ws.accord(&[
        "run",
        "spec.yaml",
        "--set",
        "stages.pairs.with.pairs_per_dilemma=1",
    ]);
    assert_eq!(out.stdout.trim(), "1 ran, 1 cached");
}

#[test]
fn a_library_file_identical_to_the_built_in_reruns_nothing() {
    let ws = fresh_workspace();
    ws.write("personas.yaml", accord::stages::persona_library::BUILTIN);
    ws.write(
        "spec.yaml",
        &PIPELINE.replace(
            "      temperature: 0.00001\n",
            "      temperature: 0.00001\n      library: personas.yaml\n",
        ),
    );
    assert_eq!(run(&ws, "spec.yaml"), "0 ran, 2 cached");
}

/// A rollout judged in-process by the tiny fixture model; `rollout` and `judge` add
/// their `with` fields.
fn judged(rollout: &str, judge: &str) -> String {
    format!(
        "version: 1\nname: judged\nseed: 3\nmodels:\n  policy:\n    source: path:tiny\nstages:\n  \
         dilemmas:\n    kind: prompt_synthesis\n    with: {{count: 1}}\n  \
         pairs:\n    kind: persona_pairing\n    needs: [dilemmas]\n  \
         dialogues:\n    kind: rollout\n    needs: [pairs]\n    with: {{model: policy, group_size: 1, \
         max_turns: 2, max_new_tokens: 4, agreement: marker{rollout}}}\n  \
         scores:\n    kind: judge\n    needs: [dialogues]\n    with: {{model: policy, rationale_tokens: 0{judge}}}\n"
    )
}

fn keys(ws: &Workspace) -> Vec<String> {
    let out = ws.accord(&["status", "spec.yaml", "--backend", "flex", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let states: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    states
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Request settings of an in-process judge, a default written out (the agreement model
/// a rollout uses anyway) and a rubric file holding the built-in rubric change no key;
/// a spec that writes none of them keeps the keys it had before they were normalised.
#[test]
fn endpoint_settings_and_spelled_defaults_of_an_in_process_judge_rerun_nothing() {
    let ws = Workspace::new();
    common::tiny_long_context(&ws);
    ws.write("spec.yaml", &judged("", ""));
    let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.stdout, "4 ran, 0 cached\n", "{}", out.stderr);
    let before = keys(&ws);
    // As keyed before spelled defaults and endpoint settings were normalised (the
    // rollout's key holds no number a backend computes; the judge's depends on the
    // dialogues' bytes, so its parameters are pinned instead).
    assert_eq!(
        before[2],
        "1beb8ed4645db810a0bb922dcc317347dfc8eeb3318dd1d2de0ad0652958161b"
    );
    let sidecar = ws.path().join(format!(
        ".accord/keys/{}/{}.json",
        &before[3][..2],
        before[3]
    ));
    let parts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sidecar).unwrap()).unwrap();
    assert_eq!(
        parts["params"].to_string(),
        r#"{"attempts":4,"batch_size":16,"concurrency":4,"model":"policy","no_agreement_score":0.0,"rationale_tokens":0,"repeat_sample":32,"repeat_temperature":1.0,"repeats":0,"timeout_s":120.0}"#
    );

    ws.write("rubric.jinja", accord::judge::rubrics::COLLECTIVE_AGENCY);
    ws.write(
        "spec.yaml",
        &judged(
            ", agreement_model: policy",
            ", timeout_s: 5, concurrency: 3, attempts: 9, rubric_file: rubric.jinja",
        ),
    );
    let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.stdout, "0 ran, 4 cached\n", "{}", out.stderr);
    assert_eq!(keys(&ws), before);

    // A rubric of its own is a real change.
    ws.write(
        "rubric.jinja",
        &format!(
            "{}\nBe strict.\n",
            accord::judge::rubrics::COLLECTIVE_AGENCY
        ),
    );
    let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.stdout, "1 ran, 3 cached\n", "{}", out.stderr);
}

/// A model's `chat_template_kwargs` change every prompt it sees: they change the keys of
/// the stages using it, and an empty mapping changes none.
#[test]
fn chat_template_kwargs_change_the_keys_of_stages_using_the_model() {
    let ws = Workspace::new();
    common::tiny_long_context(&ws);
    ws.write("spec.yaml", &judged("", ""));
    let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.stdout, "4 ran, 0 cached\n", "{}", out.stderr);
    let before = keys(&ws);
    let with_kwargs = |kwargs: &str| {
        judged("", "").replace(
            "source: path:tiny\n",
            &format!("source: path:tiny\n    chat_template_kwargs: {kwargs}\n"),
        )
    };
    ws.write("spec.yaml", &with_kwargs("{}"));
    assert_eq!(keys(&ws), before);
    ws.write("spec.yaml", &with_kwargs("{enable_thinking: false}"));
    let after = keys(&ws);
    assert_eq!(after[..2], before[..2], "the data stages use no model");
    assert_ne!(after[2], before[2], "the rollout uses the model");
    let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.stdout, "2 ran, 2 cached\n", "{}", out.stderr);
}
