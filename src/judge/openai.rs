//! Ratings from an OpenAI-compatible endpoint.
//!
//! The judge is asked for one token with `logprobs`: when the endpoint returns
//! `top_logprobs`, the rating distribution is read from them (the digits 0–5 among the
//! alternatives, renormalised), as with an in-process judge; otherwise the rating is parsed
//! from the reply's first digit. A reply with neither is unparseable: it is returned as
//! such, never turned into a score.

use serde_json::{Value, json};

use crate::llm::chat::Message;
use crate::llm::endpoint::{Endpoint, EndpointError};

/// What a rating request gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Rating {
    /// P(rating = k) for k = 0..=5.
    Distribution(Vec<f64>),
    /// The reply, which holds no rating.
    Unparseable(String),
}

fn messages_json(messages: &[Message]) -> Value {
    Value::Array(
        messages
            .iter()
            .map(|m| json!({"role": m.role, "content": m.content}))
            .collect(),
    )
}

/// The digit a token or reply starts with, if it is 0–5.
fn leading_digit(text: &str) -> Option<usize> {
    let c = text.trim_start().chars().next()?;
    c.to_digit(10).filter(|d| *d <= 5).map(|d| d as usize)
}

/// Rates with `endpoint`: the reply to `messages` should start with a digit 0–5.
pub fn rate(endpoint: &Endpoint, messages: &[Message]) -> Result<Rating, EndpointError> {
    let reply = endpoint.chat(json!({
        "messages": messages_json(messages),
        "max_tokens": 2,
        "temperature": 0,
        "logprobs": true,
        "top_logprobs": 20,
    }))?;
    let choice = &reply["choices"][0];
    if let Some(top) = choice["logprobs"]["content"][0]["top_logprobs"].as_array() {
        let mut mass = [0.0f64; 6];
        for entry in top {
            if let (Some(token), Some(logprob)) =
                (entry["token"].as_str(), entry["logprob"].as_f64())
                && token.trim().len() == 1
                && let Some(d) = leading_digit(token)
            {
                mass[d] += logprob.exp();
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
    Ok(match leading_digit(content) {
        Some(d) => {
            let mut one_hot = vec![0.0; 6];
            one_hot[d] = 1.0;
            Rating::Distribution(one_hot)
        }
        None => Rating::Unparseable(content.to_string()),
    })
}

/// A short free-text answer (a rationale).
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
    use super::leading_digit;

    #[test]
    fn ratings_are_read_from_the_first_digit() {
        assert_eq!(leading_digit(" 4 because"), Some(4));
        assert_eq!(leading_digit("7"), None);
        assert_eq!(leading_digit("I would say 3"), None);
    }
}
