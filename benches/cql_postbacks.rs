//! Postbacks on the CQL backend against raw driver inserts of the same rows
//! into the same node, in one run:
//!
//! 1. raw `INSERT INTO leads …` (the floor: what the driver alone costs),
//! 2. raw `INSERT … IF NOT EXISTS` (the exactly-once scheme's Paxos round),
//! 3. `POST /api/v1/postback` through a release `clickledger serve` (HTTP,
//!    auth, validation, the campaign actor's group commit, the conditional
//!    insert, dedup index and counters).
//!
//! Needs a CQL node: `CLICKLEDGER_BENCH_CQL=127.0.0.1:9042 cargo bench --bench cql_postbacks`
//! (`scripts/cql-node start` runs one). Knobs: BENCH_N (requests per
//! phase, default 4000), BENCH_CONCURRENCY (default 32).

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clickledger::config::{Config, Overrides};
use clickledger::store::cql::ScyllaStore;
use futures::stream::{self, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

const ADMIN: &str = "bench-admin-key-0123456789abcdef";

struct Phase {
    name: &'static str,
    n: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Phase {
    fn row(&mut self) -> String {
        self.latencies.sort();
        let pct = |p: f64| self.latencies[((self.latencies.len() as f64 * p) as usize).min(self.latencies.len() - 1)];
        format!(
            "| {} | {} | {:.0} | {:.2} | {:.2} |",
            self.name,
            self.n,
            self.n as f64 / self.elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3
        )
    }
}

/// Runs `n` calls of `f` with `concurrency` in flight, timing each.
async fn run<F, Fut>(name: &'static str, n: usize, concurrency: usize, f: F) -> Phase
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    let latencies: Vec<Duration> = stream::iter(0..n)
        .map(|i| {
            let fut = f(i);
            async move {
                let t = Instant::now();
                fut.await;
                t.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    Phase { name, n, elapsed: started.elapsed(), latencies }
}

async fn raw_phases(session: Arc<Session>, ks: &str, n: usize, c: usize) -> Vec<Phase> {
    let plain = session
        .prepare(format!("INSERT INTO {ks}.leads (campaign_id, external_id, id, body) VALUES (?, ?, ?, ?)"))
        .await
        .expect("prepare");
    let lwt = session
        .prepare(format!(
            "INSERT INTO {ks}.leads (campaign_id, external_id, id, body) VALUES (?, ?, ?, ?) IF NOT EXISTS"
        ))
        .await
        .expect("prepare");
    let body = json!({"externalId": "x", "eventType": "PURCHASE", "payoutCents": 990, "metadata": {"orderId": "x"}})
        .to_string();
    let row = |campaign: i64, i: usize| (campaign, format!("order-{i}"), vec![0u8; 16], body.clone());
    let p1 = run("raw driver INSERT", n, c, |i| {
        let (s, st, r) = (session.clone(), plain.clone(), row(1, i));
        async move {
            s.execute_unpaged(&st, r).await.expect("insert");
        }
    })
    .await;
    let p2 = run("raw driver INSERT … IF NOT EXISTS", n, c, |i| {
        let (s, st, r) = (session.clone(), lwt.clone(), row(2, i));
        async move {
            s.execute_unpaged(&st, r).await.expect("insert");
        }
    })
    .await;
    vec![p1, p2]
}

async fn start_server(node: &str, keyspace: &str, dir: &std::path::Path) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_clickledger"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("CLICKLEDGER_STORE", "scylla")
        .env("CLICKLEDGER_SCYLLA_NODES", node)
        .env("CLICKLEDGER_SCYLLA_KEYSPACE", keyspace)
        .env("CLICKLEDGER_ADMIN_KEY", ADMIN)
        .env("CLICKLEDGER_LOG_LEVEL", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn clickledger");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().expect("server exited");
    (child, line.rsplit(' ').next().unwrap().to_string())
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn post(client: &HttpClient, url: String, key: &str, body: Value) -> (u16, Value) {
    let req = Request::post(url)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = client.request(req).await.expect("request");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Advertiser → REV_SHARE campaign → test postback → active → approved affiliate.
async fn setup(client: &HttpClient, base: &str) -> (String, String) {
    let (_, adv) = post(client, format!("{base}/api/v1/admin/advertisers"), ADMIN, json!({"name": "bench"})).await;
    let key = adv["apiKey"].as_str().unwrap().to_string();
    let (_, aff) = post(client, format!("{base}/api/v1/admin/affiliates"), ADMIN, json!({"name": "bench"})).await;
    let campaign = json!({"name": "bench", "landingUrl": "https://shop.example.com/", "compensationModel": "REV_SHARE", "payoutPercentage": 10});
    let (_, c) = post(client, format!("{base}/api/v1/campaigns"), &key, campaign).await;
    let id = c["id"].as_str().unwrap();
    let test =
        json!({"swarm_ref": c["testTrackingCode"], "externalId": "t", "eventType": "PURCHASE", "revenueCents": 1});
    post(client, format!("{base}/api/v1/postback"), &key, test).await;
    post(client, format!("{base}/api/v1/campaigns/{id}/activate"), &key, json!({})).await;
    let (_, a) =
        post(client, format!("{base}/api/v1/campaigns/{id}/affiliates"), &key, json!({"affiliateId": aff["id"]})).await;
    (key, a["trackingCode"].as_str().unwrap().to_string())
}

async fn http_phase(base: &str, n: usize, c: usize, name: &'static str, repeat: bool) -> Phase {
    let client: HttpClient = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(c).build_http();
    let (key, code) = setup(&client, base).await;
    let url = format!("{base}/api/v1/postback");
    if repeat {
        for i in 0..n {
            let body = json!({"swarm_ref": code, "externalId": format!("order-{i}"), "eventType": "PURCHASE", "revenueCents": 9900});
            post(&client, url.clone(), &key, body).await;
        }
    }
    let expected = if repeat { 200 } else { 201 };
    run(name, n, c, |i| {
        let (client, url, key) = (client.clone(), url.clone(), key.clone());
        let body = json!({"swarm_ref": code, "externalId": format!("order-{i}"), "eventType": "PURCHASE", "revenueCents": 9900, "metadata": {"orderId": format!("order-{i}")}});
        async move {
            let (status, reply) = post(&client, url, &key, body).await;
            assert_eq!(status, expected, "{reply}");
        }
    })
    .await
}

#[tokio::main]
async fn main() {
    let Some(node) = std::env::var("CLICKLEDGER_BENCH_CQL").ok() else {
        eprintln!("set CLICKLEDGER_BENCH_CQL=host:port (scripts/cql-node start runs a local node)");
        return;
    };
    let n: usize = std::env::var("BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(4000);
    let c: usize = std::env::var("BENCH_CONCURRENCY").ok().and_then(|v| v.parse().ok()).unwrap_or(32);
    let keyspace = format!("bench_{}", clickledger::domain::ids::random_base62(8).to_ascii_lowercase());
    let env = [
        ("CLICKLEDGER_SCYLLA_NODES".to_string(), node.clone()),
        ("CLICKLEDGER_SCYLLA_KEYSPACE".to_string(), keyspace.clone()),
    ];
    let config = Config::load_from(None, &env, &Overrides::default()).unwrap().scylla;
    ScyllaStore::migrate(&config).await.expect("migrate");
    let session =
        SessionBuilder::new().known_node(&node).use_keyspace(&keyspace, false).build().await.expect("connect");
    let mut phases = raw_phases(Arc::new(session), &keyspace, n, c).await;
    let dir = tempfile::tempdir().unwrap();
    let (_server, base) = start_server(&node, &keyspace, dir.path()).await;
    phases.push(http_phase(&base, n, c, "clickledger POST /api/v1/postback (new)", false).await);
    phases.push(http_phase(&base, n, c, "clickledger POST /api/v1/postback (repeat → window hit)", true).await);
    println!("keyspace {keyspace}, {n} requests per phase, {c} in flight\n");
    println!("| phase | requests | per second | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|");
    for p in &mut phases {
        println!("{}", p.row());
    }
}
