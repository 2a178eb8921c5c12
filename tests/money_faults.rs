//! The money path under `kill -9`: postbacks, deposits, reversals and clock
//! jumps keep the supervisors moving money while the engine process is
//! killed at random moments and restarted over the same data. Afterwards
//! every wallet holds exactly what the acknowledged events say, and the
//! ledger's invariants hold.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{json, Value};

use common::*;

const PAYOUT: i64 = 250;
const DAY: u64 = 86_400;

const ENV: &[(&str, &str)] = &[("CLICKLEDGER_MONEY_TEST_CLOCK", "true"), ("CLICKLEDGER_MONEY_TICK_MS", "10")];

/// An advertiser, one affiliate (with its key) and an active FIXED campaign
/// with a one-day hold.
struct Setup {
    key: String,
    affiliate_key: String,
    campaign: String,
    code: String,
}

async fn setup(server: &TestServer) -> Setup {
    let adv = server.post("/api/v1/admin/advertisers", Some(ADMIN_KEY), json!({"name": "Acme"})).await.json();
    let key = adv["apiKey"].as_str().unwrap().to_string();
    let aff = server.post("/api/v1/admin/affiliates", Some(ADMIN_KEY), json!({"name": "Agent"})).await.json();
    let body = json!({"name": "Kill test", "landingUrl": "https://shop.example/", "compensationModel": "FIXED",
                      "payoutCents": PAYOUT, "holdDays": 1});
    let campaign = server.post("/api/v1/campaigns", Some(&key), body).await.json();
    let id = campaign["id"].as_str().unwrap().to_string();
    let test_code = campaign["testTrackingCode"].as_str().unwrap();
    let test = json!({"swarm_ref": test_code, "externalId": "t", "eventType": "PURCHASE"});
    assert_eq!(server.post("/api/v1/postback", Some(&key), test).await.status, 200);
    assert_eq!(server.post(&format!("/api/v1/campaigns/{id}/activate"), Some(&key), json!({})).await.status, 200);
    let approve = json!({"affiliateId": aff["id"]});
    let approval = server.post(&format!("/api/v1/campaigns/{id}/affiliates"), Some(&key), approve).await.json();
    Setup {
        key,
        affiliate_key: aff["apiKey"].as_str().unwrap().to_string(),
        campaign: id,
        code: approval["trackingCode"].as_str().unwrap().to_string(),
    }
}

/// What the test has had acknowledged; requests cut off by a kill are retried
/// after the restart until they are, so the totals are exact.
#[derive(Default)]
struct Book {
    leads: Vec<String>,
    reversed: HashSet<String>,
    funded: i64,
}

/// Sends until a 2xx (a kill may cut a request off; every one is idempotent).
async fn until_ok(server: &TestServer, path: &str, key: &str, body: Value, headers: &[(&str, &str)]) -> Value {
    for _ in 0..100 {
        let mut h = vec![("content-type", "application/json"), ("authorization", "")];
        let auth = format!("Bearer {key}");
        h[1].1 = &auth;
        h.extend_from_slice(headers);
        let r = server.send(hyper::Method::POST, path, &h, serde_json::to_vec(&body).unwrap()).await;
        if r.status.is_success() {
            return r.json();
        }
        assert!(r.status.is_server_error(), "{path}: {} {}", r.status, r.text);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{path} never succeeded");
}

async fn round(server: &TestServer, s: &Setup, book: &mut Book, round: usize) {
    for i in 0..12 {
        let body = json!({"swarm_ref": s.code, "externalId": format!("r{round}-{i}"), "eventType": "PURCHASE"});
        let lead = until_ok(server, "/api/v1/postback", &s.key, body, &[]).await;
        book.leads.push(lead["leadId"].as_str().unwrap().to_string());
    }
    // Reverse every fifth lead so far: some before escrow, some after credit.
    for lead in book.leads.iter().step_by(5).take(round + 1) {
        if book.reversed.insert(lead.clone()) {
            let path = format!("/api/v1/conversions/{lead}/reverse");
            until_ok(server, &path, &s.key, json!({"reason": "refund"}), &[]).await;
        }
    }
    let deposit = 7 * PAYOUT;
    let idem = format!("round-{round}");
    let fund = format!("/api/v1/campaigns/{}/fund", s.campaign);
    until_ok(server, &fund, &s.key, json!({"amountCents": deposit}), &[("idempotency-key", &idem)]).await;
    book.funded += deposit;
    let advance = json!({"seconds": DAY / 2});
    until_ok(server, "/api/v1/admin/clock/advance", ADMIN_KEY, advance, &[]).await;
}

async fn wallet(server: &TestServer, key: &str) -> (Value, Vec<Value>) {
    let mut entries = Vec::new();
    let mut before = String::new();
    loop {
        let path = if before.is_empty() {
            "/api/v1/wallet?limit=50".to_string()
        } else {
            format!("/api/v1/wallet?limit=50&before={before}")
        };
        let page = server.get(&path, Some(key)).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let page = page.json();
        entries.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["nextBefore"].as_str() {
            Some(next) => before = next.to_string(),
            None => return (page, entries),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallets_are_exact_after_kill_9_at_random_moments_while_money_moves() {
    let mut server = TestServer::start_with(ENV).await;
    let s = setup(&server).await;
    let mut book = Book::default();
    let mut seed = std::process::id() as u64;
    for r in 0..6 {
        round(&server, &s, &mut book, r).await;
        // A pseudo-random moment while the supervisors work through it.
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        tokio::time::sleep(Duration::from_millis(seed >> 33 & 0xFF)).await;
        server = server.kill9_and_restart().await;
    }
    // Fund everything still owed and let the hold pass; then wait until quiet.
    let fund = format!("/api/v1/campaigns/{}/fund", s.campaign);
    let top_up = PAYOUT * book.leads.len() as i64;
    until_ok(&server, &fund, &s.key, json!({"amountCents": top_up}), &[("idempotency-key", "final")]).await;
    book.funded += top_up;
    until_ok(&server, "/api/v1/admin/clock/advance", ADMIN_KEY, json!({"seconds": 3 * DAY}), &[]).await;

    let kept = (book.leads.len() - book.reversed.len()) as i64;
    let expected = kept * PAYOUT;
    let mut last = Value::Null;
    // A polling bound, not a timing claim: generous, because on a loaded CI
    // machine each CQL step of the catch-up can take a while.
    for i in 0..2400 {
        let (w, _) = wallet(&server, &s.affiliate_key).await;
        if w["availableCents"] == expected && w["pendingCents"] == 0 {
            break;
        }
        last = w;
        if i % 20 == 19 {
            // Payouts escrowed after the jump start their hold then: jump again.
            until_ok(&server, "/api/v1/admin/clock/advance", ADMIN_KEY, json!({"seconds": 2 * DAY}), &[]).await;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (w, entries) = wallet(&server, &s.affiliate_key).await;
    assert_eq!((w["availableCents"].as_i64(), w["pendingCents"].as_i64()), (Some(expected), Some(0)), "{last}");

    // No payout credited twice; the wallet is the sum of its money lines.
    let mut credits: HashMap<String, usize> = HashMap::new();
    let mut money = 0;
    for e in &entries {
        let kind = e["kind"].as_str().unwrap();
        if kind == "credit" {
            *credits.entry(e["payoutId"].as_str().unwrap().to_string()).or_default() += 1;
        }
        if kind == "credit" || kind == "clawback" {
            money += e["amountCents"].as_i64().unwrap();
        }
    }
    assert!(credits.values().all(|n| *n == 1), "a payout was credited twice: {credits:?}");
    assert_eq!(money, expected);
    assert_eq!(w["reversedCents"].as_i64(), Some(book.reversed.len() as i64 * PAYOUT));

    let balance = server.get(&format!("/api/v1/campaigns/{}/balance", s.campaign), Some(&s.key)).await.json();
    assert_eq!(balance["fundedCents"].as_i64(), Some(book.funded));
    assert_eq!(balance["paidCents"].as_i64(), Some(expected));
    assert_eq!(balance["escrowedCents"].as_i64(), Some(0));
    assert_eq!(balance["availableCents"].as_i64(), Some(book.funded - expected));
}
