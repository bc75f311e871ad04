//! An OpenAI-compatible HTTP server over the in-process engine (`accord serve`).
//!
//! `GET /v1/models` and `POST /v1/chat/completions` (with `n`, `seed`, `temperature`,
//! `top_p`, `max_tokens`, `stop`, `logprobs`/`top_logprobs`, `stream` and, as vLLM and
//! SGLang take it, `chat_template_kwargs`, whose variables replace the server's own
//! (`accord serve --chat-template-kwargs`) name by name). One worker
//! thread owns the model; requests that arrive while it is busy wait in a queue and are
//! decoded together in the next batch, each with its own sampling settings and seed. Every
//! answer that is not a success (a bad request, an unknown route or method, a body over
//! [`BODY_LIMIT`], a failed generation) is an OpenAI-style JSON error. This module does
//! not authenticate: it binds to the loopback address unless told otherwise.
//!
//! # Clients that have gone
//!
//! A request's tokens travel from the worker to its handler over a channel, and the
//! worker sends each token as it is sampled: when that send fails, nobody is listening,
//! and the request's sequences leave the batch before the next step (see
//! [`generate`](super::generate::generate)); a request whose client left while it
//! waited in the queue is skipped. The handler's end of the channel goes away with the
//! client:
//! - non-streaming: hyper watches a busy HTTP/1 connection for EOF and drops the
//!   request's future when the client closes its socket (a timed-out client, say); an
//!   HTTP/2 stream reset does the same. The receiver is dropped with the future. Hyper
//!   reads only when its buffer is empty, so it never consumes a pipelined request; the
//!   flip side is that a client gone with a pipelined request still unread is noticed
//!   only when its answer is written. No per-request socket polling of our own is needed.
//! - streaming: the same drop takes the response body, and with it the receiving end of
//!   the event stream; the task that turns tokens into chunks waits on that closing as
//!   well as on the next token, and returns (dropping its receiver) as soon as it closes.
//!
//! Each such request is logged on stderr (unless `--quiet`) with the tokens it had
//! generated. A client that only half-closes its socket after sending counts as gone.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::chat::Message;
use super::chat_template_kwargs::ChatTemplateKwargs;
use super::generate::{Completion, Finish, Request, generate};
use super::loaded::LoadedModel;
use super::sampling::Sampling;

/// What the worker sends back about one job.
enum Progress {
    /// Choice `index` produced `token`.
    Token {
        index: usize,
        token: u32,
    },
    Done(Result<Vec<Completion>, String>),
}

/// One chat request: its id, its choices, and where to report.
struct Job {
    id: String,
    requests: Vec<Request>,
    events: UnboundedSender<Progress>,
}

impl Job {
    /// Whether the request's client has gone (its handler dropped its receiver).
    fn is_gone(&self) -> bool {
        self.events.is_closed()
    }
}

/// The most bytes a request body may have.
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

#[derive(Clone)]
struct Served {
    model: Arc<LoadedModel>,
    name: String,
    jobs: mpsc::Sender<Job>,
}

/// The server's routes over `model`, published as `name`; at most `max_batch` sequences
/// decode together. Unless `quiet`, requests whose client has gone are logged on stderr.
pub fn router(model: Arc<LoadedModel>, name: &str, max_batch: usize, quiet: bool) -> Router {
    let (jobs, queue) = mpsc::channel::<Job>();
    let worker = model.clone();
    std::thread::spawn(move || run_worker(&worker, &queue, max_batch.max(1), quiet));
    Router::new()
        .route("/v1/models", get(list_models))
        .route("/v1/chat/completions", post(chat_completions))
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(Served {
            model,
            name: name.to_string(),
            jobs,
        })
}

/// Takes jobs off the queue and decodes whatever is waiting in one batch of at most
/// `max_batch` sequences (a single larger request runs alone). Jobs whose client has gone
/// are skipped, or leave the batch at their next token; a panic while decoding fails that
/// batch's requests, not the server.
fn run_worker(model: &LoadedModel, queue: &mpsc::Receiver<Job>, max_batch: usize, quiet: bool) {
    let log = |line: String| {
        if !quiet {
            anstream::eprintln!("{line}");
        }
    };
    let skip = |job: &Job| {
        let gone = job.is_gone();
        if gone {
            log(gone_before_its_turn(job));
        }
        gone
    };
    let mut held: Option<Job> = None;
    loop {
        let first = match held.take() {
            Some(job) => job,
            None => match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        if skip(&first) {
            continue;
        }
        let mut jobs = vec![first];
        // Whatever else arrived meanwhile joins the batch, up to `max_batch` sequences.
        std::thread::sleep(Duration::from_millis(2));
        let mut size = jobs[0].requests.len();
        while size < max_batch {
            match queue.try_recv() {
                Ok(job) if skip(&job) => {}
                Ok(job) if size + job.requests.len() > max_batch => {
                    held = Some(job);
                    break;
                }
                Ok(job) => {
                    size += job.requests.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let mut owners = Vec::new(); // row → (job, choice)
        let mut requests = Vec::new();
        for (j, job) in jobs.iter().enumerate() {
            for (choice, request) in job.requests.iter().enumerate() {
                owners.push((j, choice));
                requests.push(request.clone());
            }
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            generate(
                &model.model,
                &model.tokenizer,
                &requests,
                &model.stop_tokens,
                // A failed send means the client has gone: the row leaves the batch.
                |row, token| {
                    let (j, index) = owners[row];
                    jobs[j]
                        .events
                        .send(Progress::Token { index, token })
                        .is_ok()
                },
            )
        }))
        .unwrap_or_else(|_| {
            Err(super::LlmError::Generation(
                "decoding failed (the engine panicked)".into(),
            ))
        });
        match result {
            Ok(completions) => {
                let mut per_job: Vec<Vec<Completion>> = vec![Vec::new(); jobs.len()];
                for ((j, _), completion) in owners.iter().zip(completions) {
                    per_job[*j].push(completion);
                }
                for (job, completions) in jobs.iter().zip(per_job) {
                    if completions.iter().any(|c| c.finish == Finish::Dropped) {
                        log(gone_line(job, &completions));
                    } else {
                        let _ = job.events.send(Progress::Done(Ok(completions)));
                    }
                }
            }
            Err(e) => {
                for job in &jobs {
                    let _ = job.events.send(Progress::Done(Err(e.to_string())));
                }
            }
        }
    }
}

/// The log line for a request whose client went away while it waited in the queue.
fn gone_before_its_turn(job: &Job) -> String {
    format!(
        "`{}`: the client went away before its turn; nothing was generated",
        job.id
    )
}

/// The log line for a request whose client went away mid-generation.
fn gone_line(job: &Job, completions: &[Completion]) -> String {
    let generated: usize = completions.iter().map(|c| c.tokens.len()).sum();
    let most: usize = job.requests.iter().map(|r| r.max_new_tokens).sum();
    let sequences = match completions.len() {
        1 => "its sequence".to_string(),
        n => format!("its {n} sequences"),
    };
    format!(
        "`{}`: the client went away; {sequences} left the batch after {generated} of at most {most} tokens",
        job.id
    )
}

/// An OpenAI-style error: `{"error": {"message", "type", "param", "code"}}`.
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    param: Option<String>,
    code: Option<&'static str>,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}
        });
        (self.status, axum::Json(body)).into_response()
    }
}

fn error(status: StatusCode, kind: &'static str, param: Option<&str>, message: String) -> ApiError {
    ApiError {
        status,
        kind,
        param: param.map(String::from),
        code: None,
        message,
    }
}

impl ApiError {
    fn with_code(self, code: &'static str) -> Self {
        Self {
            code: Some(code),
            ..self
        }
    }
}

/// What this server answers, for the 404 and 405 messages.
const ROUTES: &str = "`GET /v1/models` and `POST /v1/chat/completions`";

async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        None,
        format!(
            "no route `{method} {}`; this server answers {ROUTES}",
            uri.path()
        ),
    )
    .with_code("unknown_url")
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        None,
        format!(
            "method `{method}` is not allowed on `{}`; this server answers {ROUTES}",
            uri.path()
        ),
    )
    .with_code("method_not_allowed")
}

/// A body that could not be read: over [`BODY_LIMIT`] (413), or cut off.
fn unreadable_body(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return error(
            status,
            "invalid_request_error",
            None,
            format!(
                "the request body is over this server's limit of {} MiB",
                BODY_LIMIT / (1024 * 1024)
            ),
        )
        .with_code("request_too_large");
    }
    error(
        status,
        "invalid_request_error",
        None,
        format!(
            "the request body could not be read: {}",
            rejection.body_text()
        ),
    )
}

fn bad_request(param: &str, message: impl Into<String>) -> ApiError {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        Some(param),
        message.into(),
    )
}

async fn list_models(State(served): State<Served>) -> Response {
    axum::Json(json!({
        "object": "list",
        "data": [{"id": served.name, "object": "model", "created": 0, "owned_by": "accord"}],
    }))
    .into_response()
}

/// A validated chat request.
struct Parsed {
    messages: Vec<Message>,
    /// The server's template variables, overridden by the request's.
    chat_template_kwargs: ChatTemplateKwargs,
    n: usize,
    seed: Option<u64>,
    sampling: Sampling,
    max_tokens: usize,
    stop: Vec<String>,
    logprobs: bool,
    top_logprobs: usize,
    stream: bool,
}

fn parse(body: &Value, served: &Served) -> Result<Parsed, ApiError> {
    let Some(body) = body.as_object() else {
        return Err(bad_request("body", "the body must be a JSON object"));
    };
    match body.get("model").and_then(Value::as_str) {
        None => return Err(bad_request("model", "`model` is required")),
        Some(model) if model != served.name => {
            return Err(error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                Some("model"),
                format!(
                    "the model `{model}` does not exist; this server has `{}`",
                    served.name
                ),
            )
            .with_code("model_not_found"));
        }
        Some(_) => {}
    }
    let Some(raw) = body.get("messages").and_then(Value::as_array) else {
        return Err(bad_request("messages", "`messages` must be an array"));
    };
    if raw.is_empty() {
        return Err(bad_request("messages", "`messages` is empty"));
    }
    let mut messages = Vec::with_capacity(raw.len());
    for (i, m) in raw.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str);
        let content = match m.get("content") {
            Some(Value::String(text)) => Some(text.clone()),
            Some(Value::Array(parts)) => parts
                .iter()
                .map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Option<Vec<_>>>()
                .map(|t| t.concat()),
            _ => None,
        };
        match (role, content) {
            (Some(role @ ("system" | "user" | "assistant" | "developer")), Some(content)) => {
                let role = if role == "developer" { "system" } else { role };
                messages.push(Message::new(role, &content));
            }
            _ => {
                return Err(bad_request(
                    &format!("messages[{i}]"),
                    "each message needs a `role` (system, user or assistant) and a text `content`",
                ));
            }
        }
    }
    let number = |name: &str| body.get(name).filter(|v| !v.is_null());
    let float = |name: &str, default: f64, low: f64, high: f64| -> Result<f64, ApiError> {
        match number(name) {
            None => Ok(default),
            Some(v) => match v.as_f64() {
                Some(x) if (low..=high).contains(&x) => Ok(x),
                _ => Err(bad_request(
                    name,
                    format!("`{name}` must be a number from {low} to {high}"),
                )),
            },
        }
    };
    let integer = |name: &str, default: u64, low: u64, high: u64| -> Result<u64, ApiError> {
        match number(name) {
            None => Ok(default),
            Some(v) => match v.as_u64() {
                Some(x) if (low..=high).contains(&x) => Ok(x),
                _ => Err(bad_request(
                    name,
                    format!("`{name}` must be an integer from {low} to {high}"),
                )),
            },
        }
    };
    let temperature = float("temperature", 1.0, 0.0, 2.0)?;
    let top_p = float("top_p", 1.0, 0.0, 1.0)?;
    if top_p == 0.0 {
        return Err(bad_request("top_p", "`top_p` must be above 0"));
    }
    let n = integer("n", 1, 1, 16)? as usize;
    let limit = served.model.model.config.max_positions as u64;
    let max_tokens = match number("max_completion_tokens") {
        Some(_) => integer("max_completion_tokens", 256, 1, limit)?,
        None => integer("max_tokens", 256, 1, limit)?,
    } as usize;
    let seed = match number("seed") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .or_else(|| v.as_i64().map(|x| x as u64))
                .ok_or_else(|| bad_request("seed", "`seed` must be an integer"))?,
        ),
    };
    let stop = match number("stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.len() <= 4 => items
            .iter()
            .map(|s| s.as_str().map(String::from))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad_request("stop", "`stop` must be a string or up to 4 strings"))?,
        Some(_) => {
            return Err(bad_request(
                "stop",
                "`stop` must be a string or up to 4 strings",
            ));
        }
    };
    if stop.iter().any(String::is_empty) {
        return Err(bad_request("stop", "a stop sequence cannot be empty"));
    }
    let logprobs = match number("logprobs") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| bad_request("logprobs", "`logprobs` must be true or false"))?,
    };
    let top_logprobs = integer("top_logprobs", 0, 0, 20)? as usize;
    if top_logprobs > 0 && !logprobs {
        return Err(bad_request(
            "top_logprobs",
            "`top_logprobs` needs `logprobs: true`",
        ));
    }
    let chat_template_kwargs = match number("chat_template_kwargs") {
        None => served.model.chat_template_kwargs.clone(),
        Some(v) => served.model.chat_template_kwargs.overridden_by(
            &ChatTemplateKwargs::from_json(v.clone()).map_err(|e| {
                bad_request(
                    "chat_template_kwargs",
                    format!("`chat_template_kwargs`: {e}"),
                )
            })?,
        ),
    };
    let stream = match number("stream") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| bad_request("stream", "`stream` must be true or false"))?,
    };
    Ok(Parsed {
        messages,
        chat_template_kwargs,
        n,
        seed,
        sampling: Sampling {
            temperature: temperature as f32,
            top_k: 0,
            top_p: top_p as f32,
        },
        max_tokens,
        stop,
        logprobs,
        top_logprobs,
        stream,
    })
}

/// Seeds for requests that give none: distinct per request, not reproducible.
fn fresh_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn chat_completions(
    State(served): State<Served>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match body.map_err(unreadable_body) {
        Ok(body) => answer(served, body)
            .await
            .unwrap_or_else(|e| e.into_response()),
        Err(e) => e.into_response(),
    }
}

async fn answer(served: Served, body: Bytes) -> Result<Response, ApiError> {
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| bad_request("body", format!("the body is not JSON: {e}")))?;
    let parsed = parse(&body, &served)?;
    let model = &served.model;
    let prompt = match model
        .chat_prompt_with(&parsed.messages, &parsed.chat_template_kwargs)
        .and_then(|text| model.tokenizer.encode(&text))
    {
        Ok(ids) => ids,
        Err(e) => return Err(bad_request("messages", e.to_string())),
    };
    if prompt.len() >= model.model.config.max_positions {
        return Err(bad_request(
            "messages",
            format!(
                "the prompt has {} tokens; the model's context holds {}",
                prompt.len(),
                model.model.config.max_positions
            ),
        ));
    }
    let base_seed = parsed.seed.unwrap_or_else(fresh_seed);
    let requests: Vec<Request> = (0..parsed.n)
        .map(|i| Request {
            prompt: prompt.clone(),
            sampling: parsed.sampling,
            max_new_tokens: parsed.max_tokens,
            seed: base_seed.wrapping_add(i as u64),
            stop_strings: parsed.stop.clone(),
            top_logprobs: if parsed.logprobs {
                parsed.top_logprobs.max(1)
            } else {
                0
            },
        })
        .collect();
    let id = format!("chatcmpl-{:016x}", fresh_seed());
    let (events, mut progress) = unbounded_channel();
    let job = Job {
        id: id.clone(),
        requests,
        events,
    };
    if served.jobs.send(job).is_err() {
        return Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            None,
            "the model worker has stopped".into(),
        ));
    }
    if parsed.stream {
        return Ok(stream_response(served.clone(), parsed, id, progress).into_response());
    }
    loop {
        match progress.recv().await {
            Some(Progress::Token { .. }) => {}
            Some(Progress::Done(Ok(completions))) => {
                let choices: Vec<Value> = completions
                    .iter()
                    .enumerate()
                    .map(|(i, c)| choice_json(&served, &parsed, i, c))
                    .collect();
                let generated: usize = completions.iter().map(|c| content_tokens(c).len()).sum();
                return Ok(axum::Json(json!({
                    "id": id,
                    "object": "chat.completion",
                    "created": unix_now(),
                    "model": served.name,
                    "choices": choices,
                    "usage": {
                        "prompt_tokens": prompt.len(),
                        "completion_tokens": generated,
                        "total_tokens": prompt.len() + generated,
                    },
                }))
                .into_response());
            }
            Some(Progress::Done(Err(message))) => {
                return Err(error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    None,
                    message,
                ));
            }
            None => {
                return Err(error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    None,
                    "the model worker stopped mid-request".into(),
                ));
            }
        }
    }
}

/// The generated tokens without a closing stop token.
fn content_tokens(c: &Completion) -> &[u32] {
    match c.finish {
        Finish::StopToken => &c.tokens[..c.tokens.len() - 1],
        _ => &c.tokens,
    }
}

fn finish_reason(c: &Completion) -> &'static str {
    match c.finish {
        Finish::StopToken | Finish::StopString => "stop",
        Finish::Length => "length",
        // Never sent: a dropped request has nobody to answer.
        Finish::Dropped => "cancelled",
    }
}

fn token_json(served: &Served, token: u32, logprob: f32) -> Value {
    let text = served.model.tokenizer.decode(&[token]).unwrap_or_default();
    json!({"token": text, "logprob": logprob, "bytes": text.as_bytes()})
}

fn choice_json(served: &Served, parsed: &Parsed, index: usize, c: &Completion) -> Value {
    let logprobs = if parsed.logprobs {
        let content: Vec<Value> = content_tokens(c)
            .iter()
            .enumerate()
            .map(|(step, &token)| {
                let mut entry = token_json(served, token, c.logprobs[step]);
                let top: Vec<Value> = c.top_logprobs[step]
                    .iter()
                    .take(parsed.top_logprobs)
                    .map(|&(t, lp)| token_json(served, t, lp))
                    .collect();
                entry["top_logprobs"] = Value::Array(top);
                entry
            })
            .collect();
        json!({ "content": content })
    } else {
        Value::Null
    };
    json!({
        "index": index,
        "message": {"role": "assistant", "content": c.text},
        "logprobs": logprobs,
        "finish_reason": finish_reason(c),
    })
}

/// Server-sent events fed from a channel.
struct EventStream(UnboundedReceiver<Result<Event, Infallible>>);

impl futures_core::Stream for EventStream {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// Streams each choice's text as it is generated, OpenAI's `chat.completion.chunk`s.
fn stream_response(
    served: Served,
    parsed: Parsed,
    id: String,
    mut progress: UnboundedReceiver<Progress>,
) -> Sse<EventStream> {
    let (sender, receiver) = unbounded_channel();
    tokio::spawn(async move {
        let created = unix_now();
        let chunk = |choices: Value| {
            let body = json!({
                "id": id, "object": "chat.completion.chunk", "created": created,
                "model": served.name, "choices": choices,
            });
            Ok(Event::default().data(body.to_string()))
        };
        for index in 0..parsed.n {
            let _ = sender.send(chunk(json!([{
                "index": index, "delta": {"role": "assistant", "content": ""}, "finish_reason": Value::Null
            }])));
        }
        // Text is held back until it cannot be the start of a stop string.
        let hold = parsed.stop.iter().map(String::len).max().unwrap_or(0);
        let mut tokens: Vec<Vec<u32>> = vec![Vec::new(); parsed.n];
        let mut sent: Vec<usize> = vec![0; parsed.n];
        loop {
            // The client gone (its body dropped), `progress` goes too: the worker drops
            // the request at its next token.
            let event = tokio::select! {
                event = progress.recv() => event,
                () = sender.closed() => return,
            };
            let Some(event) = event else { break };
            match event {
                Progress::Token { index, token } => {
                    if served.model.stop_tokens.contains(&token) {
                        continue;
                    }
                    tokens[index].push(token);
                    let Ok(mut text) = served.model.tokenizer.decode(&tokens[index]) else {
                        continue;
                    };
                    if let Some(cut) = parsed.stop.iter().filter_map(|s| text.find(s)).min() {
                        text.truncate(cut);
                    }
                    let mut safe = text.len().saturating_sub(hold);
                    while !text.is_char_boundary(safe) {
                        safe -= 1;
                    }
                    if safe > sent[index] && !text[..safe].ends_with('\u{fffd}') {
                        let piece = &text[sent[index]..safe];
                        let _ = sender.send(chunk(json!([{
                            "index": index, "delta": {"content": piece}, "finish_reason": Value::Null
                        }])));
                        sent[index] = safe;
                    }
                }
                Progress::Done(Ok(completions)) => {
                    for (index, c) in completions.iter().enumerate() {
                        if c.text.len() > sent[index] && c.text.is_char_boundary(sent[index]) {
                            let _ = sender.send(chunk(json!([{
                                "index": index, "delta": {"content": &c.text[sent[index]..]},
                                "finish_reason": Value::Null
                            }])));
                        }
                        let _ = sender.send(chunk(json!([{
                            "index": index, "delta": {}, "finish_reason": finish_reason(c)
                        }])));
                    }
                    break;
                }
                Progress::Done(Err(message)) => {
                    let body = json!({
                        "error": {"message": message, "type": "server_error", "param": Value::Null, "code": Value::Null}
                    });
                    let _ = sender.send(Ok(Event::default().data(body.to_string())));
                    break;
                }
            }
        }
        let _ = sender.send(Ok(Event::default().data("[DONE]")));
    });
    Sse::new(EventStream(receiver))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(n: usize) -> Job {
        let request = Request {
            prompt: vec![1, 2],
            sampling: Sampling::greedy(),
            max_new_tokens: 100,
            seed: 0,
            stop_strings: Vec::new(),
            top_logprobs: 0,
        };
        Job {
            id: "chatcmpl-00000000000000ab".into(),
            requests: vec![request; n],
            events: unbounded_channel().0,
        }
    }

    fn dropped(tokens: usize) -> Completion {
        Completion {
            tokens: vec![7; tokens],
            logprobs: vec![-1.0; tokens],
            text: String::new(),
            finish: Finish::Dropped,
            top_logprobs: Vec::new(),
        }
    }

    #[test]
    fn clients_that_went_away_are_logged_with_what_they_cost() {
        let lines = [
            gone_before_its_turn(&job(1)),
            gone_line(&job(1), &[dropped(3)]),
            gone_line(&job(2), &[dropped(3), dropped(4)]),
        ];
        insta::assert_snapshot!(lines.join("\n"));
    }
}
