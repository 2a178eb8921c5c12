//! Direct leads with evidence (seed section 4): the affiliate submits, the
//! advertiser lists, verifies (which creates the payout) or rejects; every
//! decision is final, repeating one is harmless, and bad input stores nothing.

mod common;

use clickledger::domain::ids::LeadId;
use common::*;
use serde_json::{json, Value};

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

async fn submit_raw(server: &TestServer, key: &str, body: Value) -> Reply {
    server.post("/api/v1/leads", Some(key), body).await
}

fn lead_body(w: &World, evidence: Value) -> Value {
    json!({ "campaignId": w.campaign_id, "trackingCode": w.code, "evidence": evidence })
}

async fn lead_count(server: &TestServer, w: &World) -> usize {
    leads_of(server, w, "").await.json()["leads"].as_array().unwrap().len()
}

// ---------------------------------------------------------------- submitting

#[tokio::test]
async fn an_affiliate_submits_a_direct_lead_with_evidence_and_it_waits_for_review() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let hash = "AB".repeat(32);
    let evidence = json!([
        { "type": "tweet", "url": "https://x.com/agent/status/123456", "description": "Promoted the product to 50k followers" },
        { "type": "blog_post", "url": "https://blog.example.com/product-review", "hash": hash },
        { "type": "code_commit" },
    ]);
    let r = submit_raw(&server, &w.affiliate_key, lead_body(&w, evidence)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let lead = r.json();
    assert!(s(&lead["id"]).starts_with("lead_"), "{lead}");
    assert_eq!(lead["status"], "pending_review");
    assert_eq!(lead["source"], "direct");
    assert_eq!(lead["eventType"], "LEAD");
    assert_eq!(lead["payoutCents"], 500);
    assert_eq!(lead["campaignId"], w.campaign_id.as_str());
    assert_eq!(lead["affiliateId"], w.affiliate_id.as_str());
    assert_eq!(lead["evidence"].as_array().unwrap().len(), 3);
    assert_eq!(lead["evidence"][0]["description"], "Promoted the product to 50k followers");
    assert_eq!(lead["evidence"][1]["hash"], "ab".repeat(32), "hashes are kept in lower case");
    // Each submission is its own lead.
    w.submit_lead(&server).await;
    assert_eq!(lead_count(&server, &w).await, 2);
    // Nothing is paid before review.
    assert_eq!(w.wallet(&server).await["pendingCents"], 0);
}

#[tokio::test]
async fn bad_evidence_is_a_400_naming_the_exact_field_and_stores_nothing() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let tweet = json!({ "type": "tweet" });
    let cases = [
        (json!([{ "type": "podcast" }]), "evidence[0].type"),
        (json!([{ "url": "https://x.com" }]), "evidence[0].type"),
        (json!([tweet, { "type": "email", "url": "ftp://mail.example.com" }]), "evidence[1].url"),
        (json!([{ "type": "email", "url": "javascript:alert(1)" }]), "evidence[0].url"),
        (json!([{ "type": "email", "hash": "abc" }]), "evidence[0].hash"),
        (json!([{ "type": "email", "description": "x".repeat(2001) }]), "evidence[0].description"),
        (json!([{ "type": "email", "extra": 1 }]), "evidence[0].extra"),
        (json!(["tweet"]), "evidence[0]"),
        (json!([]), "evidence"),
        (Value::Array(vec![tweet.clone(); 11]), "evidence"),
    ];
    for (evidence, field) in cases {
        let r = submit_raw(&server, &w.affiliate_key, lead_body(&w, evidence)).await;
        expect_400_naming(&r, field);
    }
    let r = submit_raw(&server, &w.affiliate_key, json!({ "campaignId": w.campaign_id, "trackingCode": w.code })).await;
    expect_400_naming(&r, "evidence");
    let r = submit_raw(&server, &w.affiliate_key, json!({ "campaignId": w.campaign_id, "evidence": [tweet] })).await;
    expect_400_naming(&r, "trackingCode");
    let r = submit_raw(&server, &w.affiliate_key, json!({ "campaignId": "cmp_x", "trackingCode": w.code })).await;
    expect_400_naming(&r, "campaignId");
    assert_eq!(lead_count(&server, &w).await, 0);
}

#[tokio::test]
async fn a_direct_lead_on_a_rev_share_campaign_is_a_400_pointing_to_postbacks_and_referrals() {
    let server = TestServer::start_money().await;
    let w = World::rev_share(&server, json!(20)).await;
    let r = submit_raw(&server, &w.affiliate_key, lead_body(&w, json!([{ "type": "tweet" }]))).await;
    let v = expect_400_naming(&r, "campaignId");
    let message = v["message"].as_str().unwrap();
    assert!(message.contains("postback") && message.contains("revenueCents"), "{message}");
    assert_eq!(lead_count(&server, &w).await, 0);
}

#[tokio::test]
async fn a_tracking_code_that_is_not_the_affiliates_own_on_the_campaign_is_a_403() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let (_, _, other_code) = w.another_affiliate(&server).await;
    let test_code = s(&w.campaign["testTrackingCode"]).to_string();
    let elsewhere = World::fixed(&server, 500).await;
    for code in [other_code.as_str(), test_code.as_str(), elsewhere.code.as_str(), "NoSuchCd"] {
        let body = json!({ "campaignId": w.campaign_id, "trackingCode": code, "evidence": [{ "type": "tweet" }] });
        expect_error(&submit_raw(&server, &w.affiliate_key, body).await, 403, "forbidden");
    }
    assert_eq!(lead_count(&server, &w).await, 0);
}

#[tokio::test]
async fn a_lead_for_an_unknown_campaign_is_a_404_and_needs_an_affiliate_key() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let body =
        json!({ "campaignId": "cmp_0000000000000001", "trackingCode": w.code, "evidence": [{ "type": "tweet" }] });
    expect_error(&submit_raw(&server, &w.affiliate_key, body).await, 404, "not_found");
    let body = lead_body(&w, json!([{ "type": "tweet" }]));
    expect_error(&submit_raw(&server, &w.key, body.clone()).await, 403, "forbidden");
    expect_error(&server.post("/api/v1/leads", None, body).await, 401, "unauthorized");
}

#[tokio::test]
async fn a_direct_lead_for_a_paused_campaign_is_a_409_campaign_inactive() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    server.post(&format!("/api/v1/campaigns/{}/pause", w.campaign_id), Some(&w.key), json!({})).await;
    let r = submit_raw(&server, &w.affiliate_key, lead_body(&w, json!([{ "type": "tweet" }]))).await;
    expect_error(&r, 409, "campaign_inactive");
}

// ---------------------------------------------------------------- listing

#[tokio::test]
async fn the_advertiser_lists_leads_newest_first_filtered_by_status_and_paged() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(s(&w.submit_lead(&server).await["id"]).to_string());
    }
    assert_eq!(w.postback(&server, "order-1", None).await.status, 201);

    let all = leads_of(&server, &w, "").await.json();
    let all = all["leads"].as_array().unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0]["source"], "postback", "newest first");
    let listed: Vec<&str> = all[1..].iter().map(|l| s(&l["id"])).collect();
    assert_eq!(listed, ids.iter().rev().map(String::as_str).collect::<Vec<_>>());

    let pending = leads_of(&server, &w, "&status=pending_review").await.json();
    assert_eq!(pending["leads"].as_array().unwrap().len(), 3);
    let verified = leads_of(&server, &w, "&status=verified").await.json();
    assert_eq!(verified["leads"].as_array().unwrap().len(), 1);

    let first = leads_of(&server, &w, "&status=pending_review&limit=2").await.json();
    assert_eq!(first["leads"].as_array().unwrap().len(), 2);
    let next = s(&first["nextBefore"]).to_string();
    let second = leads_of(&server, &w, &format!("&status=pending_review&limit=2&before={next}")).await.json();
    assert_eq!(second["leads"].as_array().unwrap().len(), 1);
    assert_eq!(second["leads"][0]["id"], ids[0].as_str());
    assert_eq!(second["nextBefore"], Value::Null);
}

#[tokio::test]
async fn listing_leads_with_a_bad_query_is_a_400_naming_the_parameter() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let r = server.get("/api/v1/leads", Some(&w.key)).await;
    expect_400_naming(&r, "campaignId");
    let r = server.get("/api/v1/leads?campaignId=nope", Some(&w.key)).await;
    expect_400_naming(&r, "campaignId");
    for (query, field) in [
        ("&status=pending", "status"),
        ("&limit=0", "limit"),
        ("&limit=201", "limit"),
        ("&limit=ten", "limit"),
        ("&before=lead_zz", "before"),
        ("&stauts=verified", "stauts"),
        ("&status=verified&status=rejected", "status"),
    ] {
        expect_400_naming(&leads_of(&server, &w, query).await, field);
    }
}

#[tokio::test]
async fn another_advertisers_leads_are_403_and_an_unknown_campaign_404() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let other = World::fixed(&server, 500).await;
    let r = server.get(&format!("/api/v1/leads?campaignId={}", w.campaign_id), Some(&other.key)).await;
    expect_error(&r, 403, "forbidden");
    let r = server.get("/api/v1/leads?campaignId=cmp_0000000000000001", Some(&w.key)).await;
    expect_error(&r, 404, "not_found");
    let r = server.get(&format!("/api/v1/leads?campaignId={}", w.campaign_id), Some(&w.affiliate_key)).await;
    expect_error(&r, 403, "forbidden");
}

// ---------------------------------------------------------------- reviewing

#[tokio::test]
async fn verifying_a_lead_creates_its_payout_and_verifying_again_answers_the_same() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let id = s(&w.submit_lead(&server).await["id"]).to_string();
    let r = w.review(&server, &id, "verify", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["lead"]["status"], "verified");
    assert!(v["lead"]["reviewedAt"].is_u64(), "{v}");
    assert_eq!(v["payout"]["amountCents"], 500);
    assert_eq!(v["payout"]["source"], id.as_str());
    assert_eq!(v["payout"]["status"], "awaiting_funds", "nothing funded yet: {v}");

    // No body at all is fine too, and the answer is the same payout.
    let auth = format!("Bearer {}", w.key);
    let path = format!("/api/v1/leads/{id}/verify");
    let again = server.send(hyper::Method::POST, &path, &[("authorization", auth.as_str())], Vec::new()).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["payout"]["id"], v["payout"]["id"]);
    assert_eq!(w.wallet(&server).await["pendingCents"], 500, "one payout, not two");
    assert_eq!(leads_of(&server, &w, "&status=verified").await.json()["leads"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn rejecting_needs_a_reason_and_the_decision_is_final() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let id = s(&w.submit_lead(&server).await["id"]).to_string();
    expect_400_naming(&w.review(&server, &id, "reject", json!({})).await, "reason");
    expect_400_naming(&w.review(&server, &id, "reject", json!({ "reason": "   " })).await, "reason");
    expect_400_naming(&w.review(&server, &id, "reject", json!({ "reason": "x".repeat(1001) })).await, "reason");
    expect_400_naming(&w.review(&server, &id, "reject", json!({ "reason": 5 })).await, "reason");
    assert_eq!(leads_of(&server, &w, "&status=pending_review").await.json()["leads"].as_array().unwrap().len(), 1);

    let r = w.review(&server, &id, "reject", json!({ "reason": "the tweet was deleted" })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let lead = r.json()["lead"].clone();
    assert_eq!(
        (lead["status"].clone(), lead["rejectionReason"].clone()),
        (json!("rejected"), json!("the tweet was deleted"))
    );
    assert!(r.json().get("payout").is_none());

    let again = w.review(&server, &id, "reject", json!({ "reason": "again" })).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["lead"]["rejectionReason"], "the tweet was deleted", "the first decision stands");
    let flip = expect_error(&w.review(&server, &id, "verify", json!({})).await, 409, "already_decided");
    assert!(flip["message"].as_str().unwrap().contains("rejected"), "{flip}");
    assert_eq!(w.wallet(&server).await["pendingCents"], 0);
    expect_error(&w.reverse(&server, &id, "refund").await, 409, "nothing_to_reverse");
}

#[tokio::test]
async fn a_verified_lead_cannot_be_rejected() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let id = s(&w.submit_lead(&server).await["id"]).to_string();
    assert_eq!(w.review(&server, &id, "verify", json!({})).await.status, 200);
    let r = expect_error(
        &w.review(&server, &id, "reject", json!({ "reason": "changed my mind" })).await,
        409,
        "already_decided",
    );
    assert!(r["message"].as_str().unwrap().contains("reverse"), "points to reversal: {r}");
    // A postback's lead is verified from the start.
    let posted = w.postback(&server, "order-9", None).await.json();
    let r = w.review(&server, s(&posted["leadId"]), "reject", json!({ "reason": "fraud" })).await;
    expect_error(&r, 409, "already_decided");
}

#[tokio::test]
async fn reviewing_an_unknown_lead_is_a_404_and_another_advertisers_a_403() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let other = World::fixed(&server, 500).await;
    let id = s(&w.submit_lead(&server).await["id"]).to_string();
    expect_error(&other.review(&server, &id, "verify", json!({})).await, 403, "forbidden");
    expect_error(&other.review(&server, &id, "reject", json!({ "reason": "no" })).await, 403, "forbidden");
    let r = server.post(&format!("/api/v1/leads/{id}/verify"), Some(&w.affiliate_key), json!({})).await;
    expect_error(&r, 403, "forbidden");
    expect_error(&w.review(&server, &LeadId(1).to_string(), "verify", json!({})).await, 404, "not_found");
    expect_error(&w.review(&server, "lead_nope", "verify", json!({})).await, 404, "not_found");
    expect_400_naming(&w.review(&server, &id, "verify", json!({ "note": "x" })).await, "note");
    assert_eq!(leads_of(&server, &w, "&status=pending_review").await.json()["leads"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_verified_direct_lead_is_credited_to_the_wallet_after_funding_and_the_hold() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let id = s(&w.submit_lead(&server).await["id"]).to_string();
    assert_eq!(w.review(&server, &id, "verify", json!({})).await.status, 200);
    w.fund(&server, 500).await;
    w.balance_until(&server, "the payout is escrowed", |b| b["escrowedCents"] == 500).await;
    server.advance_days(31).await;
    let wallet = w.wallet_until(&server, "the wallet is credited", |v| v["availableCents"] == 500).await;
    assert_eq!(wallet["pendingCents"], 0, "{wallet}");
}
