//! What operators touch: readiness, the ready gauge, request ids, JSON logs
//! and the `probe` subcommand the container health check runs.

mod common;

use common::*;
use hyper::Method;
use serde_json::Value;

#[tokio::test]
async fn readyz_is_200_and_reports_every_part_with_the_supervisors_lag() {
    let server = TestServer::start().await;
    let r = server.get("/readyz", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(body["status"], "ready");
    for part in ["shutdown", "store", "schema", "actors", "supervisors"] {
        assert_eq!(body["checks"][part]["ok"], true, "{part}: {}", r.text);
        assert!(body["checks"][part]["detail"].as_str().is_some_and(|d| !d.is_empty()), "{part}: {}", r.text);
    }
    let lag = &body["checks"]["supervisors"]["lagSeconds"];
    for duty in ["referral_expiry", "escrow_release", "wallet_crediting"] {
        assert!(lag[duty].is_u64(), "lag of {duty}: {}", r.text);
    }
    assert_eq!(body["checks"]["supervisors"]["detail"], "3 of 3 running");
}

#[tokio::test]
async fn the_ready_gauge_is_exported_without_anyone_calling_readyz() {
    let server = TestServer::start().await;
    server
        .until("clickledger_ready 1 in /metrics", || async {
            (server.metrics().await.lines().any(|l| l.trim() == "clickledger_ready 1")).then_some(())
        })
        .await;
}

#[tokio::test]
async fn a_client_request_id_is_echoed_on_success_errors_and_redirects() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 100).await;
    let id = [("x-request-id", "trace-7f3a/42")];
    let ok = server.send(Method::GET, "/healthz", &id, Vec::new()).await;
    assert_eq!(ok.header("x-request-id"), Some("trace-7f3a/42"));
    let missing = server.send(Method::GET, "/api/v1/nothing", &id, Vec::new()).await;
    expect_error(&missing, 404, "no_route");
    assert_eq!(missing.header("x-request-id"), Some("trace-7f3a/42"));
    let bad_method = server.send(Method::DELETE, "/healthz", &id, Vec::new()).await;
    assert_eq!(bad_method.status, 405);
    assert_eq!(bad_method.header("x-request-id"), Some("trace-7f3a/42"));
    let redirect = server.send(Method::GET, &format!("/r/{}", w.code), &id, Vec::new()).await;
    assert_eq!(redirect.status, 302, "{}", redirect.text);
    assert_eq!(redirect.header("x-request-id"), Some("trace-7f3a/42"));
}

fn is_generated_id(id: Option<&str>) -> bool {
    id.is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[tokio::test]
async fn a_request_without_a_usable_id_gets_a_fresh_generated_one() {
    let server = TestServer::start().await;
    let a = server.get("/healthz", None).await;
    let b = server.get("/healthz", None).await;
    assert!(is_generated_id(a.header("x-request-id")), "{:?}", a.headers);
    assert_ne!(a.header("x-request-id"), b.header("x-request-id"), "two requests, one id");
    let too_long = "x".repeat(129);
    for unusable in ["has space", too_long.as_str()] {
        let r = server.send(Method::GET, "/healthz", &[("x-request-id", unusable)], Vec::new()).await;
        assert!(is_generated_id(r.header("x-request-id")), "{unusable:?} → {:?}", r.header("x-request-id"));
    }
}

#[tokio::test]
async fn json_log_lines_of_a_request_carry_its_id() {
    let env = [("CLICKLEDGER_LOG_FORMAT", "json"), ("CLICKLEDGER_LOG_LEVEL", "debug")];
    let server = TestServer::start_capturing_logs(&env).await;
    let id = "req-json-logs-1";
    let r = server
        .send(
            Method::POST,
            "/api/v1/postback",
            &[("x-request-id", id), ("content-type", "application/json")],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
    let lines = || -> Vec<Value> {
        let logs = server.logs();
        logs.iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {l}")))
            .collect()
    };
    server
        .until("a log line with the request id", || async {
            (lines().iter().any(|l| l["span"]["request_id"] == id)).then_some(())
        })
        .await;
    let ours: Vec<Value> = lines().into_iter().filter(|l| l["span"]["request_id"] == id).collect();
    let answered = ours.iter().find(|l| l["message"] == "answered").expect("the request's closing line");
    assert_eq!(answered["status"], 401);
    assert_eq!(answered["span"]["route"], "/api/v1/postback");
    assert!(lines().iter().any(|l| l["message"] == "serving" && l["span"].is_null()), "start-up lines have no request");
}

async fn probe(args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_clickledger"))
        .arg("probe")
        .args(args)
        .output()
        .await
        .expect("run clickledger probe");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[tokio::test]
async fn probe_exits_zero_only_for_a_2xx_answer() {
    let server = TestServer::start().await;
    assert_eq!(probe(&[&format!("{}/readyz", server.base)]).await, (true, "200 OK".to_string()));
    assert_eq!(probe(&[&format!("{}/nothing", server.base)]).await, (false, "404 Not Found".to_string()));
    // Nothing listens on port 1; a bad URL is refused before any connection.
    assert!(!probe(&["http://127.0.0.1:1/healthz", "--timeout-ms", "500"]).await.0);
    assert!(!probe(&["https://127.0.0.1/healthz"]).await.0);
}

#[tokio::test]
async fn the_data_directory_the_server_creates_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start_in_new_dir("data", &[("CLICKLEDGER_MONEY_TEST_CLOCK", "true")]).await;
    server.advance_clock(60).await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&server.data_dir), 0o700, "the data directory");
    // Directories in it (the click log's) 0700, every file 0600.
    let mut dirs = vec![server.data_dir.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                assert_eq!(mode(&path), 0o700, "{}", path.display());
                dirs.push(path);
            } else {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
            }
        }
    }
    let names: Vec<String> = std::fs::read_dir(&server.data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "clock_offset"), "{names:?}");
    assert!(cql_mode() || names.iter().any(|n| n == "clickledger.redb"), "{names:?}");
}

#[tokio::test]
async fn admin_key_in_a_directory_without_secrets_names_it_and_creates_nothing() {
    let server = TestServer::start().await;
    let elsewhere = server.data_dir.join("not-a-data-dir");
    let env = [("CLICKLEDGER_ADMIN_KEY".to_string(), String::new())];
    let out = server.cli_with(&["admin-key", "--data-dir", elsewhere.to_str().unwrap()], &env).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(elsewhere.to_str().unwrap()), "{stderr}");
    assert!(!elsewhere.exists(), "nothing was created");
    assert!(out.stdout.is_empty(), "no key printed");
}
