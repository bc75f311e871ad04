//! `accord show SPEC ROLLOUT --transcript [DIALOGUE_ID]`: dialogues as transcripts, with
//! the verdict of the judge that scored them while that judge is fresh.

mod common;

use common::{Output, Workspace};

/// Two dialogues of the tiny fixture, and a judge (the same model) scoring them.
fn judged(ws: &Workspace) {
    let model = common::tiny_long_context(ws);
    let text = format!(
        "version: 1\nname: transcripts\nseed: 3\nmodels:\n  policy:\n    source: {model}\nstages:\n  \
         dilemmas:\n    kind: prompt_synthesis\n    with: {{count: 1}}\n  \
         pairs:\n    kind: persona_pairing\n    needs: [dilemmas]\n  \
         dialogues:\n    kind: rollout\n    needs: [pairs]\n    with: {{model: policy, group_size: 2, \
         max_turns: 3, max_new_tokens: 6, agreement: marker}}\n  \
         scores:\n    kind: judge\n    needs: [dialogues]\n    with: {{model: policy, rationale_tokens: 4, \
         no_agreement_score: null}}\n"
    );
    ws.write("spec.yaml", &text);
    let run = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// `accord show ARGS` on a terminal 80 columns wide.
fn show(ws: &Workspace, args: &[&str]) -> Output {
    let mut all = vec!["show", "spec.yaml"];
    all.extend(args);
    all.extend(["--backend", "flex"]);
    let mut cmd = ws.command(&common::accord_bin(), &all);
    cmd.env("COLUMNS", "80");
    common::run(cmd)
}

/// A stage's rows as JSON objects.
fn rows(ws: &Workspace, stage: &str) -> Vec<serde_json::Value> {
    let out = show(ws, &[stage, "--format", "json", "--rows", "1000"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The transcript of each dialogue: its header, dilemma, parties, every turn by its
/// speaker, the agreement verdict, the summary, and the judge's score and rationale.
#[test]
fn transcripts_show_every_turn_and_the_judges_verdict() {
    let ws = Workspace::new();
    judged(&ws);
    let turns = rows(&ws, "dialogues");
    let scores = rows(&ws, "scores");
    let out = show(&ws, &["dialogues", "--transcript"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.ends_with("\n2 of 2 dialogues\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.lines().all(|l| l.chars().count() <= 80),
        "{}",
        out.stdout
    );
    let dilemma = turns[0]["dilemma"].as_str().unwrap();
    let first_words: String = dilemma.split(' ').take(3).collect::<Vec<_>>().join(" ");
    for score in &scores {
        let id = score["dialogue_id"].as_str().unwrap();
        // The dialogue's part of the output, from its header to the next one.
        let start = out
            .stdout
            .find(&format!("dialogue {id} "))
            .unwrap_or_else(|| panic!("no transcript of {id}:\n{}", out.stdout));
        let part = &out.stdout[start..];
        let part = &part[..part[1..].find("\ndialogue ").map_or(part.len(), |e| e + 1)];
        assert!(part.contains(&first_words), "the dilemma:\n{part}");
        let said: Vec<&serde_json::Value> = turns
            .iter()
            .filter(|t| t["dialogue_id"] == id && t["kind"] == "turn")
            .collect();
        for (i, turn) in said.iter().enumerate() {
            let speaker = turn["name"].as_str().unwrap();
            assert!(
                part.contains(&format!("{speaker}, turn {}", i + 1)),
                "turn {} by {speaker}:\n{part}",
                i + 1
            );
        }
        assert!(part.contains("parties:"), "{part}");
        let agreed = said[0]["agreed"].as_bool().unwrap();
        let verdict = if agreed {
            "reached after"
        } else {
            "not reached in"
        };
        assert!(
            part.contains(&format!("agreement: {verdict} {}", said.len())),
            "{part}"
        );
        assert!(part.contains("summary by "), "{part}");
        match score["ca_score"].as_f64() {
            Some(ca) => assert!(
                part.contains(&format!("judge `scores`: Collective Agency {ca:.2} of 5")),
                "{part}"
            ),
            None => assert!(part.contains("judge `scores`: Collective Agency no rating")),
        }
    }
    // `--rows` limits how many.
    let one = show(&ws, &["dialogues", "--transcript", "--rows", "1"]);
    assert!(
        one.stdout.ends_with("\n1 of 2 dialogues\n"),
        "{}",
        one.stdout
    );
}

/// An id prefix picks one dialogue; an unknown one is an error with the ids as a hint;
/// a stage that holds no dialogues is refused.
#[test]
fn a_dialogue_is_picked_by_its_id_prefix_and_unknown_ids_are_clear_errors() {
    let ws = Workspace::new();
    judged(&ws);
    let scores = rows(&ws, "scores");
    let id = scores[1]["dialogue_id"].as_str().unwrap();
    let out = show(&ws, &["dialogues", "--transcript", &id[..6]]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with(&format!("dialogue {id} ")),
        "{}",
        out.stdout
    );
    assert_eq!(
        out.stdout.matches("\ndialogue ").count(),
        0,
        "{}",
        out.stdout
    );

    let out = show(&ws, &["dialogues", "--transcript", "zzzz"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("stage `dialogues` has no dialogue `zzzz`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(id),
        "the hint lists the ids: {}",
        out.stderr
    );

    let out = show(&ws, &["scores", "--transcript"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(
            "`scores` is a `judge` stage\n  = hint: `rollout` stages in this spec: dialogues"
        ),
        "{}",
        out.stderr
    );
}

/// A judge that no longer matches the spec scored other dialogues: its verdict is left
/// out until it runs again.
#[test]
fn a_stale_judge_adds_no_verdict() {
    let ws = Workspace::new();
    judged(&ws);
    let out = show(
        &ws,
        &[
            "dialogues",
            "--transcript",
            "--set",
            "stages.scores.with.rationale_tokens=5",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("summary by "), "{}", out.stdout);
    assert!(!out.stdout.contains("judge `scores`"), "{}", out.stdout);
}
