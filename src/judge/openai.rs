//! Ratings and short answers from an OpenAI-compatible endpoint.
//!
//! A rating question offers a few one-character answers (the digits 0–5, or 1 and 2).
//! The judge is asked for one token with `logprobs`: when the endpoint returns
//! `top_logprobs`, the distribution is read from them (the offered answers among the
//! alternatives, renormalised), as with an in-process judge; otherwise the answer is
//! parsed from the reply's first character. A reply with neither is unparseable: it is
//! returned as such, never turned into a score.

use serde_json::{Value, json};

use super::rating::Rating;
use crate::llm::chat::Message;
use crate::llm::endpoint::{Endpoint, EndpointError};

fn messages_json(messages: &[Message]) -> Value {
    Value::Array(
        messages
            .iter()
            .map(|m| json!({"role": m.role, "content": m.content}))
            .collect(),
    )
}

/// The offered answer a reply or token starts with, if any.
fn leading_answer(text: &str, answers: &[&str]) -> Option<usize> {
    let first = text.trim_start().chars().next()?;
    answers
        .iter()
        .position(|a| a.chars().eq(std::iter::once(first)))
}

/// Rates with `endpoint`: the reply to `messages` should start with one of `answers`.
pub fn rate(
    endpoint: &Endpoint,
    messages: &[Message],
    answers: &[&str],
) -> Result<Rating, EndpointError> {
    let reply = endpoint.chat(json!({
        "messages": messages_json(messages),
        "max_tokens": 2,
        "temperature": 0,
        "logprobs": true,
        "top_logprobs": 20,
    }))?;
    let choice = &reply["choices"][0];
    if let Some(top) = choice["logprobs"]["content"][0]["top_logprobs"].as_array() {
        let mut mass = vec![0.0f64; answers.len()];
        for entry in top {
            if let (Some(token), Some(logprob)) =
                (entry["token"].as_str(), entry["logprob"].as_f64())
                && token.trim().chars().count() == 1
                && let Some(k) = leading_answer(token, answers)
            {
                mass[k] += logprob.exp();
            }
        }
        let total: f64 = mass.iter().sum();
        if total > 0.0 {
            return Ok(Rating::Distribution(
                mass.iter().map(|m| m / total).collect(),
            ));
        }
    }
    let content = choice["message"]["content"].as_str().unwrap_or("");
    Ok(match leading_answer(content, answers) {
        Some(k) => {
            let mut one_hot = vec![0.0; answers.len()];
            one_hot[k] = 1.0;
            Rating::Distribution(one_hot)
        }
        None => Rating::Unparseable(content.to_string()),
    })
}

/// A short free-text answer (a rationale), greedy.
pub fn answer(
    endpoint: &Endpoint,
    messages: &[Message],
    max_tokens: usize,
) -> Result<String, EndpointError> {
    let reply = endpoint.chat(json!({
        "messages": messages_json(messages),
        "max_tokens": max_tokens,
        "temperature": 0,
    }))?;
    Ok(reply["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("")
        .trim()
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::leading_answer;
    use crate::judge::rating::DIGITS;

    #[test]
    fn answers_are_read_from_the_first_character() {
        assert_eq!(leading_answer(" 4 because", &DIGITS), Some(4));
        assert_eq!(leading_answer("7", &DIGITS), None);
        assert_eq!(leading_answer("I would say 3", &DIGITS), None);
        assert_eq!(leading_answer("2.", &["1", "2"]), Some(1));
    }
}
