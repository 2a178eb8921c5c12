//! Shared by the ops tests: drives a real engine through every route family
//! (clicks, conversions, postbacks, referrals, leads, money), so that every
//! metric an operator's dashboard or alert could name has been touched, and
//! reads the exposition format back.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::common::*;

/// Exercises every route family once or twice, including a duplicate, a
/// rejection, a bot click and money that moves through escrow to a wallet.
/// Needs a server from `TestServer::start_money` (supervisor ticks of 50 ms
/// and a clock the test moves).
pub async fn drive_every_route_family(server: &TestServer) {
    let w = World::fixed(server, 500).await;
    w.fund(server, 100_000).await;

    // Clicks (a human and a bot) and a conversion, sent twice: recorded, then
    // answered from the idempotency window.
    let token = w.click_token(server).await;
    let bot = server.send(hyper::Method::GET, &format!("/r/{}", w.code), &[("user-agent", "curl/8.0")], vec![]).await;
    assert_eq!(bot.status, 302, "{}", bot.text);
    assert_eq!(w.convert(server, &token).await.status, 201);
    assert_eq!(w.convert(server, &token).await.status, 200);

    // Postbacks: recorded, duplicate, rejected (unknown tracking code), refund.
    assert_eq!(w.postback(server, "order-1", None).await.status, 201);
    assert_eq!(w.postback(server, "order-1", None).await.status, 200);
    let unknown = json!({ "swarm_ref": "nope", "externalId": "x", "eventType": "PURCHASE" });
    assert!(server.post("/api/v1/postback", Some(&w.key), unknown).await.status.is_client_error());

    // A referral confirmed, and a direct lead submitted and verified.
    let referral = w.referral(server, json!({})).await;
    let verify = server.post("/api/v1/referrals/verify", Some(&w.key), json!({ "token": referral["token"] })).await;
    assert_eq!(verify.status, 200, "{}", verify.text);
    let id = referral["id"].as_str().expect("referral id");
    assert_eq!(w.confirm(server, id, json!({})).await.status, 201);
    let lead = w.submit_lead(server).await;
    let lead_id = lead["id"].as_str().expect("lead id");
    assert_eq!(w.review(server, lead_id, "verify", json!({})).await.status, 200);

    // Money: escrowed by the supervisor, released after the hold, credited.
    w.balance_until(server, "the payouts are escrowed", |b| b["escrowedCents"].as_i64() > Some(0)).await;
    server.advance_days(31).await;
    w.wallet_until(server, "the wallet is credited", |v| v["availableCents"].as_i64() > Some(0)).await;
    let refund = json!({ "swarm_ref": w.code, "externalId": "order-1", "eventType": "REFUND" });
    assert!(server.post("/api/v1/postback", Some(&w.key), refund).await.status.is_success());

    // Reads, and the operator endpoints.
    assert_eq!(server.get(&format!("/api/v1/campaigns/{}", w.campaign_id), Some(&w.key)).await.status, 200);
    assert_eq!(server.get("/healthz", None).await.status, 200);
    assert_eq!(server.get("/no/such/route", None).await.status, 404);
}

/// Metric name → type (`counter`, `gauge`, `histogram`...), from the
/// exposition's `# TYPE` lines.
pub fn exported_types(exposition: &str) -> BTreeMap<String, String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_string(), kind.trim().to_string()))
        .collect()
}

/// Whether a series name a query uses is exported: directly, or as one of a
/// histogram's `_bucket`, `_sum` and `_count` series.
pub fn is_exported(name: &str, types: &BTreeMap<String, String>) -> bool {
    types.contains_key(name)
        || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            name.strip_suffix(suffix).is_some_and(|base| types.get(base).is_some_and(|t| t == "histogram"))
        })
}

/// Every `clickledger_*` name in `text` (a PromQL expression, a rules file).
pub fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("clickledger_") {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        // Part of a longer identifier (a label value like "my_clickledger_x") is not a metric.
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.push(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// Path of a file under the repository root.
pub fn repo_file(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Whether a test that needs `tool` runs: it must under CI=true; elsewhere a
/// missing tool skips the test with a message.
pub fn tool_available(tool: &str) -> bool {
    let found = std::process::Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI=true but `{tool}` is not installed: run deploy/tools/install (Debian's prometheus package)"
        );
        eprintln!("skipped: `{tool}` is not installed (apt-get install prometheus, or deploy/tools/install)");
    }
    found
}

pub fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
