//! The change feed over HTTP (`GET /api/v1/admin/changes`): what the store
//! committed, each record once, resumable from the cursor a page returns,
//! and still there after a kill -9.

mod common;

use common::*;
use serde_json::{json, Value};

const CHANGES: &str = "/api/v1/admin/changes";

async fn postback(server: &TestServer, w: &World, external_id: &str) -> Value {
    let body = json!({"swarm_ref": w.code, "externalId": external_id, "eventType": "PURCHASE", "revenueCents": 5000});
    let r = server.post("/api/v1/postback", Some(&w.key), body).await;
    assert!(r.status.is_success(), "{}", r.text);
    r.json()
}

/// Pages through the feed from `after` until `want` recorded leads came
/// (CQL shows a change only once it is a few seconds old); returns them and
/// the cursor. Other changes (tracking confirmed, money) are passed over.
async fn follow(server: &TestServer, admin: &str, after: &str, want: usize) -> (Vec<Value>, String) {
    follow_kind(server, admin, after, want, "lead.recorded").await
}

async fn follow_kind(server: &TestServer, admin: &str, after: &str, want: usize, kind: &str) -> (Vec<Value>, String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (mut seen, mut cursor) = (Vec::new(), after.to_string());
    while seen.len() < want {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {want} changes, saw {seen:?}");
        let r = server.get(&format!("{CHANGES}?limit=2&after={cursor}"), Some(admin)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let page = r.json();
        let changes = page["changes"].as_array().unwrap();
        assert!(changes.len() <= 2, "a page holds at most its limit");
        if changes.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        seen.extend(changes.iter().filter(|c| c["type"] == kind).cloned());
        cursor = page["next"].as_str().unwrap().to_string();
    }
    (seen, cursor)
}

#[tokio::test]
async fn recorded_postbacks_are_in_the_feed_once_each_and_survive_a_kill_9() {
    let server = TestServer::start().await;
    let admin = server.admin_key().await;
    let start = server.get(CHANGES, Some(&admin)).await.json()["next"].as_str().unwrap().to_string();
    let w = World::fixed(&server, 700).await;
    let first = postback(&server, &w, "order-1").await;
    postback(&server, &w, "order-1").await;
    let second = postback(&server, &w, "order-2").await;
    let (seen, next) = follow(&server, &admin, &start, 2).await;
    let ids: Vec<&Value> = seen.iter().map(|c| &c["id"]).collect();
    if cql_mode() {
        assert_eq!(ids.len(), 2, "{seen:?}");
        assert!(ids.contains(&&first["leadId"]) && ids.contains(&&second["leadId"]), "{seen:?}");
    } else {
        assert_eq!(ids, [&first["leadId"], &second["leadId"]], "in commit order, the duplicate left out");
    }
    let change = &seen[0];
    assert_eq!(change["type"], "lead.recorded", "{change}");
    assert_eq!(change["data"]["id"], change["id"], "{change}");
    assert_eq!(change["data"]["campaignId"], w.campaign_id.as_str(), "the record as the API shows it");

    let server = server.kill9_and_restart().await;
    let third = postback(&server, &w, "order-3").await;
    let (after_restart, _) = follow(&server, &admin, &next, 1).await;
    assert_eq!(after_restart.len(), 1, "the cursor resumes after a restart: {after_restart:?}");
    assert_eq!(after_restart[0]["id"], third["leadId"]);
    let (from_start, _) = follow(&server, &admin, &start, 3).await;
    assert_eq!(from_start.len(), 3, "what was acknowledged before the kill is still there: {from_start:?}");
}

#[tokio::test]
async fn the_feed_wants_the_admin_key_and_a_cursor_it_gave() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 700).await;
    assert_eq!(server.get(CHANGES, None).await.status, 401);
    assert_eq!(server.get(CHANGES, Some(&w.key)).await.status, 401, "an advertiser's key is not the admin key");
    let admin = server.admin_key().await;
    for bad in ["after=not-a-cursor", "after=bm9wZQ", "limit=0", "limit=1001", "since=1"] {
        let r = server.get(&format!("{CHANGES}?{bad}"), Some(&admin)).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        let field = bad.split('=').next().unwrap();
        assert!(r.text.contains(field), "{bad}: names the parameter: {}", r.text);
    }
}

#[tokio::test]
async fn reviews_money_moves_expiries_and_tracking_confirmations_are_changes_too() {
    let server = TestServer::start_money().await;
    let admin = server.admin_key().await;
    let start = server.get(CHANGES, Some(&admin)).await.json()["next"].as_str().unwrap().to_string();
    let w = World::fixed(&server, 700).await;
    let (confirmed, _) = follow_kind(&server, &admin, &start, 1, "campaign.tracking_confirmed").await;
    assert_eq!(confirmed[0]["id"], w.campaign_id.as_str());
    w.fund(&server, 10_000).await;
    let lead = w.submit_lead(&server).await;
    let lead_id = lead["id"].as_str().unwrap();
    assert_eq!(w.review(&server, lead_id, "verify", json!({})).await.status, 200);
    let (reviewed, _) = follow_kind(&server, &admin, &start, 1, "lead.verified").await;
    assert_eq!((reviewed[0]["id"].as_str(), reviewed[0]["data"]["status"].as_str()), (Some(lead_id), Some("verified")));
    let (escrowed, _) = follow_kind(&server, &admin, &start, 1, "payout.escrowed").await;
    assert_eq!(escrowed[0]["data"]["source"].as_str(), Some(lead_id), "{escrowed:?}");
    // A second lead is reversed while escrowed (cancel); the first after
    // the hold (release, credit, then clawback).
    let second = w.submit_lead(&server).await;
    let second_id = second["id"].as_str().unwrap();
    assert_eq!(w.review(&server, second_id, "verify", json!({})).await.status, 200);
    follow_kind(&server, &admin, &start, 2, "payout.escrowed").await;
    let r = w.reverse(&server, second_id, "chargeback").await;
    assert!(r.status.is_success(), "{}", r.text);
    let (cancelled, _) = follow_kind(&server, &admin, &start, 1, "payout.cancelled").await;
    assert_eq!(cancelled[0]["data"]["source"].as_str(), Some(second_id), "{cancelled:?}");
    server.advance_days(31).await;
    let (released, _) = follow_kind(&server, &admin, &start, 1, "payout.released").await;
    let (credited, _) = follow_kind(&server, &admin, &start, 1, "payout.credited").await;
    assert_eq!(
        (released[0]["id"].clone(), credited[0]["id"].clone()),
        (escrowed[0]["id"].clone(), escrowed[0]["id"].clone())
    );
    let r = w.reverse(&server, lead_id, "chargeback").await;
    assert!(r.status.is_success(), "{}", r.text);
    let (clawed, _) = follow_kind(&server, &admin, &start, 1, "payout.clawed_back").await;
    assert_eq!(clawed[0]["data"]["status"], "reversed", "{clawed:?}");
    let (all, _) = follow_kind(&server, &admin, &start, 2, "payout.escrowed").await;
    assert_eq!(all.len(), 2, "each move once");

    let referral = w.referral(&server, json!({})).await;
    assert!(referral["id"].as_str().unwrap().starts_with("ref_"), "{referral}");
    server.advance_days(400).await;
    let (expired, _) = follow_kind(&server, &admin, &start, 1, "referral.expired").await;
    assert_eq!(expired[0]["id"], referral["id"], "{expired:?}");
}
