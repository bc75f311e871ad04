//! Tokenizers and chat templates against `transformers`: a `tokenizer.json` and the same
//! tokenizer rebuilt from GGUF metadata give the reference ids; chat templates render as
//! `apply_chat_template` does.

use std::path::{Path, PathBuf};

use accord::llm::chat::{ChatTemplate, Message};
use accord::llm::tokenizer::Tokenizer;
use accord::llm::weights::gguf::GgufWeights;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llm")
}

fn reference(model: &str) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixtures().join(model).join("reference.json")).unwrap(),
    )
    .unwrap()
}

fn ids(value: &serde_json::Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn hf_and_gguf_tokenizers_give_the_reference_ids() {
    for (model, pre) in [("llama-gqa", "smollm"), ("qwen2-tied", "qwen2")] {
        let reference = reference(model);
        let hf = Tokenizer::from_hf_folder(&fixtures().join(model)).unwrap();
        let (_, _, data) =
            GgufWeights::open(&fixtures().join(format!("{model}.f32.gguf"))).unwrap();
        assert_eq!(data.pre.as_deref(), Some(pre));
        let gguf = Tokenizer::from_gguf(&data).unwrap();
        for prompt in reference["prompts"].as_array().unwrap() {
            let text = prompt["text"].as_str().unwrap();
            let expected = ids(&prompt["ids"]);
            assert_eq!(
                hf.encode(text).unwrap(),
                expected,
                "{model} tokenizer.json: {text:?}"
            );
            assert_eq!(
                gguf.encode(text).unwrap(),
                expected,
                "{model} GGUF ({pre}): {text:?}"
            );
            assert_eq!(gguf.decode(&expected).unwrap(), text);
        }
        // Special tokens are matched whole, and no BOS is added where the model says not to.
        let chat = gguf.encode("<|im_start|>user\nHi<|im_end|>").unwrap();
        assert_eq!(chat[0], gguf.token_to_id("<|im_start|>").unwrap());
        assert_eq!(
            *chat.last().unwrap(),
            gguf.token_to_id("<|im_end|>").unwrap()
        );
        assert_eq!(gguf.eos_token.as_ref().unwrap().0, "<|im_end|>");
    }
}

#[test]
fn chat_templates_render_as_transformers_does() {
    for model in ["llama-gqa", "qwen2-tied"] {
        let reference = reference(model);
        let messages: Vec<Message> =
            serde_json::from_value(reference["chat"]["messages"].clone()).unwrap();
        let template = ChatTemplate::from_hf_folder(&fixtures().join(model))
            .unwrap()
            .expect("a template");
        let with = template
            .render(&messages, true, "<|im_start|>", "<|im_end|>")
            .unwrap();
        let without = template
            .render(&messages, false, "<|im_start|>", "<|im_end|>")
            .unwrap();
        assert_eq!(
            with,
            reference["chat"]["with_generation_prompt"]
                .as_str()
                .unwrap()
        );
        assert_eq!(
            without,
            reference["chat"]["without_generation_prompt"]
                .as_str()
                .unwrap()
        );
        // The Llama-3 format (Meta-Llama-3-8B-Instruct's template) renders alike too.
        let llama3 = ChatTemplate::new(reference["chat"]["llama3_template"].as_str().unwrap());
        let rendered = llama3
            .render(&messages, true, "<|im_start|>", "<|im_end|>")
            .unwrap();
        assert_eq!(rendered, reference["chat"]["llama3"].as_str().unwrap());
        // The GGUF copy of the template renders the same.
        let (_, _, data) =
            GgufWeights::open(&fixtures().join(format!("{model}.f32.gguf"))).unwrap();
        let gguf = ChatTemplate::new(data.chat_template.unwrap());
        assert_eq!(gguf.render(&messages, true, "", "").unwrap(), with);
    }
}

#[test]
fn template_errors_are_reported_not_panics() {
    let template = ChatTemplate::new("{{ raise_exception('roles must alternate') }}");
    let err = template
        .render(&[Message::new("user", "hi")], true, "", "")
        .unwrap_err();
    assert!(err.to_string().contains("roles must alternate"), "{err}");
    let broken = ChatTemplate::new("{% for m in messages %}");
    assert!(broken.render(&[], true, "", "").is_err());
}
