//! Agent referral tokens (seed section 3): the affiliate creates a referral
//! and its signed token, the advertiser checks the token and confirms by id,
//! which creates one verified lead; expiry, ownership and every bad input.

mod common;

use clickledger::domain::ids::{AffiliateId, CampaignId, ReferralId};
use clickledger::domain::referral::{sign, ReferralClaims};
use common::*;
use serde_json::{json, Value};

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

async fn create_raw(server: &TestServer, key: &str, body: Value) -> Reply {
    server.post("/api/v1/referrals", Some(key), body).await
}

async fn check_token(server: &TestServer, w: &World, token: &str) -> Reply {
    server.post("/api/v1/referrals/verify", Some(&w.key), json!({ "token": token })).await
}

// ---------------------------------------------------------------- creating

#[tokio::test]
async fn an_approved_affiliate_creates_a_referral_with_a_signed_token_that_expires_in_30_days() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let metadata = json!({ "context": "product recommendation", "conversationId": "conv_abc" });
    let r = w.referral(&server, json!({ "metadata": metadata })).await;
    assert!(s(&r["id"]).starts_with("ref_"), "{r}");
    assert!(!s(&r["token"]).is_empty());
    assert_eq!(r["campaignId"], w.campaign_id.as_str());
    assert_eq!(r["affiliateId"], w.affiliate_id.as_str());
    assert_eq!(r["status"], "active");
    assert_eq!(r["metadata"], metadata);
    let created = r["createdAt"].as_u64().unwrap();
    assert_eq!(r["expiresAt"].as_u64().unwrap(), created + 720 * 3600);

    let r = w.referral(&server, json!({ "expiresInHours": 2 })).await;
    assert_eq!(r["expiresAt"].as_u64().unwrap(), r["createdAt"].as_u64().unwrap() + 2 * 3600);
}

#[tokio::test]
async fn expires_in_hours_must_be_between_1_and_8784() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    for bad in [json!(0), json!(-1), json!(8785), json!(1.5), json!("24")] {
        let r =
            create_raw(&server, &w.affiliate_key, json!({ "campaignId": w.campaign_id, "expiresInHours": bad })).await;
        expect_400_naming(&r, "expiresInHours");
    }
    for good in [1, 8784] {
        w.referral(&server, json!({ "expiresInHours": good })).await;
    }
}

#[tokio::test]
async fn referral_metadata_over_the_limits_is_a_400_naming_metadata() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let many: serde_json::Map<String, Value> = (0..51).map(|i| (format!("k{i}"), json!(i))).collect();
    for metadata in [Value::Object(many), json!({ "long": "x".repeat(1025) }), json!("not an object")] {
        let r =
            create_raw(&server, &w.affiliate_key, json!({ "campaignId": w.campaign_id, "metadata": metadata })).await;
        expect_400_naming(&r, "metadata");
    }
}

#[tokio::test]
async fn a_referral_needs_an_affiliate_key_and_an_approval_on_the_campaign() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let body = json!({ "campaignId": w.campaign_id });
    expect_error(&server.post("/api/v1/referrals", None, body.clone()).await, 401, "unauthorized");
    expect_error(&create_raw(&server, &w.key, body.clone()).await, 403, "forbidden");
    let (_, stranger) = new_affiliate(&server, "Not approved").await;
    let r = expect_error(&create_raw(&server, &stranger, body).await, 403, "forbidden");
    assert!(r["message"].as_str().unwrap().contains("approved"), "{r}");
}

#[tokio::test]
async fn a_referral_for_an_unknown_campaign_is_a_404_and_a_malformed_id_a_400() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let r = create_raw(&server, &w.affiliate_key, json!({ "campaignId": "cmp_0000000000000001" })).await;
    expect_error(&r, 404, "not_found");
    let r = create_raw(&server, &w.affiliate_key, json!({ "campaignId": "nope" })).await;
    expect_400_naming(&r, "campaignId");
    let r = create_raw(&server, &w.affiliate_key, json!({})).await;
    expect_400_naming(&r, "campaignId");
    let r = create_raw(&server, &w.affiliate_key, json!({ "campaignId": w.campaign_id, "color": "red" })).await;
    expect_400_naming(&r, "color");
}

#[tokio::test]
async fn a_referral_for_a_paused_campaign_is_a_409_campaign_inactive() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let paused = server.post(&format!("/api/v1/campaigns/{}/pause", w.campaign_id), Some(&w.key), json!({})).await;
    assert_eq!(paused.status, 200, "{}", paused.text);
    let r = create_raw(&server, &w.affiliate_key, json!({ "campaignId": w.campaign_id })).await;
    expect_error(&r, 409, "campaign_inactive");
}

// ---------------------------------------------------------------- checking a token

#[tokio::test]
async fn a_fresh_token_verifies_as_valid_with_its_referral() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let referral = w.referral(&server, json!({})).await;
    let r = check_token(&server, &w, s(&referral["token"])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["reason"], Value::Null);
    assert_eq!(v["referralId"], referral["id"]);
    assert_eq!(v["campaignId"], w.campaign_id.as_str());
    assert_eq!(v["affiliateId"], w.affiliate_id.as_str());
    assert_eq!(v["expiresAt"], referral["expiresAt"]);
    assert_eq!(v["status"], "active");
}

#[tokio::test]
async fn a_malformed_or_forged_token_answers_valid_false_with_the_reason() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let token = s(&w.referral(&server, json!({})).await["token"]).to_string();

    let v = check_token(&server, &w, "not-a-token").await.json();
    assert_eq!((v["valid"].clone(), v["reason"].clone()), (json!(false), json!("malformed")), "{v}");
    let click_token = w.click_token(&server).await;
    assert_eq!(check_token(&server, &w, &click_token).await.json()["reason"], "malformed");

    // One character changed in the middle (inside the signed bytes).
    let mut forged: Vec<char> = token.chars().collect();
    forged[30] = if forged[30] == 'A' { 'B' } else { 'A' };
    let v = check_token(&server, &w, &forged.into_iter().collect::<String>()).await.json();
    assert_eq!((v["valid"].clone(), v["reason"].clone()), (json!(false), json!("bad_signature")), "{v}");
    assert!(v.get("referralId").is_none(), "a forged token reveals nothing: {v}");

    // Signed with the server's key, but no such referral was ever created.
    let claims = ReferralClaims {
        id: ReferralId(7),
        campaign: w.campaign_id.parse::<CampaignId>().unwrap(),
        affiliate: w.affiliate_id.parse::<AffiliateId>().unwrap(),
        expires_at: u64::MAX / 2,
    };
    let v = check_token(&server, &w, &sign(&server_tokens(), &claims)).await.json();
    assert_eq!((v["valid"].clone(), v["reason"].clone()), (json!(false), json!("unknown_referral")), "{v}");

    let r = server.post("/api/v1/referrals/verify", Some(&w.key), json!({ "token": "" })).await;
    expect_400_naming(&r, "token");
    let r = server.post("/api/v1/referrals/verify", Some(&w.key), json!({})).await;
    expect_400_naming(&r, "token");
}

#[tokio::test]
async fn another_advertisers_token_is_a_403_and_an_affiliate_cannot_check_tokens() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let other = World::fixed(&server, 700).await;
    let token = s(&w.referral(&server, json!({})).await["token"]).to_string();
    expect_error(&check_token(&server, &other, &token).await, 403, "forbidden");
    let r = server.post("/api/v1/referrals/verify", Some(&w.affiliate_key), json!({ "token": token })).await;
    expect_error(&r, 403, "forbidden");
}

// ---------------------------------------------------------------- confirming

#[tokio::test]
async fn confirming_a_referral_creates_one_verified_lead_paying_the_fixed_payout() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let referral = w.referral(&server, json!({})).await;
    let id = s(&referral["id"]);
    let r = w.confirm(&server, id, json!({ "metadata": { "orderId": "order_789" } })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = r.json();
    let lead = &v["lead"];
    assert!(s(&lead["id"]).starts_with("lead_"), "{v}");
    assert_eq!(lead["status"], "verified");
    assert_eq!(lead["source"], "referral");
    assert_eq!(lead["referralId"], id);
    assert_eq!(lead["payoutCents"], 500);
    assert_eq!(lead["affiliateId"], w.affiliate_id.as_str());
    assert_eq!(lead["trackingCode"], w.code.as_str());
    assert_eq!(lead["extra"]["orderId"], "order_789");
    assert_eq!(v["referral"]["status"], "confirmed");
    assert_eq!(v["referral"]["leadId"], lead["id"]);

    let check = check_token(&server, &w, s(&referral["token"])).await.json();
    assert_eq!((check["valid"].clone(), check["status"].clone()), (json!(false), json!("confirmed")), "{check}");
    assert_eq!(check["reason"], "already_confirmed");
    let listed = leads_of(&server, &w, "&status=verified").await.json();
    assert_eq!(listed["leads"].as_array().unwrap().len(), 1, "{listed}");
}

#[tokio::test]
async fn a_referral_confirmed_twice_answers_409_naming_the_first_lead() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let id = s(&w.referral(&server, json!({})).await["id"]).to_string();
    let first = w.confirm(&server, &id, json!({})).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let lead_id = first.json()["lead"]["id"].clone();
    let again = expect_error(&w.confirm(&server, &id, json!({ "revenueCents": 100 })).await, 409, "already_confirmed");
    assert_eq!(again["leadId"], lead_id, "{again}");
    assert!(again["message"].as_str().unwrap().contains(s(&lead_id)), "{again}");
}

#[tokio::test]
async fn confirmations_racing_each_other_make_exactly_one_lead() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let id = s(&w.referral(&server, json!({})).await["id"]).to_string();
    let replies = futures::future::join_all((0..8).map(|_| w.confirm(&server, &id, json!({})))).await;
    let created: Vec<&Reply> = replies.iter().filter(|r| r.status == 201).collect();
    assert_eq!(created.len(), 1, "{:?}", replies.iter().map(|r| &r.text).collect::<Vec<_>>());
    let lead_id = created[0].json()["lead"]["id"].clone();
    for r in replies.iter().filter(|r| r.status != 201) {
        assert_eq!(expect_error(r, 409, "already_confirmed")["leadId"], lead_id);
    }
    let listed = leads_of(&server, &w, "").await.json();
    assert_eq!(listed["leads"].as_array().unwrap().len(), 1, "{listed}");
}

#[tokio::test]
async fn a_rev_share_confirmation_needs_revenue_cents_and_pays_its_share() {
    let server = TestServer::start_money().await;
    let w = World::rev_share(&server, json!(20)).await;
    let id = s(&w.referral(&server, json!({})).await["id"]).to_string();
    expect_400_naming(&w.confirm(&server, &id, json!({})).await, "revenueCents");
    expect_400_naming(&w.confirm(&server, &id, json!({ "revenueCents": -1 })).await, "revenueCents");
    expect_400_naming(&w.confirm(&server, &id, json!({ "revenueCents": 14.5 })).await, "revenueCents");
    expect_400_naming(&w.confirm(&server, &id, json!({ "revenueCents": "1499" })).await, "revenueCents");
    let oversize = json!({ "revenueCents": 1499, "metadata": { "k": "x".repeat(1025) } });
    expect_400_naming(&w.confirm(&server, &id, oversize).await, "metadata");
    expect_400_naming(&w.confirm(&server, &id, json!({ "revenue": 1499 })).await, "revenue");
    // None of those used the referral up.
    let r = w.confirm(&server, &id, json!({ "revenueCents": 1499 })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let lead = r.json()["lead"].clone();
    assert_eq!((lead["revenueCents"].clone(), lead["payoutCents"].clone()), (json!(1499), json!(300)), "{lead}");
}

#[tokio::test]
async fn an_expired_referral_cannot_be_confirmed() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let referral = w.referral(&server, json!({ "expiresInHours": 1 })).await;
    server.advance_clock(3601).await;
    let r = expect_error(&w.confirm(&server, s(&referral["id"]), json!({})).await, 410, "referral_expired");
    assert!(r["message"].as_str().unwrap().contains("expired"), "{r}");
    let check = check_token(&server, &w, s(&referral["token"])).await.json();
    assert_eq!((check["valid"].clone(), check["reason"].clone()), (json!(false), json!("expired")), "{check}");
    assert_eq!(check["status"], "expired");
    assert_eq!(leads_of(&server, &w, "").await.json()["leads"], json!([]));
}

#[tokio::test]
async fn confirming_an_unknown_or_malformed_referral_is_a_404() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let unknown = ReferralId(42).to_string();
    expect_error(&w.confirm(&server, &unknown, json!({})).await, 404, "not_found");
    expect_error(&w.confirm(&server, "ref_nope", json!({})).await, 404, "not_found");
}

#[tokio::test]
async fn another_advertiser_cannot_confirm_a_referral_and_an_affiliate_cannot_either() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let other = World::fixed(&server, 700).await;
    let id = s(&w.referral(&server, json!({})).await["id"]).to_string();
    expect_error(&other.confirm(&server, &id, json!({})).await, 403, "forbidden");
    let r = server.post(&format!("/api/v1/referrals/{id}/confirm"), Some(&w.affiliate_key), json!({})).await;
    expect_error(&r, 403, "forbidden");
    // Still confirmable by its owner.
    assert_eq!(w.confirm(&server, &id, json!({})).await.status, 201);
}

#[tokio::test]
async fn confirming_for_a_paused_campaign_is_a_409_campaign_inactive() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let id = s(&w.referral(&server, json!({})).await["id"]).to_string();
    let paused = server.post(&format!("/api/v1/campaigns/{}/pause", w.campaign_id), Some(&w.key), json!({})).await;
    assert_eq!(paused.status, 200, "{}", paused.text);
    expect_error(&w.confirm(&server, &id, json!({})).await, 409, "campaign_inactive");
}

#[tokio::test]
async fn a_confirmed_referral_is_credited_to_the_wallet_after_the_hold() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    w.fund(&server, 2_000).await;
    let id = s(&w.referral(&server, json!({})).await["id"]).to_string();
    assert_eq!(w.confirm(&server, &id, json!({})).await.status, 201);
    w.balance_until(&server, "the payout is escrowed", |b| b["escrowedCents"] == 500).await;
    assert_eq!(w.wallet(&server).await["pendingCents"], 500);
    server.advance_days(31).await;
    let wallet = w.wallet_until(&server, "the wallet is credited", |v| v["availableCents"] == 500).await;
    assert_eq!(wallet["pendingCents"], 0, "{wallet}");
    let b = w.balance(&server).await;
    assert_eq!((b["fundedCents"].clone(), b["availableCents"].clone()), (json!(2_000), json!(1_500)), "{b}");
    assert_eq!(b["paidCents"], 500, "{b}");
}

#[tokio::test]
async fn an_affiliate_key_over_its_write_rate_gets_429_with_retry_after_and_reads_still_work() {
    let server = TestServer::start_with(&[
        ("CLICKLEDGER_LIMITS_AFFILIATE_WRITES_PER_SEC", "0.5"),
        ("CLICKLEDGER_LIMITS_AFFILIATE_WRITE_BURST", "3"),
    ])
    .await;
    let w = World::fixed(&server, 500).await;
    for _ in 0..3 {
        w.referral(&server, json!({})).await;
    }
    let body = json!({ "campaignId": w.campaign_id });
    let r = server.post("/api/v1/referrals", Some(&w.affiliate_key), body.clone()).await;
    expect_error(&r, 429, "rate_limited");
    let wait: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&wait), "half a token per second: wait {wait} s");
    let lead = json!({ "campaignId": w.campaign_id, "trackingCode": w.code, "evidence": [] });
    expect_error(&server.post("/api/v1/leads", Some(&w.affiliate_key), lead).await, 429, "rate_limited");
    assert_eq!(server.get("/api/v1/wallet", Some(&w.affiliate_key)).await.status, 200, "reads are not limited");
    let (_, other_key, _) = w.another_affiliate(&server).await;
    let r = server.post("/api/v1/referrals", Some(&other_key), body).await;
    assert_eq!(r.status, 201, "each key has its own bucket: {}", r.text);
}
