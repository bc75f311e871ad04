//! A client for OpenAI-compatible `/v1/chat/completions` endpoints (vLLM, llama.cpp's
//! server, hosted APIs, `accord serve`).
//!
//! A model may be served by several URLs; requests are spread over them (see
//! [`Endpoint`]). Requests time out, and connection failures, timeouts, 429s and 5xx
//! answers are retried with exponential backoff, on another server when there is one;
//! other 4xx answers fail at once with the server's message. A model's
//! `chat_template_kwargs` travel in each request's body under that name (as vLLM and
//! SGLang read them). The
//! API key is read from the environment variable the spec names and is sent only in the
//! `Authorization` header: it never appears in errors, logs or artifacts.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::chat_template_kwargs::ChatTemplateKwargs;
use super::model_spec::ModelSpec;

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

/// One server of an endpoint model.
struct Server {
    url: String,
    /// The URL as errors show it: without user info or query (where keys sometimes hide).
    shown: String,
}

/// How one request to one server went.
enum Sent {
    Answer(Value),
    /// Worth trying again (connection failure, timeout, 429, 5xx): the reason.
    Transient(String),
    /// The server refused the request itself: trying elsewhere would not help.
    Fatal(EndpointError),
}

/// Which servers are busy and which are taken out.
struct Health {
    in_flight: Vec<usize>,
    /// Taken out until then, after failing.
    down_until: Vec<Option<Instant>>,
    /// Failures in a row, which lengthen the time out.
    failures: Vec<u32>,
    /// Round-robin start, so equally loaded servers take turns.
    next: usize,
    /// What happened, for the stage to report (servers taken out and back).
    notices: Vec<String>,
}

struct Pool {
    servers: Vec<Server>,
    api_key: Option<String>,
    agent: ureq::Agent,
    /// Requests in flight per server.
    limit: usize,
    health: Mutex<Health>,
    freed: Condvar,
}

/// An endpoint model: one or several OpenAI-compatible servers of the same model.
///
/// Requests go to the least busy server that is not taken out, at most `concurrency` at a
/// time each. A server that fails a request (connection, timeout, 429, 5xx) is taken out
/// for the backoff time, doubled after each failure in a row (at most a minute), and then
/// tried again; the request goes to another server meanwhile. Every request carries a
/// `seed` derived from its own content, so a row's answer does not depend on which server
/// gave it.
#[derive(Clone)]
pub struct Endpoint {
    /// The served model name requests carry.
    pub model: String,
    /// The template variables requests carry (none: no field).
    chat_template_kwargs: ChatTemplateKwargs,
    pool: Arc<Pool>,
    attempts: u32,
    backoff: Duration,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of debug output.
        let urls: Vec<&str> = self.pool.servers.iter().map(|s| s.shown.as_str()).collect();
        f.debug_struct("Endpoint")
            .field("urls", &urls)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// Requests in flight per server unless the spec says otherwise.
const DEFAULT_CONCURRENCY: usize = 8;

/// The longest a failing server is taken out for.
const LONGEST_TIME_OUT: Duration = Duration::from_secs(60);

impl Endpoint {
    /// The endpoint of spec model `name`; `timeout` bounds each request and `attempts`
    /// counts the tries of one request on each server.
    pub fn new(
        name: &str,
        spec: &ModelSpec,
        timeout: Duration,
        attempts: u32,
    ) -> Result<Self, EndpointError> {
        let (Some(urls), Some(model)) = (&spec.endpoint, &spec.model) else {
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
        let servers: Vec<Server> = urls
            .urls()
            .into_iter()
            .map(|base| Server {
                url: format!("{}/chat/completions", base.trim_end_matches('/')),
                shown: shown_url(base),
            })
            .collect();
        if servers.is_empty() {
            return Err(EndpointError::NotAnEndpoint { name: name.into() });
        }
        let n = servers.len();
        Ok(Self {
            model: model.clone(),
            chat_template_kwargs: spec.chat_template_kwargs.clone(),
            pool: Arc::new(Pool {
                servers,
                api_key,
                agent: ureq::Agent::new_with_config(config),
                limit: spec.concurrency.unwrap_or(DEFAULT_CONCURRENCY).max(1),
                health: Mutex::new(Health {
                    in_flight: vec![0; n],
                    down_until: vec![None; n],
                    failures: vec![0; n],
                    next: 0,
                    notices: Vec::new(),
                }),
                freed: Condvar::new(),
            }),
            attempts: attempts.max(1),
            backoff: Duration::from_millis(250),
        })
    }

    /// Sets the first retry's wait (it doubles after each retry).
    pub fn with_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// What happened to the servers since the last call: taken out, back in.
    pub fn take_notices(&self) -> Vec<String> {
        let mut health = self.pool.health.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut health.notices)
    }

    /// Posts a chat-completion request (`model`, the model's `chat_template_kwargs` if it
    /// has any and, unless given, a `seed` derived from the request are filled in) and
    /// returns the answer.
    pub fn chat(&self, mut body: Value) -> Result<Value, EndpointError> {
        if !self.chat_template_kwargs.is_empty() && body.get("chat_template_kwargs").is_none() {
            body["chat_template_kwargs"] =
                serde_json::to_value(&self.chat_template_kwargs).expect("JSON values serialise");
        }
        if body.get("seed").is_none() {
            let digest = blake3::hash(&serde_json::to_vec(&body).unwrap_or_default());
            let seed = u64::from_le_bytes(digest.as_bytes()[..8].try_into().expect("8 bytes"));
            body["seed"] = Value::from(seed >> 1);
        }
        body["model"] = Value::String(self.model.clone());
        let tries = self.attempts * self.pool.servers.len() as u32;
        let mut last = String::new();
        for _ in 0..tries {
            let i = self.acquire();
            let sent = self.send(&self.pool.servers[i], &body);
            self.release(i, &sent);
            match sent {
                Sent::Answer(answer) => return Ok(answer),
                Sent::Fatal(e) => return Err(e),
                Sent::Transient(reason) => {
                    last = if self.pool.servers.len() > 1 {
                        format!("{}: {reason}", self.pool.servers[i].shown)
                    } else {
                        reason
                    }
                }
            }
        }
        Err(EndpointError::Unreachable {
            url: self.shown(),
            attempts: tries,
            last,
        })
    }

    fn shown(&self) -> String {
        let urls: Vec<&str> = self.pool.servers.iter().map(|s| s.shown.as_str()).collect();
        urls.join(", ")
    }

    /// Waits for a server that is in service and below its limit; takes a slot on it.
    fn acquire(&self) -> usize {
        let pool = &self.pool;
        let mut health = pool.health.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let now = Instant::now();
            let n = pool.servers.len();
            let in_service = |h: &Health, i: usize| h.down_until[i].is_none_or(|t| t <= now);
            let pick = (0..n)
                .map(|k| (health.next + k) % n)
                .filter(|&i| in_service(&health, i) && health.in_flight[i] < pool.limit)
                .min_by_key(|&i| health.in_flight[i]);
            if let Some(i) = pick {
                health.in_flight[i] += 1;
                health.next = (i + 1) % n;
                return i;
            }
            // Everything busy: wait for a slot; everything out: wait for the first return.
            let wait = if (0..n).any(|i| in_service(&health, i)) {
                Duration::from_millis(500)
            } else {
                health
                    .down_until
                    .iter()
                    .flatten()
                    .min()
                    .map_or(Duration::from_millis(50), |t| {
                        t.saturating_duration_since(now)
                    })
            };
            health = pool
                .freed
                .wait_timeout(health, wait.max(Duration::from_millis(1)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Gives the slot back and updates the server's health.
    fn release(&self, i: usize, sent: &Sent) {
        let pool = &self.pool;
        let mut health = pool.health.lock().unwrap_or_else(|p| p.into_inner());
        health.in_flight[i] -= 1;
        let shown = &pool.servers[i].shown;
        match sent {
            Sent::Transient(reason) => {
                // Requests that were in flight when a server failed count as one failure.
                let already_out = health.down_until[i].is_some_and(|t| t > Instant::now());
                if !already_out {
                    health.failures[i] += 1;
                    let out = (self.backoff * 2u32.saturating_pow(health.failures[i] - 1))
                        .min(LONGEST_TIME_OUT);
                    health.down_until[i] = Some(Instant::now() + out);
                    if pool.servers.len() > 1 {
                        let notice = format!(
                            "endpoint {shown} failed ({reason}); taken out for {:.1}s",
                            out.as_secs_f64()
                        );
                        health.notices.push(notice);
                    }
                }
            }
            _ => {
                if health.failures[i] > 0 && pool.servers.len() > 1 {
                    health
                        .notices
                        .push(format!("endpoint {shown} answers again"));
                }
                health.failures[i] = 0;
                health.down_until[i] = None;
            }
        }
        drop(health);
        pool.freed.notify_all();
    }

    /// One try of one request on one server.
    fn send(&self, server: &Server, body: &Value) -> Sent {
        let mut request = self.pool.agent.post(&server.url);
        if let Some(key) = &self.pool.api_key {
            request = request.header("Authorization", &format!("Bearer {key}"));
        }
        let mut response = match request.send_json(body) {
            Ok(response) => response,
            Err(e) => return Sent::Transient(e.to_string()),
        };
        let status = response.status().as_u16();
        let text = match response.body_mut().read_to_string() {
            Ok(text) => text,
            Err(e) => return Sent::Transient(format!("reading the answer: {e}")),
        };
        if status == 429 || status >= 500 {
            return Sent::Transient(format!("status {status}: {}", server_message(&text)));
        }
        if status >= 400 {
            return Sent::Fatal(EndpointError::Rejected {
                url: server.shown.clone(),
                status,
                message: server_message(&text),
            });
        }
        match serde_json::from_str(&text) {
            Ok(answer) => Sent::Answer(answer),
            Err(e) => Sent::Fatal(EndpointError::BadBody {
                url: server.shown.clone(),
                message: e.to_string(),
            }),
        }
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::mpsc;

    use serde_json::json;

    use super::*;
    use crate::llm::model_spec::EndpointUrls;

    /// A server that answers every request with an empty chat completion and hands each
    /// request's JSON body to the returned receiver.
    fn recording_server() -> (String, mpsc::Receiver<Value>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let (bodies, received) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                let body = loop {
                    let n = stream.read(&mut buf).unwrap_or(0);
                    if n == 0 {
                        break None;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).into_owned();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break serde_json::from_slice::<Value>(&request[end + 4..]).ok();
                    }
                };
                if let Some(body) = body {
                    let _ = bodies.send(body);
                }
                let answer = json!({"choices": [{"message": {"content": ""}}]}).to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        (url, received)
    }

    #[test]
    fn template_variables_travel_in_the_request_body() {
        let (url, bodies) = recording_server();
        let mut spec = ModelSpec {
            endpoint: Some(EndpointUrls::One(url)),
            model: Some("qwen3".into()),
            ..ModelSpec::default()
        };
        let open =
            |spec: &ModelSpec| Endpoint::new("judge", spec, Duration::from_secs(10), 1).unwrap();
        let ask = json!({"messages": [{"role": "user", "content": "Hi"}]});
        open(&spec).chat(ask.clone()).unwrap();
        let plain = bodies.recv().unwrap();
        assert!(plain.get("chat_template_kwargs").is_none(), "{plain}");

        spec.chat_template_kwargs =
            ChatTemplateKwargs::parse(r#"{"enable_thinking": false}"#).unwrap();
        open(&spec).chat(ask.clone()).unwrap();
        let body = bodies.recv().unwrap();
        assert_eq!(
            body["chat_template_kwargs"],
            json!({"enable_thinking": false})
        );
        assert_eq!(body["model"], "qwen3");
        // A request that sets its own keeps them.
        let mut own = ask;
        own["chat_template_kwargs"] = json!({"enable_thinking": true});
        open(&spec).chat(own).unwrap();
        let body = bodies.recv().unwrap();
        assert_eq!(
            body["chat_template_kwargs"],
            json!({"enable_thinking": true})
        );
    }
}
