//! A client for OpenAI-compatible `/v1/chat/completions` endpoints (vLLM, llama.cpp's
//! server, hosted APIs, `accord serve`).
//!
//! Requests time out, and connection failures, timeouts, 429s and 5xx answers are retried
//! with exponential backoff; other 4xx answers fail at once with the server's message. The
//! API key is read from the environment variable the spec names and is sent only in the
//! `Authorization` header: it never appears in errors, logs or artifacts.

use std::time::Duration;

use serde_json::Value;

use crate::spec::ModelSpec;

/// Why a request failed, after any retries.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("model `{name}` has no `endpoint` and `model`")]
    NotAnEndpoint { name: String },
    #[error("the environment variable `{var}` (model `{name}`'s `api_key_env`) is not set")]
    MissingKey { name: String, var: String },
    #[error("{url} failed after {attempts} attempts: {last}")]
    Unreachable {
        url: String,
        attempts: u32,
        last: String,
    },
    #[error("{url} answered {status}: {message}")]
    Rejected {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url} answered with a body that is not JSON: {message}")]
    BadBody { url: String, message: String },
}

/// One endpoint model.
#[derive(Clone)]
pub struct Endpoint {
    url: String,
    /// The URL as errors show it: without user info or query (where keys sometimes hide).
    shown: String,
    /// The served model name requests carry.
    pub model: String,
    api_key: Option<String>,
    agent: ureq::Agent,
    attempts: u32,
    backoff: Duration,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of debug output.
        f.debug_struct("Endpoint")
            .field("url", &self.shown)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// The endpoint of spec model `name`; `timeout` bounds each request and `attempts`
    /// counts the first try.
    pub fn new(
        name: &str,
        spec: &ModelSpec,
        timeout: Duration,
        attempts: u32,
    ) -> Result<Self, EndpointError> {
        let (Some(base), Some(model)) = (&spec.endpoint, &spec.model) else {
            return Err(EndpointError::NotAnEndpoint { name: name.into() });
        };
        let api_key = match &spec.api_key_env {
            None => None,
            Some(var) => Some(std::env::var(var).map_err(|_| EndpointError::MissingKey {
                name: name.into(),
                var: var.clone(),
            })?),
        };
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build();
        Ok(Self {
            url: format!("{}/chat/completions", base.trim_end_matches('/')),
            shown: shown_url(base),
            model: model.clone(),
            api_key,
            agent: ureq::Agent::new_with_config(config),
            attempts: attempts.max(1),
            backoff: Duration::from_millis(250),
        })
    }

    /// Sets the first retry's wait (it doubles after each retry).
    pub fn with_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Posts a chat-completion request (`model` is filled in) and returns the answer.
    pub fn chat(&self, mut body: Value) -> Result<Value, EndpointError> {
        body["model"] = Value::String(self.model.clone());
        let mut last = String::new();
        for attempt in 0..self.attempts {
            if attempt > 0 {
                std::thread::sleep(self.backoff * 2u32.saturating_pow(attempt - 1));
            }
            let mut request = self.agent.post(&self.url);
            if let Some(key) = &self.api_key {
                request = request.header("Authorization", &format!("Bearer {key}"));
            }
            let mut response = match request.send_json(&body) {
                Ok(response) => response,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let status = response.status().as_u16();
            let text = match response.body_mut().read_to_string() {
                Ok(text) => text,
                Err(e) => {
                    last = format!("reading the answer: {e}");
                    continue;
                }
            };
            if status == 429 || status >= 500 {
                last = format!("status {status}: {}", server_message(&text));
                continue;
            }
            if status >= 400 {
                return Err(EndpointError::Rejected {
                    url: self.shown.clone(),
                    status,
                    message: server_message(&text),
                });
            }
            return serde_json::from_str(&text).map_err(|e| EndpointError::BadBody {
                url: self.shown.clone(),
                message: e.to_string(),
            });
        }
        Err(EndpointError::Unreachable {
            url: self.shown.clone(),
            attempts: self.attempts,
            last,
        })
    }
}

/// `base` without `user:password@` and without a query string.
fn shown_url(base: &str) -> String {
    let base = base.split(['?', '#']).next().unwrap_or(base);
    let shown = match base.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{rest}")
        }
        None => base.to_string(),
    };
    format!("{}/chat/completions", shown.trim_end_matches('/'))
}

/// The `error.message` of an OpenAI-style error body, else the body's start.
fn server_message(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(String::from))
        .unwrap_or_else(|| text.chars().take(200).collect())
}
