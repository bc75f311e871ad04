//! Chat templates with template variables render byte for byte as `transformers`'
//! `apply_chat_template` renders them: a template written for this test that uses what
//! Qwen3's uses (a namespace, a reversed loop over the messages, string methods, reasoning
//! split out of assistant turns, `enable_thinking`), over several conversations with
//! thinking unspecified, on and off.
//!
//! The references come from `scripts/make_chat_fixtures.py`. With
//! `ACCORD_CHAT_REFERENCE=FILE.json` (written by that script's `--template … --out …`),
//! `a_template_named_by_the_environment_renders_as_transformers_does` checks any other
//! template the same way, e.g. a model's published one, which is not committed here.

use std::path::{Path, PathBuf};

use accord::llm::chat::{ChatTemplate, Message};
use accord::llm::chat_template_kwargs::ChatTemplateKwargs;
use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat/qwen3_style.json")
}

/// Where `a` and `b` first differ, shown with some context.
fn first_difference(a: &str, b: &str) -> String {
    let at = a
        .bytes()
        .zip(b.bytes())
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let around = |s: &str| {
        let start = s.floor_char_boundary(at.saturating_sub(40));
        let end = s.ceil_char_boundary((at + 40).min(s.len()));
        format!("{:?}", &s[start..end])
    };
    format!(
        "first difference at byte {at} (lengths {} and {}):\n  accord:       {}\n  transformers: {}",
        a.len(),
        b.len(),
        around(a),
        around(b)
    )
}

/// Renders every case of the reference file at `path` with accord and compares; returns
/// the number of cases.
fn check_reference(path: &Path) -> usize {
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("reference file")).unwrap();
    let template_path = path
        .parent()
        .unwrap()
        .join(reference["template"].as_str().unwrap());
    let template = ChatTemplate::new(std::fs::read_to_string(&template_path).unwrap());
    let eos = reference["eos_token"].as_str().unwrap_or("");
    let cases = reference["cases"].as_array().unwrap();
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let messages: Vec<Message> = serde_json::from_value(case["messages"].clone()).unwrap();
        let kwargs: ChatTemplateKwargs =
            serde_json::from_value(case["chat_template_kwargs"].clone()).unwrap();
        let expected = case["rendered"].as_str().unwrap();
        match template.render_with(
            &messages,
            case["add_generation_prompt"].as_bool().unwrap(),
            "",
            eos,
            &kwargs,
        ) {
            Ok(rendered) if rendered == expected => {}
            Ok(rendered) => {
                failures.push(format!("{name}: {}", first_difference(&rendered, expected)))
            }
            Err(e) => failures.push(format!("{name}: accord failed: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} renderings of {} differ from transformers':\n{}",
        failures.len(),
        cases.len(),
        template_path.display(),
        failures.join("\n")
    );
    cases.len()
}

#[test]
fn a_qwen3_style_template_renders_as_transformers_does_with_thinking_on_and_off() {
    let cases = check_reference(&fixture());
    // 5 conversations × thinking unspecified, on, off × with and without the prompt.
    assert_eq!(cases, 30);
}

#[test]
fn thinking_off_opens_the_reply_with_an_empty_think_block() {
    let template = ChatTemplate::new(
        std::fs::read_to_string(fixture().with_file_name("qwen3_style.jinja")).unwrap(),
    );
    let messages = [Message::new("user", "Hi")];
    let off = ChatTemplateKwargs::parse(r#"{"enable_thinking": false}"#).unwrap();
    let on = ChatTemplateKwargs::parse(r#"{"enable_thinking": true}"#).unwrap();
    let render = |kwargs: &ChatTemplateKwargs| {
        template
            .render_with(&messages, true, "", "<|im_end|>", kwargs)
            .unwrap()
    };
    assert!(render(&off).ends_with("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
    assert!(render(&on).ends_with("<|im_start|>assistant\n"));
    assert_eq!(render(&on), render(&ChatTemplateKwargs::default()));
}

#[test]
fn a_template_named_by_the_environment_renders_as_transformers_does() {
    let Some(path) = std::env::var_os("ACCORD_CHAT_REFERENCE") else {
        eprintln!("ACCORD_CHAT_REFERENCE is not set: nothing to check");
        return;
    };
    let cases = check_reference(Path::new(&path));
    eprintln!("{cases} renderings match transformers'");
}
