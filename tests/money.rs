//! The money path end to end: funding (idempotent), escrow when funded,
//! release after `holdDays` on a clock the test moves, the wallet credited
//! exactly once, reversals before and after credit (by id and by a REFUND
//! postback), exact balances, and the wallet's paging.

mod common;

use clickledger::domain::ids::{ConversionId, LeadId};
use common::*;
use serde_json::{json, Value};

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// Funded, available, escrowed, clearing and paid cents, in that order.
fn numbers(b: &Value) -> [i64; 5] {
    ["fundedCents", "availableCents", "escrowedCents", "clearingCents", "paidCents"]
        .map(|k| b[k].as_i64().unwrap_or_else(|| panic!("{k} missing: {b}")))
}

async fn refund(server: &TestServer, w: &World, external_id: &str) -> Reply {
    let body = json!({ "swarm_ref": w.code, "externalId": external_id, "eventType": "REFUND" });
    server.post("/api/v1/postback", Some(&w.key), body).await
}

fn lines_of_kind(wallet: &Value, kind: &str) -> usize {
    wallet["entries"].as_array().unwrap().iter().filter(|e| e["kind"] == kind).count()
}

// ---------------------------------------------------------------- escrow, release, credit

#[tokio::test]
async fn a_postback_is_escrowed_when_funded_and_credited_after_the_hold() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let funded = w.fund(&server, 10_000).await;
    assert_eq!(numbers(&funded), [10_000, 10_000, 0, 0, 0], "{funded}");
    assert_eq!(w.postback(&server, "order-1", None).await.status, 201);

    let b = w.balance_until(&server, "the payout is escrowed", |b| b["escrowedCents"] == 500).await;
    assert_eq!(numbers(&b), [10_000, 9_500, 500, 0, 0], "{b}");
    let wallet = w.wallet(&server).await;
    assert_eq!((wallet["pendingCents"].as_i64(), wallet["availableCents"].as_i64()), (Some(500), Some(0)), "{wallet}");

    // A day before the 30-day hold ends nothing is released.
    server.advance_days(29).await;
    assert_eq!(w.wallet(&server).await["availableCents"], 0);
    server.advance_days(2).await;
    let wallet = w.wallet_until(&server, "the wallet is credited", |v| v["availableCents"] == 500).await;
    assert_eq!(wallet["pendingCents"], 0, "{wallet}");
    assert_eq!(wallet["reversedCents"], 0, "{wallet}");
    let b = w.balance_until(&server, "clearing is empty", |b| b["clearingCents"] == 0).await;
    assert_eq!(numbers(&b), [10_000, 9_500, 0, 0, 500], "{b}");

    // More time and more supervisor passes credit nothing twice.
    server.advance_days(60).await;
    let wallet = w.wallet(&server).await;
    assert_eq!(wallet["availableCents"], 500, "{wallet}");
    assert_eq!(lines_of_kind(&wallet, "credit"), 1, "{wallet}");
}

#[tokio::test]
async fn an_unfunded_payout_waits_and_is_escrowed_when_funds_arrive() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    assert_eq!(w.postback(&server, "order-1", None).await.status, 201);
    w.wallet_until(&server, "the payout exists", |v| v["pendingCents"] == 500).await;
    assert_eq!(numbers(&w.balance(&server).await), [0, 0, 0, 0, 0]);

    // Not enough for the payout: it keeps waiting, the funds stay available.
    let b = w.fund(&server, 300).await;
    assert_eq!(numbers(&b), [300, 300, 0, 0, 0], "{b}");
    w.fund(&server, 700).await;
    let b = w.balance_until(&server, "the payout is escrowed", |b| b["escrowedCents"] == 500).await;
    assert_eq!(numbers(&b), [1_000, 500, 500, 0, 0], "{b}");
    server.advance_days(31).await;
    w.wallet_until(&server, "the wallet is credited", |v| v["availableCents"] == 500).await;
}

#[tokio::test]
async fn a_rev_share_postback_escrows_exactly_its_share() {
    let server = TestServer::start_money().await;
    let w = World::rev_share(&server, json!(12.5)).await;
    w.fund(&server, 5_000).await;
    assert_eq!(w.postback(&server, "order-1", Some(9_900)).await.status, 201);
    let b = w.balance_until(&server, "the payout is escrowed", |b| b["escrowedCents"] == 1_238).await;
    assert_eq!(numbers(&b), [5_000, 3_762, 1_238, 0, 0], "{b}");
}

// ---------------------------------------------------------------- funding

#[tokio::test]
async fn funding_with_the_same_idempotency_key_twice_deposits_once() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let first = w.fund_with_key(&server, 1_000, Some("deposit-2026-01")).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.json()["deposited"], true);
    let replay = w.fund_with_key(&server, 1_000, Some("deposit-2026-01")).await;
    assert_eq!(replay.status, 200, "{}", replay.text);
    assert_eq!(replay.json()["deposited"], false);
    assert_eq!(numbers(&replay.json()), [1_000, 1_000, 0, 0, 0]);
    assert_eq!(w.fund_with_key(&server, 1_000, Some("deposit-2026-02")).await.status, 201);
    // Without a key every call is a new deposit.
    assert_eq!(w.fund_with_key(&server, 5, None).await.status, 201);
    assert_eq!(w.fund_with_key(&server, 5, None).await.status, 201);
    assert_eq!(numbers(&w.balance(&server).await), [2_010, 2_010, 0, 0, 0]);
}

#[tokio::test]
async fn funding_needs_a_positive_whole_amount_and_a_sane_idempotency_key() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let path = format!("/api/v1/campaigns/{}/fund", w.campaign_id);
    for amount in [json!(0), json!(-5), json!(1.5), json!("100"), json!(1_000_000_000_001u64), Value::Null] {
        let r = server.post(&path, Some(&w.key), json!({ "amountCents": amount })).await;
        expect_400_naming(&r, "amountCents");
    }
    expect_400_naming(&server.post(&path, Some(&w.key), json!({})).await, "amountCents");
    expect_400_naming(
        &server.post(&path, Some(&w.key), json!({ "amountCents": 5, "currency": "EUR" })).await,
        "currency",
    );
    let long = "k".repeat(256);
    for key in [long.as_str(), "has space"] {
        let r = server.post_with(&path, &w.key, &[("idempotency-key", key)], json!({ "amountCents": 5 })).await;
        expect_400_naming(&r, "Idempotency-Key");
    }
    assert_eq!(numbers(&w.balance(&server).await), [0, 0, 0, 0, 0]);
    let most = server.post(&path, Some(&w.key), json!({ "amountCents": 1_000_000_000_000u64 })).await;
    assert_eq!(most.status, 201, "{}", most.text);
}

#[tokio::test]
async fn funding_or_reading_another_advertisers_campaign_is_a_403_and_an_unknown_one_a_404() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let other = World::fixed(&server, 500).await;
    let fund = format!("/api/v1/campaigns/{}/fund", w.campaign_id);
    let balance = format!("/api/v1/campaigns/{}/balance", w.campaign_id);
    expect_error(&server.post(&fund, Some(&other.key), json!({ "amountCents": 5 })).await, 403, "forbidden");
    expect_error(&server.get(&balance, Some(&other.key)).await, 403, "forbidden");
    expect_error(&server.post(&fund, Some(&w.affiliate_key), json!({ "amountCents": 5 })).await, 403, "forbidden");
    expect_error(&server.get(&balance, Some(&w.affiliate_key)).await, 403, "forbidden");
    expect_error(&server.get(&balance, None).await, 401, "unauthorized");
    for id in ["cmp_0000000000000001", "nope"] {
        let r = server.post(&format!("/api/v1/campaigns/{id}/fund"), Some(&w.key), json!({ "amountCents": 5 })).await;
        expect_error(&r, 404, "not_found");
        expect_error(&server.get(&format!("/api/v1/campaigns/{id}/balance"), Some(&w.key)).await, 404, "not_found");
    }
    assert_eq!(numbers(&w.balance(&server).await), [0, 0, 0, 0, 0]);
}

// ---------------------------------------------------------------- reversals

#[tokio::test]
async fn a_reversal_before_credit_cancels_the_payout_and_returns_the_funds() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    w.fund(&server, 10_000).await;
    let lead = s(&w.postback(&server, "order-1", None).await.json()["leadId"]).to_string();
    w.balance_until(&server, "the payout is escrowed", |b| b["escrowedCents"] == 500).await;

    let r = w.reverse(&server, &lead, "customer returned the item").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!((v["reversed"].clone(), v["leadId"].clone()), (json!(true), json!(lead)), "{v}");
    assert_eq!(v["payout"]["status"], "reversed");
    assert_eq!(v["payout"]["reversalReason"], "customer returned the item");
    assert_eq!(numbers(&w.balance(&server).await), [10_000, 10_000, 0, 0, 0]);

    let wallet = w.wallet_until(&server, "the reversal shows", |v| v["reversedCents"] == 500).await;
    assert_eq!((wallet["pendingCents"].as_i64(), wallet["availableCents"].as_i64()), (Some(0), Some(0)), "{wallet}");
    // The hold ending later pays nothing.
    server.advance_days(31).await;
    assert_eq!(w.wallet(&server).await["availableCents"], 0);
    // Reversing again answers the reversed payout again.
    let again = w.reverse(&server, &lead, "again").await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["payout"]["reversalReason"], "customer returned the item");
}

#[tokio::test]
async fn a_refund_after_credit_claws_back_with_a_negative_wallet_line() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    w.fund(&server, 10_000).await;
    assert_eq!(w.postback(&server, "order-1", None).await.status, 201);
    w.balance_until(&server, "the payout is escrowed", |b| b["escrowedCents"] == 500).await;
    server.advance_days(31).await;
    w.wallet_until(&server, "the wallet is credited", |v| v["availableCents"] == 500).await;
    w.balance_until(&server, "the payout is paid", |b| b["paidCents"] == 500).await;

    let r = refund(&server, &w, "order-1").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!((v["status"].clone(), v["reversed"].clone()), (json!("reversed"), json!(true)), "{v}");
    assert_eq!(v["payout"]["status"], "reversed");
    assert!(v["payout"]["creditedAt"].is_u64(), "it had been credited: {v}");
    assert_eq!(numbers(&w.balance(&server).await), [10_000, 10_000, 0, 0, 0]);

    let wallet = w.wallet_until(&server, "the clawback shows", |v| v["reversedCents"] == 500).await;
    assert_eq!(wallet["availableCents"], 0, "{wallet}");
    let clawback = wallet["entries"].as_array().unwrap().iter().find(|e| e["kind"] == "clawback").cloned();
    assert_eq!(clawback.expect("a clawback line")["amountCents"], -500, "{wallet}");

    // A second refund changes nothing.
    assert_eq!(refund(&server, &w, "order-1").await.status, 200);
    assert_eq!(lines_of_kind(&w.wallet(&server).await, "clawback"), 1);
    assert_eq!(numbers(&w.balance(&server).await), [10_000, 10_000, 0, 0, 0]);
}

#[tokio::test]
async fn a_refund_for_an_unknown_external_id_is_a_404_and_creates_nothing() {
    let server = TestServer::start_money().await;
    // REV_SHARE: a refund needs no revenueCents, so the answer is about the externalId.
    let w = World::rev_share(&server, json!(20)).await;
    let r = expect_error(&refund(&server, &w, "never-sold").await, 404, "not_found");
    assert!(r["message"].as_str().unwrap().contains("no conversion with this externalId"), "{r}");
    // Another advertiser's swarm_ref is still 403.
    let other = World::fixed(&server, 500).await;
    let body = json!({ "swarm_ref": w.code, "externalId": "never-sold", "eventType": "REFUND" });
    expect_error(&server.post("/api/v1/postback", Some(&other.key), body).await, 403, "forbidden");
    assert_eq!(w.stats(&server).await["postbacks"]["recorded"], 0);
    // The externalId is still free for a sale.
    assert_eq!(w.postback(&server, "never-sold", Some(1_000)).await.status, 201);
}

#[tokio::test]
async fn a_postback_external_id_with_the_reserved_prefix_is_a_400() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    for ext in ["clickledger:referral:ref_1", "clickledger:anything"] {
        let r = w.postback(&server, ext, None).await;
        let v = expect_400_naming(&r, "externalId");
        assert!(v["message"].as_str().unwrap().contains("reserved"), "{v}");
    }
    assert_eq!(w.stats(&server).await["postbacks"]["recorded"], 0);
}

#[tokio::test]
async fn a_conversion_is_reversed_by_its_cnv_id() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    w.fund(&server, 1_000).await;
    let token = w.click_token(&server).await;
    let r = w.convert(&server, &token).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let cnv = s(&r.json()["conversionId"]).to_string();
    w.balance_until(&server, "the payout is escrowed", |b| b["escrowedCents"] == 500).await;
    let r = w.reverse(&server, &cnv, "chargeback").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["conversionId"], cnv.as_str());
    assert_eq!(r.json()["payout"]["source"], cnv.as_str());
    assert_eq!(numbers(&w.balance(&server).await), [1_000, 1_000, 0, 0, 0]);
}

#[tokio::test]
async fn reversing_an_unknown_id_is_a_404_another_advertisers_a_403_and_a_reason_is_required() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let other = World::fixed(&server, 500).await;
    let lead = s(&w.postback(&server, "order-1", None).await.json()["leadId"]).to_string();
    for id in [ConversionId(1).to_string(), LeadId(1).to_string(), "pay_123".to_string(), "nope".to_string()] {
        expect_error(&w.reverse(&server, &id, "refund").await, 404, "not_found");
    }
    expect_error(&other.reverse(&server, &lead, "refund").await, 403, "forbidden");
    let path = format!("/api/v1/conversions/{lead}/reverse");
    expect_400_naming(&server.post(&path, Some(&w.key), json!({})).await, "reason");
    expect_400_naming(&server.post(&path, Some(&w.key), json!({ "reason": "" })).await, "reason");
    expect_error(&server.post(&path, Some(&w.affiliate_key), json!({ "reason": "x" })).await, 403, "forbidden");
    // None of that reversed anything.
    let wallet = w.wallet_until(&server, "the payout exists", |v| v["pendingCents"] == 500).await;
    assert_eq!(wallet["reversedCents"], 0);
}

// ---------------------------------------------------------------- the wallet

#[tokio::test]
async fn the_wallet_lists_its_lines_newest_first_in_pages() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    for i in 0..3 {
        assert_eq!(w.postback(&server, &format!("order-{i}"), None).await.status, 201);
    }
    let all = w.wallet_until(&server, "three payouts exist", |v| v["pendingCents"] == 1_500).await;
    assert_eq!(all["affiliateId"], w.affiliate_id.as_str());
    let all_ids: Vec<String> = all["entries"].as_array().unwrap().iter().map(|e| s(&e["id"]).to_string()).collect();
    assert_eq!(all_ids.len(), 3, "{all}");
    let ats: Vec<u64> = all["entries"].as_array().unwrap().iter().map(|e| e["at"].as_u64().unwrap()).collect();
    assert!(ats.windows(2).all(|p| p[0] >= p[1]), "newest first: {ats:?}");

    let first = server.get("/api/v1/wallet?limit=2", Some(&w.affiliate_key)).await.json();
    assert_eq!(first["entries"].as_array().unwrap().len(), 2, "{first}");
    assert_eq!(first["pendingCents"], 1_500, "totals cover the whole wallet: {first}");
    let next = s(&first["nextBefore"]).to_string();
    let path = format!("/api/v1/wallet?limit=2&before={}", next.replace(':', "%3A"));
    let second = server.get(&path, Some(&w.affiliate_key)).await.json();
    assert_eq!(second["entries"].as_array().unwrap().len(), 1, "{second}");
    assert_eq!(second["nextBefore"], Value::Null);
    let mut paged: Vec<String> = first["entries"].as_array().unwrap().iter().map(|e| s(&e["id"]).to_string()).collect();
    paged.push(s(&second["entries"][0]["id"]).to_string());
    assert_eq!(paged, all_ids);
}

#[tokio::test]
async fn the_wallet_needs_an_affiliate_key_and_a_sane_query() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    expect_error(&server.get("/api/v1/wallet", Some(&w.key)).await, 403, "forbidden");
    expect_error(&server.get("/api/v1/wallet", None).await, 401, "unauthorized");
    let bad = [("limit=0", "limit"), ("limit=1000", "limit"), ("page=2", "page"), ("before=garbage", "before")];
    for (query, field) in bad {
        expect_400_naming(&server.get(&format!("/api/v1/wallet?{query}"), Some(&w.affiliate_key)).await, field);
    }
    let empty = wallet_of(&server, &w.affiliate_key).await;
    assert_eq!(empty["entries"], json!([]));
    assert_eq!(empty["nextBefore"], Value::Null);
}

// ---------------------------------------------------------------- the test clock

#[tokio::test]
async fn the_clock_endpoint_exists_only_with_the_test_clock_and_needs_the_admin_key() {
    let plain = TestServer::start().await;
    let r = plain.post("/api/v1/admin/clock/advance", Some(ADMIN_KEY), json!({ "seconds": 60 })).await;
    expect_error(&r, 404, "no_route");

    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let path = "/api/v1/admin/clock/advance";
    expect_error(&server.post(path, Some(&w.key), json!({ "seconds": 60 })).await, 401, "unauthorized");
    expect_400_naming(&server.post(path, Some(ADMIN_KEY), json!({ "seconds": 0 })).await, "seconds");
    expect_400_naming(&server.post(path, Some(ADMIN_KEY), json!({ "seconds": -1 })).await, "seconds");
    let before = server.advance_clock(1).await;
    let after = server.advance_clock(86_400).await;
    assert!(after >= before + 86_400, "{before} → {after}");
}

/// The README's "Referral → confirm → fund → wallet", step for step with no
/// waiting in between: the fund call escrows before it answers, so the clock
/// advance that follows it skips the whole hold.
#[tokio::test]
async fn the_readme_referral_walk_through_credits_the_wallet_as_pasted() {
    let server = TestServer::start_money().await;
    let w = World::rev_share(&server, json!(20)).await;
    let referral = w.referral(&server, json!({"metadata": {"context": "product recommendation"}})).await;
    let confirmed = w.confirm(&server, referral["id"].as_str().unwrap(), json!({"revenueCents": 5000})).await;
    assert_eq!(confirmed.json()["lead"]["payoutCents"], 1000);
    let funded = w.fund_with_key(&server, 100_000, Some("deposit-001")).await;
    assert_eq!(funded.status, 201);
    assert_eq!(funded.json()["escrowedCents"], 1000, "escrowed before the fund call answers: {}", funded.text);
    assert_eq!(w.wallet(&server).await["pendingCents"], 1000);
    server.advance_clock(2_678_400).await;
    let wallet = w.wallet_until(&server, "the wallet is credited", |w| w["availableCents"] == 1000).await;
    assert_eq!(wallet["pendingCents"], 0);
}
