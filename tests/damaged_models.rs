//! Damaged or inconsistent model files are errors naming the file and what is wrong, in
//! `run`, `generate` and `serve` alike; a panic inside a stage fails that stage, and the
//! run still ends.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Output, Workspace};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/llm");

fn spec(model: &str) -> String {
    format!(
        "version: 1\nname: damaged\nseed: 5\nmodels:\n  policy:\n    source: {model}\nstages:\n  \
         dilemmas:\n    kind: prompt_synthesis\n    with: {{count: 2}}\n  \
         pairs:\n    kind: persona_pairing\n    needs: [dilemmas]\n  \
         dialogues:\n    kind: rollout\n    needs: [pairs]\n    with: {{model: policy, max_turns: 2, max_new_tokens: 4}}\n"
    )
}

/// Runs `cmd`, killing it (and failing the test) if it has not ended within `limit`: the
/// failures here used to hang forever.
fn finish_within(mut cmd: std::process::Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `generate`, `serve` and a `run` whose rollout uses `model` all fail, each naming
/// `expected` in its message.
fn every_command_rejects(ws: &Workspace, model: &str, expected: &[&str]) {
    let limit = Duration::from_secs(300);
    let generate = finish_within(
        ws.command(
            &common::accord_bin(),
            &[
                "generate",
                "--model",
                model,
                "--backend",
                "flex",
                "--prompt",
                "hi",
            ],
        ),
        limit,
    );
    let serve = finish_within(
        ws.command(
            &common::accord_bin(),
            &[
                "serve",
                "--model",
                model,
                "--backend",
                "flex",
                "--port",
                "0",
            ],
        ),
        limit,
    );
    ws.write("spec.yaml", &spec(model));
    let run = finish_within(
        ws.command(
            &common::accord_bin(),
            &["run", "spec.yaml", "--backend", "flex"],
        ),
        limit,
    );
    for (command, out) in [("generate", &generate), ("serve", &serve), ("run", &run)] {
        println!("{command}: {}", out.stderr);
        assert_eq!(out.code, 1, "{command}: {}", out.stderr);
        for text in expected {
            assert!(out.stderr.contains(text), "{command}: {}", out.stderr);
        }
        assert!(
            !out.stderr.contains("panicked"),
            "{command}: {}",
            out.stderr
        );
    }
    assert!(
        run.stderr.contains("stage `dialogues` failed"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_truncated_gguf_file_is_named_as_truncated() {
    let ws = Workspace::new();
    let whole = std::fs::read(Path::new(FIXTURES).join("qwen2-tied.f32.gguf")).unwrap();
    ws.write("cut.gguf", "");
    std::fs::write(ws.path().join("cut.gguf"), &whole[..whole.len() * 6 / 10]).unwrap();
    every_command_rejects(
        &ws,
        "path:cut.gguf",
        &["cut.gguf", "is truncated: tensor `"],
    );
}

/// Where the GGUF string `text` (length-prefixed, as names and keys are stored) ends.
fn after_gguf_string(bytes: &[u8], text: &str) -> usize {
    let mut needle = (text.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(text.as_bytes());
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .unwrap_or_else(|| panic!("`{text}` is in the file"));
    at + needle.len()
}

#[test]
fn a_gguf_file_of_another_architecture_names_it() {
    let ws = Workspace::new();
    let mut bytes = std::fs::read(Path::new(FIXTURES).join("qwen2-tied.f32.gguf")).unwrap();
    // The value of `general.architecture`: a u32 type and a u64 length, then `qwen2`.
    let value = after_gguf_string(&bytes, "general.architecture") + 4 + 8;
    assert_eq!(&bytes[value..value + 5], b"qwen2");
    bytes[value..value + 5].copy_from_slice(b"olmoe"); // a mixture-of-experts architecture
    std::fs::write(ws.path().join("moe.gguf"), &bytes).unwrap();
    every_command_rejects(
        &ws,
        "path:moe.gguf",
        &[
            "moe.gguf",
            "`general.architecture` is `olmoe`; supported: `llama`, `mistral`, `qwen2`, `qwen3`",
        ],
    );
}

#[test]
fn a_gguf_tensor_of_an_unsupported_type_is_named() {
    let ws = Workspace::new();
    let mut bytes = std::fs::read(Path::new(FIXTURES).join("qwen2-tied.f32.gguf")).unwrap();
    // A tensor's description: its name, a u32 dimension count, u64 dimensions, a u32 type.
    let dims = after_gguf_string(&bytes, "blk.0.ffn_down.weight");
    let count = u32::from_le_bytes(bytes[dims..dims + 4].try_into().unwrap()) as usize;
    let ty = dims + 4 + 8 * count;
    assert_eq!(&bytes[ty..ty + 4], &0u32.to_le_bytes(), "stored as F32");
    bytes[ty..ty + 4].copy_from_slice(&7u32.to_le_bytes()); // Q5_1: smaller, so it still fits
    std::fs::write(ws.path().join("q5_1.gguf"), &bytes).unwrap();
    every_command_rejects(
        &ws,
        "path:q5_1.gguf",
        &[
            "q5_1.gguf",
            "`blk.0.ffn_down.weight` has type Q5_1; supported: F32, F16, BF16",
        ],
    );
}

/// A copy of the tiny Hugging Face fixture in `ws` under `name`.
fn copy_fixture(ws: &Workspace, name: &str) {
    let from = Path::new(FIXTURES).join("qwen2-tied");
    std::fs::create_dir_all(ws.path().join(name)).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), ws.path().join(name).join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_truncated_safetensors_file_is_named() {
    let ws = Workspace::new();
    copy_fixture(&ws, "cut");
    let weights = ws.path().join("cut/model.safetensors");
    let whole = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &whole[..whole.len() * 6 / 10]).unwrap();
    every_command_rejects(
        &ws,
        "path:cut",
        &["model.safetensors", "is not a readable safetensors file"],
    );
}

#[test]
fn weights_that_do_not_fit_the_config_name_the_tensor() {
    let ws = Workspace::new();
    copy_fixture(&ws, "wide");
    let config = ws.read("wide/config.json");
    let hidden = number_after(&config, "hidden_size");
    ws.write(
        "wide/config.json",
        &replace_number(&config, "hidden_size", hidden * 2),
    );
    every_command_rejects(
        &ws,
        "path:wide",
        &[
            "tensor `model.embed_tokens.weight` has shape",
            "configuration",
        ],
    );
}

#[test]
fn a_config_with_zero_attention_heads_names_the_field() {
    let ws = Workspace::new();
    copy_fixture(&ws, "zero");
    let config = ws.read("zero/config.json");
    let edited = replace_number(&config, "num_attention_heads", 0);
    assert_ne!(edited, config);
    ws.write("zero/config.json", &edited);
    every_command_rejects(
        &ws,
        "path:zero",
        &[
            "config.json",
            "`num_attention_heads` is 0; it must be at least 1",
        ],
    );
}

/// The number after `"key":` in `text`.
fn number_after(text: &str, key: &str) -> u64 {
    let needle = format!("\"{key}\":");
    let rest = text[text.find(&needle).unwrap() + needle.len()..].trim_start();
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap();
    rest[..end].parse().unwrap()
}

/// `text` with the number after `"key":` replaced by `value`.
fn replace_number(text: &str, key: &str, value: u64) -> String {
    let needle = format!("\"{key}\":");
    let start = text.find(&needle).unwrap() + needle.len();
    let rest = &text[start..];
    let digits_start = rest.find(|c: char| c.is_ascii_digit()).unwrap();
    let digits_end = digits_start
        + rest[digits_start..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap();
    format!(
        "{}{}{}",
        &text[..start + digits_start],
        value,
        &rest[digits_end..]
    )
}

/// A kind that panics (the custom-kind example's `word_count` with `panic_above_words`)
/// fails its stage with the panic's message and location; its dependent is skipped, an
/// independent stage still runs, and the run ends with exit 1 instead of hanging.
#[test]
fn a_panic_in_a_stage_fails_that_stage_and_the_run_ends() {
    let ws = Workspace::new();
    ws.write(
        "spec.yaml",
        "version: 1\nname: panics\nseed: 1\nstages:\n  \
         dilemmas:\n    kind: prompt_synthesis\n    with: {count: 3}\n  \
         words:\n    kind: word_count\n    needs: [dilemmas]\n    with: {panic_above_words: 1}\n  \
         after_words:\n    kind: word_count\n    needs: [words]\n  \
         pairs:\n    kind: persona_pairing\n    needs: [dilemmas]\n",
    );
    let out = finish_within(
        ws.command(
            &common::custom_kind_bin(),
            &["run", "spec.yaml", "--on-error", "keep-going"],
        ),
        Duration::from_secs(120),
    );
    println!("{}", out.stderr);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("stage `words` failed: internal error: ")
            && out
                .stderr
                .contains("words is more than 1 (at examples/custom_kind.rs:"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("hint: a panic is a bug"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked at"), "{}", out.stderr);
    assert!(out.stderr.contains("after_words"), "{}", out.stderr);
    assert!(out.stderr.contains("pairs: ran"), "{}", out.stderr);
    // The failure left nothing that looks fresh: the next run tries `words` again.
    let again = ws.custom(&["status", "spec.yaml"]);
    assert!(again.stdout.contains("words"), "{}", again.stdout);
    assert_eq!(ws.custom(&["run", "spec.yaml"]).code, 1);
}
