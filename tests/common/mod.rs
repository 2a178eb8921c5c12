//! Test harness: the real `clickledger` binary on port 0 with a temporary data
//! directory, driven over HTTP. Keys are fixed through the environment so tests
//! can sign their own (expired, forged) click tokens.
#![allow(dead_code)]

pub mod keyspaces;
pub mod raw;
pub mod receiver;
mod record;

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use clickledger::domain::token::TokenKeys;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef";

/// `host:port` of a CQL node for the tests (set by `scripts/test`).
pub fn cql_node() -> Option<String> {
    std::env::var("CLICKLEDGER_TEST_CQL").ok().filter(|s| !s.trim().is_empty())
}

/// Whether the HTTP tests run against the CQL backend this time.
pub fn cql_mode() -> bool {
    std::env::var("CLICKLEDGER_TEST_STORE").is_ok_and(|s| s == "cql")
}

/// One keyspace per test process in CQL mode, migrated once. Every server a
/// test process starts shares it, which is what lets two servers act as two
/// engine nodes of one cluster.
static KEYSPACE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

fn cql_node_or_fail() -> String {
    cql_node().expect(
        "CLICKLEDGER_TEST_STORE=cql needs a CQL node: run `scripts/test` (it starts one) or set CLICKLEDGER_TEST_CQL=host:port",
    )
}

/// A new keyspace, migrated.
async fn migrated_keyspace(node: &str) -> String {
    keyspaces::prune_once(node).await;
    let keyspace = keyspaces::name("t_");
    let out = Command::new(env!("CARGO_BIN_EXE_clickledger"))
        .arg("migrate")
        .env("CLICKLEDGER_STORE", "scylla")
        .env("CLICKLEDGER_SCYLLA_NODES", node)
        .env("CLICKLEDGER_SCYLLA_KEYSPACE", &keyspace)
        .env("CLICKLEDGER_LOG_LEVEL", "warn")
        .output()
        .await
        .expect("run clickledger migrate");
    assert!(out.status.success(), "migrate failed: {}", String::from_utf8_lossy(&out.stderr));
    keyspace
}

async fn cql_env() -> Vec<(String, String)> {
    let node = cql_node_or_fail();
    let keyspace = KEYSPACE.get_or_init(|| migrated_keyspace(&node)).await.clone();
    keyspace_env(node, keyspace)
}

/// The variables of the CQL backend on `keyspace`.
fn keyspace_env(node: String, keyspace: String) -> Vec<(String, String)> {
    vec![
        ("CLICKLEDGER_STORE".into(), "scylla".into()),
        ("CLICKLEDGER_SCYLLA_NODES".into(), node),
        ("CLICKLEDGER_SCYLLA_KEYSPACE".into(), keyspace),
    ]
}

/// Variables for servers that must not share this test binary's keyspace
/// (their secrets differ from its other servers'): in CQL mode a keyspace
/// of their own, else nothing. Pass them to every server of the group.
pub async fn own_keyspace() -> Vec<(String, String)> {
    if !cql_mode() {
        return vec![];
    }
    let node = cql_node_or_fail();
    let keyspace = migrated_keyspace(&node).await;
    keyspace_env(node, keyspace)
}
pub const TOKEN_KEY: &str = "test-token-key-0123456789abcdef";

/// For the money tests: a clock tests can move (`advance_days`) and
/// supervisors that look at their queues every 50 ms.
pub const MONEY_ENV: &[(&str, &str)] = &[("CLICKLEDGER_MONEY_TEST_CLOCK", "true"), ("CLICKLEDGER_MONEY_TICK_MS", "50")];

/// How long `until` waits for state that lands asynchronously (a group
/// commit, a supervisor tick, CQL round trips): a bound, never a timing.
const POLL_DEADLINE: Duration = Duration::from_secs(30);

pub struct TestServer {
    pub base: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    env: Vec<(String, String)>,
    child: Child,
    client: Client<HttpConnector, Full<Bytes>>,
    /// The child's stderr lines, when started with `start_capturing_logs`.
    logs: Option<Arc<Mutex<Vec<String>>>>,
    /// The test that started the server (libtest names its thread after
    /// it), for recordings of requests sent from spawned tasks.
    test: String,
}

/// Where a test server's stderr goes.
enum Logs {
    Inherit,
    /// Kept for `TestServer::logs`.
    Capture,
    To(Stdio),
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// A server for the money tests (see `MONEY_ENV`).
    pub async fn start_money() -> Self {
        Self::start_with(MONEY_ENV).await
    }

    /// Starts a server with extra `CLICKLEDGER_*` variables.
    pub async fn start_with(env: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self::spawn(dir, Some(tmp), env, Logs::Inherit).await
    }

    /// A server on the data directory `dir` (which the caller keeps).
    pub async fn start_at(dir: PathBuf, env: &[(&str, &str)]) -> Self {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self::spawn(dir, None, env, Logs::Inherit).await
    }

    /// A server on a data directory that does not exist yet (`name` inside
    /// a temporary directory): the server creates it.
    pub async fn start_in_new_dir(name: &str, env: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join(name);
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self::spawn(dir, Some(tmp), env, Logs::Inherit).await
    }

    /// Like `start_with`, keeping the server's stderr for `logs()`.
    pub async fn start_capturing_logs(env: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self::spawn(dir, Some(tmp), env, Logs::Capture).await
    }

    /// The stderr lines so far (only with `start_capturing_logs`).
    pub fn logs(&self) -> Vec<String> {
        self.logs.as_ref().expect("started with start_capturing_logs").lock().unwrap().clone()
    }

    /// `start_with` for owned variables (e.g. `own_keyspace()` plus more).
    pub async fn start_with_owned(env: &[(String, String)]) -> Self {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Self::start_with(&env).await
    }

    /// What `clickledger admin-key` prints for this server's configuration.
    pub async fn admin_key(&self) -> String {
        let out = self.cli(&["admin-key"]).await;
        assert!(out.status.success(), "admin-key failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Runs the `clickledger` CLI with this server's variables and data dir.
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_with(args, &self.env).await
    }

    /// Runs the CLI on this server's data dir with `env` instead of its
    /// variables, to its end.
    pub async fn cli_with(&self, args: &[&str], env: &[(String, String)]) -> std::process::Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_clickledger"));
        cmd.args(args);
        if !args.contains(&"--data-dir") {
            cmd.arg("--data-dir").arg(&self.data_dir);
        }
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CLICKLEDGER_ADMIN_KEY", ADMIN_KEY)
            .env("CLICKLEDGER_TOKEN_KEYS", TOKEN_KEY)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null());
        tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().expect("run clickledger")
    }

    /// A server whose stderr is `stderr` (a closed pipe, `/dev/full`).
    pub async fn start_with_stderr(env: &[(&str, &str)], stderr: Stdio) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self::spawn(dir, Some(tmp), env, Logs::To(stderr)).await
    }

    async fn spawn(
        data_dir: PathBuf,
        tmp: Option<tempfile::TempDir>,
        mut env: Vec<(String, String)>,
        logs: Logs,
    ) -> Self {
        if data_dir.is_dir() {
            // As an operator would keep it (the server warns about a data
            // directory others can read).
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700)).expect("chmod 700");
        }
        if cql_mode() && !env.iter().any(|(k, _)| k == "CLICKLEDGER_STORE") {
            env.extend(cql_env().await);
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clickledger"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CLICKLEDGER_ADMIN_KEY", ADMIN_KEY)
            .env("CLICKLEDGER_TOKEN_KEYS", TOKEN_KEY)
            .env("CLICKLEDGER_LOG_LEVEL", "warn")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(match logs {
                Logs::Inherit => Stdio::inherit(),
                Logs::Capture => Stdio::piped(),
                Logs::To(stdio) => stdio,
            })
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn clickledger");
        let logs = child.stderr.take().map(|stderr| {
            let logs = Arc::new(Mutex::new(Vec::new()));
            let sink = logs.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    sink.lock().unwrap().push(line);
                }
            });
            logs
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("server did not start within 30 s")
            .expect("read stdout")
            .expect("server exited before listening");
        let base = line.trim().rsplit(' ').next().expect("address").to_string();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let client = Client::builder(TokioExecutor::new()).build_http();
        let test = std::thread::current().name().unwrap_or("unknown").to_string();
        Self { base, data_dir, _tmp: tmp, env, child, client, logs, test }
    }

    /// Stops the server with SIGTERM (graceful) and starts it again on the
    /// same data directory.
    pub async fn restart(mut self) -> Self {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit().await;
        assert!(status.success(), "graceful stop failed: {status:?}");
        self.relaunch().await
    }

    /// Waits (up to a minute) for the process to exit.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await.expect("stop in time").unwrap()
    }

    /// Starts a fresh process on the same data directory (after it exited).
    pub async fn relaunch(mut self) -> Self {
        let tmp = self._tmp.take();
        let logs = if self.logs.is_some() { Logs::Capture } else { Logs::Inherit };
        Self::spawn(self.data_dir.clone(), tmp, self.env.clone(), logs).await
    }

    /// Graceful restart with some variables changed (e.g. rotated keys).
    pub async fn restart_with(mut self, env: &[(&str, &str)]) -> Self {
        for (k, v) in env {
            self.env.retain(|(key, _)| key != k);
            self.env.push((k.to_string(), v.to_string()));
        }
        self.restart().await
    }

    /// `kill -9`, then a fresh start with some variables changed.
    pub async fn kill9_and_restart_with(mut self, env: &[(&str, &str)]) -> Self {
        for (k, v) in env {
            self.env.retain(|(key, _)| key != k);
            self.env.push((k.to_string(), v.to_string()));
        }
        self.kill9_and_restart().await
    }

    /// `kill -9`, then a fresh start on the same data directory.
    pub async fn kill9_and_restart(mut self) -> Self {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait().await;
        self.relaunch().await
    }

    /// `host:port`, for raw TCP clients.
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    pub fn signal(&self, sig: i32) {
        let pid = self.child.id().expect("running") as i32;
        unsafe { libc::kill(pid, sig) };
    }

    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
        let method_name = method.to_string();
        let mut req = Request::builder().method(method).uri(format!("{}{}", self.base, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self.client.request(req.body(Full::new(Bytes::from(body))).unwrap()).await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let reply = Reply { status, headers, text: String::from_utf8_lossy(&bytes).into_owned() };
        record::response(&self.test, method_name, path, &reply);
        reply
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Reply {
        let auth = key.map(|k| format!("Bearer {k}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        self.send(Method::GET, path, &headers, Vec::new()).await
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: Value) -> Reply {
        self.json_request(Method::POST, path, key, body).await
    }

    /// A JSON POST with extra headers (e.g. `Idempotency-Key`).
    pub async fn post_with(&self, path: &str, key: &str, extra: &[(&str, &str)], body: Value) -> Reply {
        let auth = format!("Bearer {key}");
        let mut headers = vec![("content-type", "application/json"), ("authorization", auth.as_str())];
        headers.extend_from_slice(extra);
        self.send(Method::POST, path, &headers, serde_json::to_vec(&body).unwrap()).await
    }

    /// POSTs raw bytes with a key and a JSON content type.
    pub async fn post_raw(&self, path: &str, key: &str, body: impl Into<Vec<u8>>) -> Reply {
        let auth = format!("Bearer {key}");
        let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
        self.send(Method::POST, path, &headers, body.into()).await
    }

    /// Moves the server's test clock forward; returns its new time.
    pub async fn advance_clock(&self, seconds: u64) -> u64 {
        let r = self.post("/api/v1/admin/clock/advance", Some(ADMIN_KEY), json!({ "seconds": seconds })).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()["now"].as_u64().expect("now")
    }

    pub async fn advance_days(&self, days: u64) -> u64 {
        self.advance_clock(days * 86_400).await
    }

    /// Polls `probe` until it returns `Some` (clicks land after the
    /// redirect, money moves on the supervisors' timers), failing after a
    /// generous deadline. The one polling helper: tests never sleep to wait.
    pub async fn until<T, F, Fut>(&self, what: &str, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + POLL_DEADLINE;
        loop {
            if let Some(found) = probe().await {
                return found;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn patch(&self, path: &str, key: Option<&str>, body: Value) -> Reply {
        self.json_request(Method::PATCH, path, key, body).await
    }

    pub async fn json_request(&self, method: Method, path: &str, key: Option<&str>, body: Value) -> Reply {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        self.send(method, path, &headers, serde_json::to_vec(&body).unwrap()).await
    }

    /// Follows an affiliate link like a browser would, returning the redirect target.
    pub async fn click(&self, code: &str) -> Reply {
        let ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36";
        self.send(Method::GET, &format!("/r/{code}"), &[("user-agent", ua)], Vec::new()).await
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics", None).await.text
    }
}

/// Pulls a query parameter out of a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1.split('#').next()?;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// The server's signing keys, so tests can mint expired or foreign tokens.
pub fn server_tokens() -> TokenKeys {
    TokenKeys::new(vec![TOKEN_KEY.as_bytes().to_vec()])
}

/// An advertiser, an affiliate and an active campaign with an approved code.
pub struct World {
    pub advertiser_id: String,
    pub key: String,
    pub org_publishable_key: String,
    pub affiliate_id: String,
    pub affiliate_key: String,
    pub campaign: Value,
    pub campaign_id: String,
    pub code: String,
}

impl World {
    pub async fn fixed(server: &TestServer, payout_cents: u64) -> Self {
        Self::with_campaign(
            server,
            json!({
                "name": "Spring sale",
                "landingUrl": "https://shop.example.com/landing?utm=x#hero",
                "compensationModel": "FIXED",
                "payoutCents": payout_cents,
            }),
        )
        .await
    }

    pub async fn rev_share(server: &TestServer, percentage: Value) -> Self {
        Self::with_campaign(
            server,
            json!({
                "name": "Percent of sale",
                "landingUrl": "https://shop.example.com/",
                "compensationModel": "REV_SHARE",
                "payoutPercentage": percentage,
            }),
        )
        .await
    }

    pub async fn with_campaign(server: &TestServer, campaign: Value) -> Self {
        Self::with_campaign_as(server, campaign, ADMIN_KEY).await
    }

    /// A FIXED campaign's world, the tenants created with `admin` as the operator key.
    pub async fn fixed_with_admin(server: &TestServer, payout_cents: u64, admin: &str) -> Self {
        let campaign = json!({
            "name": "Spring sale", "landingUrl": "https://shop.example.com/landing", "compensationModel": "FIXED",
            "payoutCents": payout_cents,
        });
        Self::with_campaign_as(server, campaign, admin).await
    }

    pub async fn with_campaign_as(server: &TestServer, campaign: Value, admin: &str) -> Self {
        let adv = server.post("/api/v1/admin/advertisers", Some(admin), json!({"name": "Acme"})).await;
        assert_eq!(adv.status, 201, "{}", adv.text);
        let adv = adv.json();
        let key = adv["apiKey"].as_str().unwrap().to_string();
        let aff = server.post("/api/v1/admin/affiliates", Some(admin), json!({"name": "Blogger"})).await.json();
        let created = server.post("/api/v1/campaigns", Some(&key), campaign).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let created = created.json();
        let campaign_id = created["id"].as_str().unwrap().to_string();
        let test_code = created["testTrackingCode"].as_str().unwrap();
        let confirm = server.post("/api/v1/postback", Some(&key), json!({
            "swarm_ref": test_code, "externalId": "integration-test", "eventType": "PURCHASE", "revenueCents": 100,
        })).await;
        assert_eq!(confirm.status, 200, "{}", confirm.text);
        let active = server.post(&format!("/api/v1/campaigns/{campaign_id}/activate"), Some(&key), json!({})).await;
        assert_eq!(active.status, 200, "{}", active.text);
        let approval = server
            .post(&format!("/api/v1/campaigns/{campaign_id}/affiliates"), Some(&key), json!({"affiliateId": aff["id"]}))
            .await;
        assert_eq!(approval.status, 201, "{}", approval.text);
        World {
            advertiser_id: adv["id"].as_str().unwrap().to_string(),
            key,
            org_publishable_key: adv["publishableKey"].as_str().unwrap().to_string(),
            affiliate_id: aff["id"].as_str().unwrap().to_string(),
            affiliate_key: aff["apiKey"].as_str().unwrap().to_string(),
            campaign: active.json(),
            campaign_id,
            code: approval.json()["trackingCode"].as_str().unwrap().to_string(),
        }
    }

    /// Clicks the affiliate link and returns the click token (`irw_id`).
    pub async fn click_token(&self, server: &TestServer) -> String {
        let r = server.click(&self.code).await;
        assert_eq!(r.status, 302, "{}", r.text);
        query_param(r.header("location").unwrap(), "irw_id").expect("irw_id in the redirect")
    }

    pub async fn convert(&self, server: &TestServer, click_id: &str) -> Reply {
        server.post("/api/v1/affiliate/conversions", Some(&self.key), json!({"clickId": click_id})).await
    }

    pub async fn postback(&self, server: &TestServer, external_id: &str, revenue: Option<u64>) -> Reply {
        let mut body = json!({"swarm_ref": self.code, "externalId": external_id, "eventType": "PURCHASE"});
        if let Some(r) = revenue {
            body["revenueCents"] = r.into();
        }
        server.post("/api/v1/postback", Some(&self.key), body).await
    }

    pub async fn stats(&self, server: &TestServer) -> Value {
        let r = server.get(&format!("/api/v1/campaigns/{}", self.campaign_id), Some(&self.key)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()["stats"].clone()
    }
}

/// A new advertiser: (id, apiKey).
pub async fn new_advertiser(server: &TestServer, name: &str) -> (String, String) {
    let r = server.post("/api/v1/admin/advertisers", Some(ADMIN_KEY), json!({ "name": name })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = r.json();
    (v["id"].as_str().unwrap().to_string(), v["apiKey"].as_str().unwrap().to_string())
}

/// A new affiliate: (id, apiKey).
pub async fn new_affiliate(server: &TestServer, name: &str) -> (String, String) {
    let r = server.post("/api/v1/admin/affiliates", Some(ADMIN_KEY), json!({ "name": name })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = r.json();
    (v["id"].as_str().unwrap().to_string(), v["apiKey"].as_str().unwrap().to_string())
}

/// Money, referrals and leads on a `World`.
impl World {
    /// Approves another affiliate on this campaign: (id, apiKey, tracking code).
    pub async fn another_affiliate(&self, server: &TestServer) -> (String, String, String) {
        let (id, key) = new_affiliate(server, "Second blogger").await;
        let path = format!("/api/v1/campaigns/{}/affiliates", self.campaign_id);
        let r = server.post(&path, Some(&self.key), json!({ "affiliateId": id })).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let code = r.json()["trackingCode"].as_str().unwrap().to_string();
        (id, key, code)
    }

    pub async fn fund(&self, server: &TestServer, cents: u64) -> Value {
        let r = self.fund_with_key(server, cents, None).await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.json()
    }

    pub async fn fund_with_key(&self, server: &TestServer, cents: u64, key: Option<&str>) -> Reply {
        let path = format!("/api/v1/campaigns/{}/fund", self.campaign_id);
        let extra: Vec<(&str, &str)> = key.iter().map(|k| ("idempotency-key", *k)).collect();
        server.post_with(&path, &self.key, &extra, json!({ "amountCents": cents })).await
    }

    pub async fn balance(&self, server: &TestServer) -> Value {
        let r = server.get(&format!("/api/v1/campaigns/{}/balance", self.campaign_id), Some(&self.key)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()
    }

    pub async fn wallet(&self, server: &TestServer) -> Value {
        wallet_of(server, &self.affiliate_key).await
    }

    /// Polls the balance until `check` holds.
    pub async fn balance_until(&self, server: &TestServer, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        server.until(what, || async { Some(self.balance(server).await).filter(|b| check(b)) }).await
    }

    /// Polls the affiliate's wallet until `check` holds.
    pub async fn wallet_until(&self, server: &TestServer, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        server.until(what, || async { Some(self.wallet(server).await).filter(|w| check(w)) }).await
    }

    /// Creates a referral as the world's affiliate (asserting a 201).
    pub async fn referral(&self, server: &TestServer, extra: Value) -> Value {
        let mut body = json!({ "campaignId": self.campaign_id });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        let r = server.post("/api/v1/referrals", Some(&self.affiliate_key), body).await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.json()
    }

    pub async fn confirm(&self, server: &TestServer, referral_id: &str, body: Value) -> Reply {
        server.post(&format!("/api/v1/referrals/{referral_id}/confirm"), Some(&self.key), body).await
    }

    /// Submits a direct lead with one evidence item as the world's affiliate.
    pub async fn submit_lead(&self, server: &TestServer) -> Value {
        let body = json!({
            "campaignId": self.campaign_id,
            "trackingCode": self.code,
            "evidence": [{ "type": "tweet", "url": "https://x.com/agent/status/123456" }],
        });
        let r = server.post("/api/v1/leads", Some(&self.affiliate_key), body).await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.json()
    }

    pub async fn review(&self, server: &TestServer, lead_id: &str, decision: &str, body: Value) -> Reply {
        server.post(&format!("/api/v1/leads/{lead_id}/{decision}"), Some(&self.key), body).await
    }

    pub async fn reverse(&self, server: &TestServer, id: &str, reason: &str) -> Reply {
        server.post(&format!("/api/v1/conversions/{id}/reverse"), Some(&self.key), json!({ "reason": reason })).await
    }
}

pub async fn wallet_of(server: &TestServer, affiliate_key: &str) -> Value {
    let r = server.get("/api/v1/wallet", Some(affiliate_key)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

/// The first page of a campaign's leads as its advertiser sees them.
pub async fn leads_of(server: &TestServer, w: &World, query: &str) -> Reply {
    server.get(&format!("/api/v1/leads?campaignId={}{query}", w.campaign_id), Some(&w.key)).await
}

/// Asserts a JSON error answer `{error: code, message}` with `status`: the
/// one error shape of the API, from its one error mapping.
pub fn expect_error(r: &Reply, status: u16, code: &str) -> Value {
    assert_eq!(r.status.as_u16(), status, "unexpected status; body: {}", r.text);
    let ct = r.header("content-type").unwrap_or("");
    assert!(ct.starts_with("application/json"), "content-type {ct:?}; body: {}", r.text);
    let body = r.json();
    assert_eq!(body["error"], code, "error code; body: {}", r.text);
    assert!(body["message"].as_str().is_some_and(|m| !m.trim().is_empty()), "no message: {}", r.text);
    body
}

/// A 400 `validation_failed` about `field`: the `field` member is set and
/// the message names it.
pub fn expect_validation(r: &Reply, field: &str) -> Value {
    let body = expect_error(r, 400, "validation_failed");
    assert_eq!(body["field"], field, "field; body: {}", r.text);
    assert!(body["message"].as_str().unwrap().contains(field), "message does not name {field}: {}", r.text);
    body
}

/// A 400 about `field`, caught while decoding (`invalid_json`: wrong type,
/// missing, unknown) or while validating (`validation_failed`): the message
/// names the field, and a `field` member, when present, is that field.
pub fn expect_400_naming(r: &Reply, field: &str) -> Value {
    let code = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(code == "invalid_json" || code == "validation_failed", "error code {code:?}: {}", r.text);
    let body = expect_error(r, 400, &code);
    assert!(body["message"].as_str().unwrap().contains(field), "message does not name {field}: {}", r.text);
    if let Some(f) = body.get("field") {
        assert_eq!(f, field, "field; body: {}", r.text);
    }
    body
}
