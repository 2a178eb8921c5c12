//! SIGTERM under load. Sixteen raw HTTP/1.1 clients, each on its own
//! keep-alive connection, send postbacks (half of them) or click → conversion
//! pairs (the other half) as fast as they are answered; once a few hundred
//! have been answered the server gets SIGTERM. The test asserts:
//!
//! 1. the process exits 0;
//! 2. no client ever sees a partial response: each request either gets a
//!    complete response (status line, headers, the whole Content-Length
//!    body), or gets no byte of a response at all (the connection is refused,
//!    or closed or reset before a response starts); the second kind happens
//!    only after SIGTERM was sent (an idle keep-alive connection is closed, a
//!    new connection is refused), and a client may safely retry it since
//!    postbacks and conversions are idempotent;
//! 3. every complete response is 201 (recorded) or 503 (refused, retryable);
//! 4. every request answered 201 is in the store after a restart: sending it
//!    again answers 200 "duplicate" with the same lead or conversion id, and
//!    the campaign's stats count at least as many records as were answered;
//! 5. every request that got no response was never processed: sending it
//!    again after the restart answers 201 "recorded". (A server that dropped
//!    requests in flight, having written them but not answered, fails here.)

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CLIENTS: usize = 16;
/// Answered requests before SIGTERM is sent.
const WARM: usize = 300;

/// What one request got back.
enum Outcome {
    Complete {
        status: u16,
        head: String,
        body: String,
        close: bool,
    },
    /// Not one byte of a response (write failed, or EOF / reset before it).
    Nothing(String),
    /// Some of a response, then the connection ended: what must never happen.
    Partial(String),
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Writes one request and reads exactly one response.
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> Outcome {
    if let Err(e) = stream.write_all(request).await {
        return Outcome::Nothing(format!("write: {e}"));
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head = loop {
        if let Some(end) = head_end(&buf) {
            break end;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) if buf.is_empty() => return Outcome::Nothing("closed before a response".into()),
            Ok(0) => return Outcome::Partial(format!("EOF inside the head: {:?}", String::from_utf8_lossy(&buf))),
            Err(e) => return Outcome::Partial(format!("{e} inside the head")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let text = String::from_utf8_lossy(&buf[..head]).to_ascii_lowercase();
    let status: u16 = text.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let header = |name: &str| text.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()));
    let length: usize = header("content-length:").and_then(|v| v.parse().ok()).expect("responses carry a length");
    let close = header("connection:").is_some_and(|v| v == "close");
    while buf.len() < head + length {
        match stream.read(&mut chunk).await {
            Ok(0) => return Outcome::Partial(format!("EOF after {} of {length} body bytes", buf.len() - head)),
            Err(e) => return Outcome::Partial(format!("{e} after {} of {length} body bytes", buf.len() - head)),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&buf[head..head + length]).into_owned();
    Outcome::Complete { status, head: String::from_utf8_lossy(&buf[..head]).into_owned(), body, close }
}

fn post(path: &str, key: &str, body: &Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "POST {path} HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn click(code: &str) -> Vec<u8> {
    format!("GET /r/{code} HTTP/1.1\r\nhost: t\r\nuser-agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0\r\n\r\n")
        .into_bytes()
}

/// A request answered 201, to look for after the restart.
#[derive(Clone, Debug)]
enum Ack {
    Lead { external_id: String, lead_id: String },
    Conversion { click_token: String, conversion_id: String },
}

#[derive(Default)]
struct Shared {
    terminated: AtomicBool,
    answered: AtomicUsize,
    answered_after_term: AtomicUsize,
    refused_after_term: AtomicUsize,
    acks: Mutex<Vec<Ack>>,
    /// Postbacks (external ids) and conversions (click tokens) sent without
    /// any response.
    unanswered: Mutex<Vec<Ack>>,
    failures: Mutex<Vec<String>>,
}

impl Shared {
    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }

    /// Classifies one outcome: a complete response's status, head, JSON body
    /// and whether the server closes the connection after it; `Err` when
    /// there is no response (the caller reconnects).
    fn judge(&self, outcome: Outcome, what: &str) -> Result<(u16, String, Value, bool), ()> {
        match outcome {
            Outcome::Complete { status, head, body, close } => {
                self.answered.fetch_add(1, Ordering::SeqCst);
                if self.terminated.load(Ordering::SeqCst) {
                    self.answered_after_term.fetch_add(1, Ordering::SeqCst);
                }
                let json = serde_json::from_str(&body).unwrap_or(Value::Null);
                Ok((status, head, json, close))
            }
            Outcome::Nothing(e) => {
                if self.terminated.load(Ordering::SeqCst) {
                    self.refused_after_term.fetch_add(1, Ordering::SeqCst);
                } else {
                    self.fail(format!("{what}: no response before SIGTERM was sent ({e})"));
                }
                Err(())
            }
            Outcome::Partial(e) => {
                self.fail(format!("{what}: partial response: {e}"));
                Err(())
            }
        }
    }
}

/// One request or click → conversion pair; `Err` means reconnect.
async fn one(stream: &mut TcpStream, w: &World, shared: &Shared, client: usize, n: usize) -> Result<bool, ()> {
    if client % 2 == 0 {
        let external_id = format!("sigterm-{client}-{n}");
        let body = json!({"swarm_ref": w.code, "externalId": external_id, "eventType": "PURCHASE"});
        let request = post("/api/v1/postback", &w.key, &body);
        let outcome = exchange(stream, &request).await;
        if matches!(outcome, Outcome::Nothing(_)) {
            let sent = Ack::Lead { external_id: external_id.clone(), lead_id: String::new() };
            shared.unanswered.lock().unwrap().push(sent);
        }
        let (status, _, json, close) = shared.judge(outcome, "postback")?;
        match status {
            201 => {
                let lead_id = json["leadId"].as_str().unwrap_or_default().to_string();
                shared.acks.lock().unwrap().push(Ack::Lead { external_id, lead_id });
            }
            503 => {}
            other => shared.fail(format!("postback answered {other}: {json}")),
        }
        return Ok(close);
    }
    let (status, head, _, close) = shared.judge(exchange(stream, &click(&w.code)).await, "click")?;
    let location = head.lines().find_map(|l| l.strip_prefix("location:").map(|v| v.trim().to_string()));
    let token = location.as_deref().and_then(|l| query_param(l, "irw_id"));
    let Some(token) = token.filter(|_| status == 302 && !close) else {
        if status != 302 && status != 503 {
            shared.fail(format!("click answered {status}"));
        }
        return Ok(close);
    };
    let body = json!({"clickId": token});
    let request = post("/api/v1/affiliate/conversions", &w.key, &body);
    let outcome = exchange(stream, &request).await;
    if matches!(outcome, Outcome::Nothing(_)) {
        let sent = Ack::Conversion { click_token: token.clone(), conversion_id: String::new() };
        shared.unanswered.lock().unwrap().push(sent);
    }
    let (status, _, json, close) = shared.judge(outcome, "conversion")?;
    match status {
        201 => {
            let conversion_id = json["conversionId"].as_str().unwrap_or_default().to_string();
            shared.acks.lock().unwrap().push(Ack::Conversion { click_token: token, conversion_id });
        }
        503 => {}
        other => shared.fail(format!("conversion answered {other}: {json}")),
    }
    Ok(close)
}

async fn client(addr: String, w: Arc<World>, shared: Arc<Shared>, id: usize) {
    let mut n = 0;
    loop {
        let mut stream = match TcpStream::connect(&addr).await {
            Ok(s) => s,
            Err(e) => {
                if shared.terminated.load(Ordering::SeqCst) {
                    shared.refused_after_term.fetch_add(1, Ordering::SeqCst);
                } else {
                    shared.fail(format!("connect failed before SIGTERM: {e}"));
                }
                return;
            }
        };
        loop {
            n += 1;
            match one(&mut stream, &w, &shared, id, n).await {
                Ok(false) => continue,
                Ok(true) | Err(()) => break,
            }
        }
    }
}

/// Sends `ack` again to the restarted server: `Some(answer)` unless it
/// is on record with the same id (`fresh`: unless it was not on record).
async fn resend(server: &TestServer, w: &World, ack: &Ack, fresh: bool) -> Option<String> {
    let (path, body, id_field, id) = match ack {
        Ack::Lead { external_id, lead_id } => (
            "/api/v1/postback",
            json!({"swarm_ref": w.code, "externalId": external_id, "eventType": "PURCHASE"}),
            "leadId",
            lead_id,
        ),
        Ack::Conversion { click_token, conversion_id } => {
            ("/api/v1/affiliate/conversions", json!({"clickId": click_token}), "conversionId", conversion_id)
        }
    };
    let r = server.post(path, Some(&w.key), body).await;
    let v = r.json();
    let ok = match fresh {
        true => r.status == 201 && v["status"] == "recorded",
        false => r.status == 200 && v["status"] == "duplicate" && v[id_field] == id.as_str(),
    };
    (!ok).then(|| format!("{ack:?} after the restart: {} {}", r.status, r.text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_exits_zero_keeps_every_acknowledged_write_and_cuts_no_response() {
    let mut server = TestServer::start().await;
    let w = Arc::new(World::fixed(&server, 100).await);
    let shared = Arc::new(Shared::default());
    let clients: Vec<_> =
        (0..CLIENTS).map(|i| tokio::spawn(client(server.addr(), w.clone(), shared.clone(), i))).collect();
    server.until("warm-up traffic", || async { (shared.answered.load(Ordering::SeqCst) >= WARM).then_some(()) }).await;
    shared.terminated.store(true, Ordering::SeqCst);
    server.signal(libc::SIGTERM);
    let status = server.wait_exit().await;
    for c in clients {
        tokio::time::timeout(Duration::from_secs(30), c).await.expect("clients stop once refused").unwrap();
    }
    let failures = shared.failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{} failures, first ones: {:#?}", failures.len(), &failures[..failures.len().min(10)]);
    assert_eq!(status.code(), Some(0), "graceful shutdown under load must exit 0");

    let acks = shared.acks.lock().unwrap().clone();
    eprintln!(
        "answered {} ({} after SIGTERM), {} acknowledged writes, {} refused after SIGTERM ({} of them unanswered writes)",
        shared.answered.load(Ordering::SeqCst),
        shared.answered_after_term.load(Ordering::SeqCst),
        acks.len(),
        shared.refused_after_term.load(Ordering::SeqCst),
        shared.unanswered.lock().unwrap().len(),
    );
    assert!(!acks.is_empty(), "the load recorded nothing");
    let server = server.relaunch().await;
    let stats = w.stats(&server).await;
    let leads = acks.iter().filter(|a| matches!(a, Ack::Lead { .. })).count() as u64;
    let conversions = acks.len() as u64 - leads;
    assert!(stats["postbacks"]["recorded"].as_u64().unwrap() >= leads, "{stats}");
    assert!(stats["conversions"]["recorded"].as_u64().unwrap() >= conversions, "{stats}");
    let mut missing = Vec::new();
    for ack in &acks {
        missing.extend(resend(&server, &w, ack, false).await);
    }
    assert!(missing.is_empty(), "{} acknowledged writes lost: {:#?}", missing.len(), &missing[..missing.len().min(10)]);
    let unanswered = shared.unanswered.lock().unwrap().clone();
    let mut cut = Vec::new();
    for sent in &unanswered {
        cut.extend(resend(&server, &w, sent, true).await);
    }
    assert!(
        cut.is_empty(),
        "{} requests were processed but never answered: {:#?}",
        cut.len(),
        &cut[..cut.len().min(10)]
    );
}

#[tokio::test]
async fn a_shutdown_that_outlives_its_deadline_exits_non_zero_naming_what_was_pending() {
    let env = [("CLICKLEDGER_SHUTDOWN_TIMEOUT_SECS", "1"), ("CLICKLEDGER_HTTP_BODY_READ_TIMEOUT_MS", "600000")];
    let mut server = TestServer::start_capturing_logs(&env).await;
    // A request whose body never finishes stays in flight until the deadline.
    let stuck = request_in_flight(&server, 100).await;
    server.signal(libc::SIGTERM);
    let status = server.wait_exit().await;
    assert_eq!(status.code(), Some(2), "past the deadline the exit is non-zero");
    // The pipe may still hold the last lines when the process is gone.
    let pending = "shutdown did not finish within 1 s: 1 connections still had a request in flight";
    server
        .until("the deadline's log line", || async {
            (server.logs().iter().any(|l| l.contains(pending))).then_some(())
        })
        .await;
    drop(stuck);
}

/// A request whose body has begun to be read (the server sent `100 Continue`).
async fn request_in_flight(server: &TestServer, body_len: usize) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let head = format!(
        "POST /api/v1/admin/advertisers HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {ADMIN_KEY}\r\n\
         content-type: application/json\r\ncontent-length: {body_len}\r\nexpect: 100-continue\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 256];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue"), "{:?}", &buf[..n]);
    stream.write_all(b"{").await.unwrap();
    stream
}

#[tokio::test]
async fn a_request_in_flight_at_sigterm_is_answered_with_connection_close_then_the_process_exits_zero() {
    let mut server = TestServer::start().await;
    let body = r#"{"name": "Acme"}"#;
    let mut in_flight = request_in_flight(&server, body.len()).await;
    server.signal(libc::SIGTERM);
    // Once new connections are refused the server is surely draining.
    server
        .until("the listener to close", || async { TcpStream::connect(server.addr()).await.is_err().then_some(()) })
        .await;
    let Outcome::Complete { status, head, close, body, .. } = exchange(&mut in_flight, &body.as_bytes()[1..]).await
    else {
        panic!("the request in flight was not answered completely");
    };
    assert_eq!(status, 201, "{body}");
    assert!(close, "the last response says the connection closes: {head}");
    let mut more = [0u8; 16];
    assert_eq!(in_flight.read(&mut more).await.unwrap_or(0), 0, "then the connection is closed");
    assert_eq!(server.wait_exit().await.code(), Some(0));
}
