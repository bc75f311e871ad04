//! `accord serve` over real HTTP: the OpenAI chat-completions shape (choices, seeds,
//! log-probs, streaming), OpenAI-style errors, concurrent requests, a pipeline whose judge
//! is an endpoint, endpoint faults, clients that go away mid-answer, and the official
//! `openai` Python client.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use arrow::array::Array;
use common::{Workspace, read_parquet, strings, tiny_long_context};
use serde_json::{Value, json};

/// A running `accord serve`, stopped on drop; its stderr is collected meanwhile.
struct Server {
    child: Child,
    url: String,
    log: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    /// Stops the server and returns what it logged.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log.take().unwrap().join().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(ws: &Workspace, name: &str) -> Server {
    serve_with(ws, name, &[])
}

fn serve_with(ws: &Workspace, name: &str, extra: &[&str]) -> Server {
    let model = tiny_long_context(ws);
    serve_model(ws, &model, name, extra)
}

/// `accord serve` over `model` (a source), published as `name`.
fn serve_model(ws: &Workspace, model: &str, name: &str, extra: &[&str]) -> Server {
    let mut args = vec![
        "serve",
        "--model",
        model,
        "--name",
        name,
        "--port",
        "0",
        "--backend",
        "flex",
    ];
    args.extend_from_slice(extra);
    let mut child = ws
        .command(&common::accord_bin(), &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("http://127.0.0.1:"), "{line:?}");
    Server {
        child,
        url: line.trim().to_string(),
        log: Some(log),
    }
}

fn post(url: &str, body: &Value) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(&format!("{url}/chat/completions"))
        .send_json(body)
        .unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

fn hello(extra: Value) -> Value {
    let mut body = json!({
        "model": "tiny",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}],
        "max_tokens": 6,
        "seed": 11,
        "temperature": 1.0,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[test]
fn chat_completions_follow_the_openai_shape() {
    let ws = Workspace::new();
    let server = serve(&ws, "tiny");
    let models: Value = ureq::get(&format!("{}/models", server.url))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(models["data"][0]["id"], "tiny");

    let (status, text) = post(
        &server.url,
        &hello(json!({"n": 2, "logprobs": true, "top_logprobs": 3})),
    );
    assert_eq!(status, 200, "{text}");
    let reply: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(reply["object"], "chat.completion");
    let choices = reply["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    let mut generated = 0;
    for choice in choices {
        let content = choice["logprobs"]["content"].as_array().unwrap();
        generated += content.len();
        assert!(content.len() <= 6);
        for token in content {
            assert!(token["logprob"].as_f64().unwrap() <= 0.0);
            assert_eq!(token["top_logprobs"].as_array().unwrap().len(), 3);
        }
        assert!(["stop", "length"].contains(&choice["finish_reason"].as_str().unwrap()));
    }
    assert_eq!(reply["usage"]["completion_tokens"], generated);

    // A seed reproduces a reply; streaming sends the same text in pieces.
    let (_, again) = post(
        &server.url,
        &hello(json!({"n": 2, "logprobs": true, "top_logprobs": 3})),
    );
    let again: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(
        again["choices"][0]["message"],
        reply["choices"][0]["message"]
    );
    let (status, events) = post(&server.url, &hello(json!({"stream": true})));
    assert_eq!(status, 200);
    let mut streamed = String::new();
    let mut finished = false;
    let data: Vec<&str> = events
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"));
    for chunk in &data[..data.len() - 1] {
        let chunk: Value = serde_json::from_str(chunk).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        let choice = &chunk["choices"][0];
        streamed.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
        finished |= !choice["finish_reason"].is_null();
    }
    assert!(finished);
    assert_eq!(
        streamed,
        reply["choices"][0]["message"]["content"].as_str().unwrap()
    );
}

/// `--chat-template-kwargs` sets the template variables of every request, and a request's
/// own `chat_template_kwargs` replace them name by name: with the test's Qwen3-style
/// template, thinking off adds an empty think block to the prompt.
#[test]
fn template_variables_come_from_the_server_and_the_request() {
    let ws = Workspace::new();
    let model = tiny_long_context(&ws);
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/chat/qwen3_style.jinja"
        ),
        ws.path().join("tiny/chat_template.jinja"),
    )
    .unwrap();
    let prompt_tokens = |server: &Server, extra: Value| {
        let (status, text) = post(&server.url, &hello(extra));
        assert_eq!(status, 200, "{text}");
        let reply: Value = serde_json::from_str(&text).unwrap();
        reply["usage"]["prompt_tokens"].as_u64().unwrap()
    };
    let plain = serve_model(&ws, &model, "tiny", &[]);
    let thinking = prompt_tokens(&plain, json!({}));
    let off = json!({"chat_template_kwargs": {"enable_thinking": false}});
    let not_thinking = prompt_tokens(&plain, off.clone());
    assert!(not_thinking > thinking, "{not_thinking} vs {thinking}");
    drop(plain);

    let server = serve_model(
        &ws,
        &model,
        "tiny",
        &[
            "--chat-template-kwargs",
            r#"{"enable_thinking": false, "unused": [1]}"#,
        ],
    );
    assert_eq!(prompt_tokens(&server, json!({})), not_thinking);
    assert_eq!(prompt_tokens(&server, off), not_thinking);
    let on = json!({"chat_template_kwargs": {"enable_thinking": true}});
    assert_eq!(prompt_tokens(&server, on), thinking);

    let (status, text) = post(
        &server.url,
        &hello(json!({"chat_template_kwargs": {"messages": []}})),
    );
    assert_eq!(status, 400, "{text}");
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["error"]["param"], "chat_template_kwargs");
    assert_eq!(
        error["error"]["message"],
        "`chat_template_kwargs`: `messages` is set by the chat renderer itself and cannot be passed"
    );
    let (status, _) = post(
        &server.url,
        &hello(json!({"chat_template_kwargs": "enable_thinking"})),
    );
    assert_eq!(status, 400);
}

/// A `--chat-template-kwargs` that is not a JSON object of template variables is refused
/// before any model is loaded, naming the flag.
#[test]
fn unusable_template_variable_flags_are_refused() {
    let ws = Workspace::new();
    for (command, value, says) in [
        (
            "serve",
            "{enable_thinking: false}",
            "not JSON: key must be a string",
        ),
        (
            "serve",
            "false",
            "a boolean is not an object of template variables",
        ),
        (
            "generate",
            r#"{"add_generation_prompt": false}"#,
            "`add_generation_prompt` is set by the chat renderer",
        ),
    ] {
        let mut args = vec![
            command,
            "--model",
            "path:missing.gguf",
            "--chat-template-kwargs",
            value,
        ];
        if command == "generate" {
            args.extend(["--chat", "--prompt", "hi"]);
        }
        let out = ws.accord(&args);
        assert_eq!(out.code, 2, "{}", out.stderr);
        let first = out.stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!(
                "error: invalid value '{value}' for '--chat-template-kwargs <JSON>': "
            )) && first.contains(says),
            "{first}"
        );
    }
}

#[test]
fn bad_requests_get_openai_errors_and_concurrent_requests_are_served() {
    let ws = Workspace::new();
    let server = serve(&ws, "tiny");
    for (body, status, param) in [
        (json!({"model": "tiny", "messages": []}), 400, "messages"),
        (hello(json!({"temperature": 7})), 400, "temperature"),
        (hello(json!({"top_logprobs": 2})), 400, "top_logprobs"),
        (hello(json!({"stop": 3})), 400, "stop"),
        (hello(json!({"stop": ""})), 400, "stop"),
        (hello(json!({"model": "gpt-4o"})), 404, "model"),
    ] {
        let (got, text) = post(&server.url, &body);
        assert_eq!(got, status, "{text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(error["error"]["param"], param, "{text}");
        assert!(error["error"]["message"].as_str().unwrap().len() > 5);
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut raw = agent
        .post(&format!("{}/chat/completions", server.url))
        .content_type("application/json")
        .send("{not json")
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    assert!(
        raw.body_mut()
            .read_to_string()
            .unwrap()
            .contains("not JSON")
    );

    let replies: Vec<(u16, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let url = server.url.clone();
                scope.spawn(move || post(&url, &hello(json!({"seed": i}))))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        replies.iter().all(|(status, _)| *status == 200),
        "{replies:?}"
    );
}

fn judged_spec(policy: &str, judge_url: &str, count: usize) -> String {
    format!(
        "version: 1\nname: endpoint-judge\nseed: 5\nmodels:\n  policy:\n    source: {policy}\n  \
         judge:\n    endpoint: {judge_url}\n    model: tiny\nstages:\n  \
         dilemmas:\n    kind: prompt_synthesis\n    with: {{count: {count}}}\n  \
         pairs:\n    kind: persona_pairing\n    needs: [dilemmas]\n  \
         dialogues:\n    kind: rollout\n    needs: [pairs]\n    with: {{model: policy, group_size: 1, max_turns: 2, max_new_tokens: 4, agreement: marker}}\n  \
         scores:\n    kind: judge\n    needs: [dialogues]\n    with: {{model: judge, no_agreement_score: null, rationale_tokens: 3, attempts: 2, timeout_s: 30}}\n"
    )
}

#[test]
fn a_pipeline_judges_through_accord_serve_and_resumes_after_the_endpoint_fails() {
    let ws = Workspace::new();
    let server = serve(&ws, "tiny");
    let policy = tiny_long_context(&ws);
    ws.write("spec.yaml", &judged_spec(&policy, &server.url, 2));
    let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("scores: 2 computed, 0 cached"),
        "{}",
        out.stderr
    );
    let path = ws.accord(&["show", "spec.yaml", "scores", "--path"]);
    let scores = read_parquet(&ws.path().join(path.stdout.trim()));
    let ca = scores.column_by_name("ca_score").unwrap();
    let ca = ca
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .unwrap();
    let unparseable = scores.column_by_name("unparseable").unwrap();
    for row in 0..scores.num_rows() {
        // Either a valid score or the recorded reply, never a silent 0.
        assert_ne!(ca.is_null(row), unparseable.is_null(row));
        if !ca.is_null(row) {
            assert!((0.0..=5.0).contains(&ca.value(row)));
        }
    }
    if unparseable.null_count() < scores.num_rows() {
        assert!(
            out.stderr.contains("judge replies held no rating"),
            "{}",
            out.stderr
        );
    }

    // The endpoint goes away: two new dialogues cannot be judged; a clear error, nothing lost.
    drop(server);
    let url = judged_spec(&policy, "http://127.0.0.1:9/v1", 4);
    ws.write("spec.yaml", &url);
    let failed = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(failed.code, 1);
    assert!(
        failed.stderr.contains("failed after 2 attempts"),
        "{}",
        failed.stderr
    );

    // Back up (on a new port): only the two new dialogues are judged.
    let server = serve(&ws, "tiny");
    ws.write("spec.yaml", &judged_spec(&policy, &server.url, 4));
    let resumed = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(
        resumed.stderr.contains("scores: 2 computed, 2 cached"),
        "{}",
        resumed.stderr
    );
    assert_eq!(
        strings(
            &read_parquet(
                &ws.path().join(
                    ws.accord(&["show", "spec.yaml", "scores", "--path"])
                        .stdout
                        .trim()
                )
            ),
            "dialogue_id"
        )
        .len(),
        4
    );
}

/// `judged_spec` with the judge served by several URLs, `per_url` requests at a time each.
fn spread_spec(policy: &str, urls: &[&str], per_url: usize, count: usize) -> String {
    let one = judged_spec(policy, "URLS", count);
    one.replace(
        "endpoint: URLS\n",
        &format!(
            "endpoint: [{}]\n    concurrency: {per_url}\n",
            urls.join(", ")
        ),
    )
    .replace("attempts: 2,", "attempts: 2, concurrency: 6,")
}

fn scores_of(ws: &Workspace) -> (Vec<Option<f64>>, Vec<String>) {
    let path = ws.accord(&["show", "spec.yaml", "scores", "--path"]);
    let batch = read_parquet(&ws.path().join(path.stdout.trim()));
    let ca = batch
        .column_by_name("ca_score")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .unwrap()
        .clone();
    let ca = (0..ca.len())
        .map(|i| (!ca.is_null(i)).then(|| ca.value(i)))
        .collect();
    (ca, strings(&batch, "rationale"))
}

#[test]
fn a_judge_spread_over_three_servers_survives_losing_one_with_the_same_results() {
    // One batch per request, so no answer depends on what it was batched with.
    let ws = Workspace::new();
    let servers: Vec<Server> = (0..3)
        .map(|_| serve_with(&ws, "tiny", &["--max-batch", "1"]))
        .collect();
    let policy = tiny_long_context(&ws);
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    let url_refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    ws.write("spec.yaml", &spread_spec(&policy, &url_refs, 2, 8));
    let mut run = ws
        .command(
            &common::accord_bin(),
            &["run", "spec.yaml", "--backend", "flex"],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the second server once the judge has started.
    let mut stderr = BufReader::new(run.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "{seen}");
        seen.push_str(&line);
        if line.starts_with("scores: running") {
            break;
        }
    }
    let mut servers = servers;
    drop(servers.remove(1));
    std::io::Read::read_to_string(&mut stderr, &mut seen).unwrap();
    let exit = run.wait().unwrap();
    assert!(exit.success(), "{seen}");
    assert!(seen.contains("scores: 8 computed, 0 cached"), "{seen}");
    assert!(
        seen.contains(&format!(
            "scores: endpoint {}/chat/completions failed",
            urls[1]
        )) && seen.contains("taken out for"),
        "{seen}"
    );
    let spread = scores_of(&ws);

    // The same judgements from one server alone.
    let alone = Workspace::new();
    let policy = tiny_long_context(&alone);
    alone.write("spec.yaml", &spread_spec(&policy, &[&servers[0].url], 2, 8));
    let out = alone.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let single = scores_of(&alone);
    assert_eq!(spread.0.len(), 8);
    assert_eq!(spread, single);
}

#[test]
fn the_openai_python_client_talks_to_accord_serve() {
    let ws = Workspace::new();
    let server = serve(&ws, "tiny");
    let script = r#"
import sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1], api_key="unused")
print([m.id for m in client.models.list().data])
reply = client.chat.completions.create(
    model="tiny", messages=[{"role": "user", "content": "Hello"}],
    max_tokens=5, seed=3, n=2, logprobs=True, top_logprobs=2)
print(len(reply.choices), reply.usage.completion_tokens, len(reply.choices[0].logprobs.content[0].top_logprobs))
stream = client.chat.completions.create(
    model="tiny", messages=[{"role": "user", "content": "Hello"}], max_tokens=5, seed=3, stream=True)
text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
print(text == reply.choices[0].message.content)
try:
    client.chat.completions.create(model="tiny", messages=[])
except Exception as e:
    print(type(e).__name__, getattr(e, "status_code", None))
for path in ["/nope", "/chat/completions"]:
    try:
        client.get(path, cast_to=object)
    except Exception as e:
        print(type(e).__name__, e.status_code, e.code, e.type)
"#;
    ws.write("client.py", script);
    let out = common::run({
        let mut cmd = std::process::Command::new("python3");
        cmd.arg(ws.path().join("client.py")).arg(&server.url);
        cmd
    });
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "['tiny']");
    assert!(lines[1].starts_with("2 "), "{}", out.stdout);
    assert!(lines[1].ends_with(" 2"), "{}", out.stdout);
    assert_eq!(lines[2], "True", "streamed text equals the reply");
    assert_eq!(lines[3], "BadRequestError 400");
    assert_eq!(
        lines[4],
        "NotFoundError 404 unknown_url invalid_request_error"
    );
    assert_eq!(
        lines[5],
        "APIStatusError 405 method_not_allowed invalid_request_error"
    );
}

/// `host:port` of a server's URL.
fn address(server: &Server) -> String {
    let rest = server.url.strip_prefix("http://").unwrap();
    rest[..rest.find('/').unwrap()].to_string()
}

/// Sends a chat request over a raw connection (so the test decides when it closes).
fn send_raw(server: &Server, body: &Value) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(address(server)).unwrap();
    let body = body.to_string();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    stream
}

/// A request for as many tokens as the context allows: greedy, so the tiny model never
/// stops early, and minutes of work for each client under a server that ignored them.
fn long_answer(stream: bool) -> Value {
    hello(json!({"max_tokens": 4000, "temperature": 0, "stream": stream}))
}

/// The server's "client went away" lines, each with the tokens the request had generated.
fn gone_lines(log: &str) -> Vec<(String, usize)> {
    log.lines()
        .filter(|l| l.contains("the client went away"))
        .map(|l| {
            let generated = l.split_once("after ").map_or(0, |(_, rest)| {
                rest.split(' ').next().unwrap().parse().unwrap()
            });
            (l.to_string(), generated)
        })
        .collect()
}

/// Whether a raw event stream holds a chunk with generated text (not only the role).
fn has_text(raw: &str) -> bool {
    raw.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .any(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|text| !text.is_empty())
        })
}

#[test]
fn streaming_clients_that_disconnect_leave_the_batch_and_later_requests_are_answered() {
    use std::io::Read;
    let ws = Workspace::new();
    let server = serve_with(&ws, "tiny", &["--max-batch", "4"]);
    // Three batches' worth of clients, each gone after its first piece of text.
    std::thread::scope(|scope| {
        for _ in 0..12 {
            scope.spawn(|| {
                let mut stream = send_raw(&server, &long_answer(true));
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !has_text(&String::from_utf8_lossy(&seen)) {
                    let n = stream.read(&mut buf).unwrap();
                    assert!(n > 0, "{}", String::from_utf8_lossy(&seen));
                    seen.extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    // Every client above has its answer started; this one queues behind them all.
    let (status, text) = post(&server.url, &hello(json!({})));
    assert_eq!(status, 200, "{text}");
    let log = server.stop();
    let gone = gone_lines(&log);
    assert_eq!(gone.len(), 12, "{log}");
    for (line, generated) in gone {
        assert!(line.contains("its sequence left the batch"), "{line}");
        assert!(generated < 4000, "{line}");
    }
}

#[test]
fn a_non_streaming_client_that_closes_its_socket_stops_its_generation() {
    let ws = Workspace::new();
    let server = serve(&ws, "tiny");
    let stream = send_raw(&server, &long_answer(false));
    // Pacing only (a client giving up), not a measurement: either way the request goes.
    std::thread::sleep(std::time::Duration::from_millis(200));
    drop(stream);
    let (status, text) = post(&server.url, &hello(json!({})));
    assert_eq!(status, 200, "{text}");
    let log = server.stop();
    let gone = gone_lines(&log);
    assert_eq!(gone.len(), 1, "{log}");
    let (line, generated) = &gone[0];
    assert!(
        line.contains("before its turn") || *generated < 4000,
        "{line}"
    );
}

/// Reads one HTTP response off `stream`: status, lower-cased headers, body.
fn read_response(stream: &mut std::net::TcpStream) -> (u16, String, String) {
    use std::io::Read;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&bytes).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if bytes.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                return (status, head, text[end + 4..end + 4 + length].to_string());
            }
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "{text}");
        bytes.extend_from_slice(&buf[..n]);
    }
}

/// Asserts `body` is an OpenAI error with `code` and returns its message.
fn openai_error(head: &str, body: &str, code: &str) -> String {
    assert!(head.contains("content-type: application/json"), "{head}");
    let error: Value = serde_json::from_str(body).unwrap();
    let error = &error["error"];
    assert_eq!(error["type"], "invalid_request_error", "{body}");
    assert_eq!(error["code"], code, "{body}");
    assert!(error.as_object().unwrap().contains_key("param"), "{body}");
    error["message"].as_str().unwrap().to_string()
}

#[test]
fn unknown_routes_wrong_methods_and_oversized_bodies_get_openai_errors() {
    use std::io::Write;
    let ws = Workspace::new();
    let server = serve(&ws, "tiny");
    let raw = |request: &str| {
        let mut stream = std::net::TcpStream::connect(address(&server)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        read_response(&mut stream)
    };
    let (status, head, body) = raw("GET /v1/nope HTTP/1.1\r\nhost: test\r\n\r\n");
    assert_eq!(status, 404);
    let message = openai_error(&head, &body, "unknown_url");
    assert!(message.contains("`GET /v1/nope`"), "{message}");
    insta::assert_snapshot!("serve_unknown_route", body);
    let (status, head, body) = raw("GET /v1/chat/completions HTTP/1.1\r\nhost: test\r\n\r\n");
    assert_eq!(status, 405);
    assert!(head.contains("allow: post"), "{head}");
    openai_error(&head, &body, "method_not_allowed");
    insta::assert_snapshot!("serve_wrong_method", body);
    let (status, head, body) = raw("DELETE /v1/models HTTP/1.1\r\nhost: test\r\n\r\n");
    assert_eq!(status, 405);
    openai_error(&head, &body, "method_not_allowed");

    // A body past the limit: it announces 3 MiB, and the answer comes once 2 MiB are in.
    let mut stream = std::net::TcpStream::connect(address(&server)).unwrap();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        3 << 20
    )
    .unwrap();
    stream.write_all(&vec![b' '; (2 << 20) + 1]).unwrap();
    let (status, head, body) = read_response(&mut stream);
    assert_eq!(status, 413);
    let message = openai_error(&head, &body, "request_too_large");
    assert!(message.contains("2 MiB"), "{message}");
    insta::assert_snapshot!("serve_body_too_large", body);
}

/// A stand-in endpoint that answers every request with a reply holding no rating (the
/// fault under test), after checking the API key it was sent. Returns its base URL.
fn garbage_endpoint(expected_key: &'static str) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head, then the body its Content-Length announces.
            loop {
                let n = stream.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            let head = String::from_utf8_lossy(&request).to_ascii_lowercase();
            let authorised = head.contains(&format!("authorization: bearer {expected_key}"));
            let (status, body) = if authorised {
                (
                    "200 OK",
                    json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "I cannot rate this."}, "finish_reason": "stop"}]}),
                )
            } else {
                ("401 Unauthorized", json!({"error": {"message": "bad key"}}))
            };
            let body = body.to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn replies_without_a_rating_are_counted_not_scored_and_the_key_stays_secret() {
    let ws = Workspace::new();
    let url = garbage_endpoint("s3cret-key-42");
    let policy = tiny_long_context(&ws);
    let spec = judged_spec(&policy, &url, 2).replace(
        "    model: tiny\nstages:",
        "    model: tiny\n    api_key_env: JUDGE_KEY_FOR_TEST\nstages:",
    );
    ws.write("spec.yaml", &spec);
    let missing = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("`JUDGE_KEY_FOR_TEST`") && missing.stderr.contains("is not set"),
        "{}",
        missing.stderr
    );
    let out = run_with_key(&ws);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("scores: 2 of 2 judge replies held no rating"),
        "{}",
        out.stderr
    );
    let path = ws.accord(&["show", "spec.yaml", "scores", "--path"]);
    let scores = read_parquet(&ws.path().join(path.stdout.trim()));
    assert_eq!(
        scores.column_by_name("ca_score").unwrap().null_count(),
        2,
        "never scored 0"
    );
    assert_eq!(
        strings(&scores, "unparseable"),
        vec!["I cannot rate this."; 2]
    );
    // The key reached the endpoint (it answered) but no file of the store holds it.
    for file in common::files_below(&ws.path().join(".accord")) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("s3cret-key-42"),
            "{}",
            file.display()
        );
    }
}

fn run_with_key(ws: &Workspace) -> common::Output {
    let mut cmd = ws.command(
        &common::accord_bin(),
        &["run", "spec.yaml", "--backend", "flex"],
    );
    cmd.env("JUDGE_KEY_FOR_TEST", "s3cret-key-42");
    common::run(cmd)
}
