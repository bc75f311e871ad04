#!/usr/bin/env python3
"""Reference renderings of chat templates, for accord's byte-for-byte template test.

Renders conversations (a system prompt, several turns, assistant turns with `<think>`
reasoning, non-ASCII text) with `transformers`' `apply_chat_template(..., tokenize=False)`
with thinking unspecified, on (`enable_thinking=True`) and off (`enable_thinking=False`),
and writes the messages, the template variables and the exact strings to a JSON file that
`tests/chat_templates.rs` renders again with accord and compares.

Default: the test's own template, `tests/fixtures/chat/qwen3_style.jinja` (written for the
test; it uses what Qwen3's template uses), into `tests/fixtures/chat/qwen3_style.json`.

`--template FILE --out FILE.json` renders another template the same way (e.g. a model's
published template, which is not committed); then
`ACCORD_CHAT_REFERENCE=FILE.json cargo test --test chat_templates` checks accord against it.

Needs `transformers` (5.x) and `tokenizers`; not torch. Deterministic for a given
`transformers` and `jinja2` version.
"""

import argparse
import json
import pathlib

import jinja2
import transformers
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "chat"
EOS = "<|im_end|>"

SYSTEM = {"role": "system", "content": "  You are Ada, who keeps costs low.\nNegotiate with Ben.\n"}
CONVERSATIONS = {
    "one_turn": [
        SYSTEM,
        {"role": "user", "content": "Open the negotiation: say what matters to you."},
    ],
    "several_turns": [
        SYSTEM,
        {"role": "user", "content": "Open the negotiation."},
        {"role": "assistant", "content": "<think>\nBen wants quality.\nI want savings.\n</think>\n\nLet us split the budget 60/40."},
        {"role": "user", "content": "Ben: 60/40 is too tight for the roof.  "},
        {"role": "assistant", "content": "Then 50/50, with the roof first."},
        {"role": "user", "content": "Agreed, if the café stays open — naïvely, 50/50 works. 🙂"},
    ],
    "no_system_prompt": [
        {"role": "user", "content": "Should the garden stay?"},
        {"role": "assistant", "content": "<think>It should.</think>Yes, it should."},
        {"role": "user", "content": "<note>Ben left the room.</note>"},
    ],
    "reasoning_after_the_last_query": [
        SYSTEM,
        {"role": "user", "content": "Propose a split."},
        {"role": "assistant", "content": "<think>\n\nCareful: the roof leaks.\n\n</think>\n\n\nFix the roof first."},
    ],
    "an_empty_reply": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say something."},
        {"role": "assistant", "content": "<think>\nNothing to say.\n</think>"},
        {"role": "user", "content": "Go on."},
    ],
}
THINKING = {
    "unspecified": {},
    "on": {"enable_thinking": True},
    "off": {"enable_thinking": False},
}


def tokenizer(template):
    vocab = {"<unk>": 0, EOS: 1, "<|im_start|>": 2}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
        unk_token="<unk>",
        eos_token=EOS,
        chat_template=template,
    )
    return fast


def cases(template):
    fast = tokenizer(template)
    out = []
    for name, messages in CONVERSATIONS.items():
        for thinking, kwargs in THINKING.items():
            for add_generation_prompt in (True, False):
                rendered = fast.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs
                )
                out.append({
                    "name": f"{name}, thinking {thinking}"
                    + ("" if add_generation_prompt else ", no generation prompt"),
                    "messages": messages,
                    "add_generation_prompt": add_generation_prompt,
                    "chat_template_kwargs": kwargs,
                    "rendered": rendered,
                })
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", type=pathlib.Path, default=OUT / "qwen3_style.jinja")
    parser.add_argument("--out", type=pathlib.Path, default=OUT / "qwen3_style.json")
    args = parser.parse_args()
    template = args.template.read_text()
    reference = {
        "generated_by": "scripts/make_chat_fixtures.py",
        "transformers": transformers.__version__,
        "jinja2": jinja2.__version__,
        # Relative to this file's folder when it is the committed fixture.
        "template": args.template.name
        if args.template.resolve().parent == args.out.resolve().parent
        else str(args.template.resolve()),
        "eos_token": EOS,
        "cases": cases(template),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(reference, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(reference['cases'])} renderings to {args.out}")


if __name__ == "__main__":
    main()
