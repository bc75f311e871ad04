//! A reply's visible text: what a model wrote outside its `<think>…</think>` reasoning.
//!
//! Reasoning models (Qwen3 with thinking on, and sometimes with it off) write their
//! reasoning between `<think>` and `</think>` before the reply. The reply is what the
//! other agents hear and what judges rate; the reasoning stays in the rollout row's
//! `text` (and its tokens in `token_ids`, which training uses), so nothing is lost. Removed
//! are: every block, nested ones whole; an unclosed block at the end (generation stopped
//! mid-thought); everything before a `</think>` that nothing opened (a template that opens
//! the block in the prompt, as DeepSeek-R1's does); and the whitespace the removal leaves
//! at either end. Text without either tag is returned as it is, borrowed, so replies of
//! models that never think (and the keys made from them) are unchanged.

use std::borrow::Cow;

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// `text` without its reasoning blocks.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.contains(OPEN) && !text.contains(CLOSE) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    let mut rest = text;
    loop {
        let open = rest.find(OPEN);
        let close = rest.find(CLOSE);
        let (at, opens) = match (open, close) {
            (None, None) => {
                if depth == 0 {
                    out.push_str(rest);
                }
                break;
            }
            (Some(o), Some(c)) if c < o => (c, false),
            (Some(o), _) => (o, true),
            (None, Some(c)) => (c, false),
        };
        if depth == 0 {
            out.push_str(&rest[..at]);
        }
        if opens {
            depth += 1;
            rest = &rest[at + OPEN.len()..];
        } else {
            if depth == 0 {
                // A block the prompt opened: all so far was reasoning.
                out.clear();
            }
            depth = depth.saturating_sub(1);
            rest = &rest[at + CLOSE.len()..];
        }
    }
    Cow::Owned(out.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::visible;

    #[test]
    fn text_without_reasoning_is_unchanged() {
        for text in [
            "",
            "We agree.",
            "  spaced  ",
            "a <thinking> b",
            "x < think >",
        ] {
            assert!(matches!(visible(text), std::borrow::Cow::Borrowed(t) if t == text));
        }
    }

    #[test]
    fn a_leading_block_goes_with_the_space_after_it() {
        assert_eq!(
            visible("<think>\nBen wants quality.\n</think>\n\nLet us split 60/40."),
            "Let us split 60/40."
        );
        // Thinking off: Qwen3 may still open its reply with an empty block.
        assert_eq!(visible("<think>\n\n</think>\n\nFine."), "Fine.");
    }

    #[test]
    fn every_block_goes() {
        assert_eq!(
            visible("<think>a</think>First. <think>b</think>Second.<think>c</think>"),
            "First. Second."
        );
    }

    #[test]
    fn nested_blocks_go_whole() {
        assert_eq!(
            visible("<think>outer <think>inner</think> still thinking</think> Reply."),
            "Reply."
        );
    }

    #[test]
    fn an_unclosed_block_goes_to_the_end() {
        assert_eq!(
            visible("Reply first. <think>then more thoughts"),
            "Reply first."
        );
        assert_eq!(visible("<think>stopped mid-thought"), "");
        assert_eq!(
            visible("<think>a</think>Yes. <think>b <think>c</think>"),
            "Yes."
        );
    }

    #[test]
    fn a_close_without_an_open_ends_reasoning_the_prompt_began() {
        assert_eq!(visible("reasoning\n</think>\n\nReply."), "Reply.");
        assert_eq!(visible("a</think>b</think>c"), "c");
    }

    #[test]
    fn a_reply_that_is_all_reasoning_is_empty() {
        assert_eq!(visible("<think>only this</think>"), "");
        assert_eq!(visible("  <think></think>  "), "");
    }
}
