//! The engine as Prometheus sees it, with Debian's `prometheus` package:
//! `promtool check metrics` finds nothing to lint in a live scrape, and a
//! real Prometheus server scrapes a running engine, reports the target up,
//! answers a query on the request counter, and evaluates our alert rules
//! against the engine's series without errors.
//!
//! Under CI=true a missing `promtool`/`prometheus` fails these tests;
//! elsewhere they are skipped with a message (deploy/tools/install).

mod common;
mod traffic;

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use common::*;
use traffic::*;

/// How long Prometheus gets to start, scrape and evaluate (it scrapes and
/// evaluates every second here).
const PROMETHEUS_DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn promtool_finds_nothing_to_lint_in_a_live_scrape_after_traffic_on_every_route_family() {
    if !tool_available("promtool") {
        return;
    }
    let server = TestServer::start_money().await;
    drive_every_route_family(&server).await;
    let scrape = server.metrics().await;
    assert!(scrape.contains("clickledger_http_requests_total"), "{scrape}");

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    promtool.stdin.take().unwrap().write_all(scrape.as_bytes()).await.unwrap();
    let out = promtool.wait_with_output().await.unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics complained:\n{said}");
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_engine_and_answers_a_request_counter_query() {
    if !tool_available("prometheus") {
        return;
    }
    let server = TestServer::start_money().await;
    assert_eq!(server.get("/healthz", None).await.status, 200);
    let prometheus = Prometheus::start(&server).await;

    let targets = prometheus
        .until("the engine target is up", "/api/v1/targets", |v| {
            let active = v["data"]["activeTargets"].as_array()?;
            let engine = active.iter().find(|t| t["labels"]["job"] == "clickledger")?;
            (engine["health"] == "up").then(|| engine.clone())
        })
        .await;
    assert_eq!(targets["scrapeUrl"], format!("{}/metrics", server.base), "{targets}");

    let series = prometheus
        .until("a request counter query returns data", "/api/v1/query?query=clickledger_http_requests_total", |v| {
            let result = v["data"]["result"].as_array()?;
            (!result.is_empty()).then(|| result.clone())
        })
        .await;
    let healthz = series.iter().find(|s| s["metric"]["route"] == "/healthz" && s["metric"]["status"] == "200");
    let healthz = healthz.unwrap_or_else(|| panic!("no /healthz series: {series:?}"));
    assert_eq!(healthz["metric"]["job"], "clickledger");
    assert!(healthz["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()) >= Some(1.0), "{healthz}");

    // Every alert rule evaluates against the engine's real series, and none
    // fires on a healthy, idle node.
    let rules = prometheus
        .until("every rule has been evaluated", "/api/v1/rules", |v| {
            let rules: Vec<Value> = v["data"]["groups"]
                .as_array()?
                .iter()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            (!rules.is_empty() && rules.iter().all(|r| r["health"] != "unknown")).then_some(rules)
        })
        .await;
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "rule failed to evaluate: {rule}");
        assert_eq!(rule["state"], "inactive", "alert on a healthy engine: {rule}");
    }
    let names: Vec<&str> = rules.iter().filter_map(|r| r["name"].as_str()).collect();
    for alert in ["ClickledgerNotReady", "ClickledgerHighErrorRatio", "ClickledgerEscrowBacklog"] {
        assert!(names.contains(&alert), "{alert} not loaded: {names:?}");
    }
}

/// A Prometheus server in a temporary directory, scraping one engine every
/// second with our rule files loaded. Killed on drop.
struct Prometheus {
    base: String,
    _dir: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl Prometheus {
    async fn start(server: &TestServer) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let target = server.base.trim_start_matches("http://");
        let rules = repo_file("deploy/prometheus/rules");
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: ['{}/*.yml']\n\
             scrape_configs:\n  - job_name: clickledger\n    static_configs:\n      - targets: ['{target}']\n",
            rules.display()
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        // Prometheus cannot listen on port 0: take a free port and hand it over.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("run prometheus");
        Self { base: format!("http://127.0.0.1:{port}"), _dir: dir, _child: child }
    }

    /// Polls a JSON API path until `check` finds what it waits for.
    async fn until<T>(&self, what: &str, path: &str, check: impl Fn(&Value) -> Option<T>) -> T {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let deadline = tokio::time::Instant::now() + PROMETHEUS_DEADLINE;
        let mut last = String::from("(no answer yet)");
        loop {
            if let Ok(resp) = client.get(format!("{}{path}", self.base).parse().unwrap()).await {
                let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                last = String::from_utf8_lossy(&body).into_owned();
                if let Some(found) = serde_json::from_str::<Value>(&last).ok().as_ref().and_then(&check) {
                    return found;
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}; last answer: {last}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
