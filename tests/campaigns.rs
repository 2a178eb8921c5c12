//! The operator and advertiser API: advertisers, affiliates, campaigns, the
//! test postback that unlocks activation, affiliate approval and tracking
//! URLs, PATCH, ownership, both key headers, and pausing.

mod common;

use common::*;
use hyper::Method;
use serde_json::{json, Value};

// ---------------------------------------------------------------- helpers

async fn new_advertiser(server: &TestServer, name: &str) -> Value {
    let r = server.post("/api/v1/admin/advertisers", Some(ADMIN_KEY), json!({"name": name})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

async fn new_affiliate(server: &TestServer, name: &str) -> Value {
    let r = server.post("/api/v1/admin/affiliates", Some(ADMIN_KEY), json!({"name": name})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn fixed_campaign() -> Value {
    json!({
        "name": "Spring sale",
        "landingUrl": "https://shop.example.com/landing?utm=x#hero",
        "compensationModel": "FIXED",
        "payoutCents": 500,
    })
}

async fn create(server: &TestServer, key: &str, body: Value) -> Value {
    let r = server.post("/api/v1/campaigns", Some(key), body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

async fn show(server: &TestServer, key: &str, id: &str) -> Value {
    let r = server.get(&format!("/api/v1/campaigns/{id}"), Some(key)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

async fn test_postback(server: &TestServer, key: &str, test_code: &str, external_id: &str) -> Reply {
    server
        .post(
            "/api/v1/postback",
            Some(key),
            json!({
                "swarm_ref": test_code, "externalId": external_id, "eventType": "PURCHASE", "revenueCents": 100,
            }),
        )
        .await
}

async fn approve(server: &TestServer, key: &str, campaign_id: &str, affiliate_id: &str) -> Reply {
    server
        .post(&format!("/api/v1/campaigns/{campaign_id}/affiliates"), Some(key), json!({"affiliateId": affiliate_id}))
        .await
}

/// The redirect target of a click on `code` (asserting a 302).
async fn redirect_target(server: &TestServer, code: &str) -> String {
    let r = server.click(code).await;
    assert_eq!(r.status, 302, "{}", r.text);
    r.header("location").expect("Location").to_string()
}

/// Removes `irw_id` from a redirect target so it can be compared with the
/// expected landing URL.
fn without_token(location: &str) -> String {
    let token = query_param(location, "irw_id").expect("irw_id in the redirect");
    location.replacen(&format!("irw_id={token}&"), "", 1)
}

fn zero_stats() -> Value {
    json!({
        "clicks": 0,
        "uniqueClicks": 0,
        "duplicateClicks": 0,
        "cappedClicks": 0,
        "botClicks": 0,
        "conversions": {
            "recorded": 0, "duplicate": 0, "fromBotClicks": 0, "ignored": {}, "byStatus": {}, "rejectedByReason": {},
        },
        "postbacks": {"recorded": 0, "duplicate": 0},
        "payoutCents": 0,
    })
}

// ------------------------------------------------------------- operator

#[tokio::test]
async fn creating_an_advertiser_returns_201_with_an_id_a_secret_key_and_the_org_publishable_key() {
    let server = TestServer::start().await;
    let a = new_advertiser(&server, "Acme").await;
    let b = new_advertiser(&server, "Globex").await;
    for v in [&a, &b] {
        assert!(s(&v["id"]).starts_with("adv_"), "{v}");
        assert!(s(&v["apiKey"]).starts_with("sk_live_"), "{v}");
        assert!(s(&v["apiKey"]).len() > "sk_live_".len() + 16, "{v}");
        assert!(s(&v["publishableKey"]).starts_with("pk_aff_org_"), "{v}");
    }
    assert_ne!(a["id"], b["id"]);
    assert_ne!(a["apiKey"], b["apiKey"]);
    assert_ne!(a["publishableKey"], b["publishableKey"]);
    // The new key works at once.
    let r = server.post("/api/v1/campaigns", Some(s(&a["apiKey"])), fixed_campaign()).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn creating_an_affiliate_returns_201_with_an_id_and_a_secret_key() {
    let server = TestServer::start().await;
    let a = new_affiliate(&server, "Blogger").await;
    let b = new_affiliate(&server, "Newsletter").await;
    for v in [&a, &b] {
        assert!(s(&v["id"]).starts_with("aff_"), "{v}");
        assert!(s(&v["apiKey"]).starts_with("sk_live_"), "{v}");
    }
    assert_ne!(a["id"], b["id"]);
    assert_ne!(a["apiKey"], b["apiKey"]);
}

// ------------------------------------------------------------ campaigns

#[tokio::test]
async fn creating_a_campaign_returns_a_draft_with_a_test_tracking_code_and_its_own_publishable_key() {
    let server = TestServer::start().await;
    let adv = new_advertiser(&server, "Acme").await;
    let key = s(&adv["apiKey"]);
    let c = create(&server, key, fixed_campaign()).await;
    assert!(s(&c["id"]).starts_with("cmp_"), "{c}");
    assert_eq!(c["status"], "draft");
    let code = s(&c["testTrackingCode"]);
    assert_eq!(code.len(), 8, "{code}");
    assert!(code.bytes().all(|b| b.is_ascii_alphanumeric()), "{code}");
    let pk = s(&c["publishableKey"]);
    assert!(pk.starts_with("pk_aff_") && !pk.starts_with("pk_aff_org_"), "{pk}");
    assert_ne!(pk, s(&adv["publishableKey"]));
    // A second campaign gets its own code and key.
    let d = create(&server, key, fixed_campaign()).await;
    assert_ne!(c["id"], d["id"]);
    assert_ne!(c["testTrackingCode"], d["testTrackingCode"]);
    assert_ne!(c["publishableKey"], d["publishableKey"]);
    // The documented defaults.
    let shown = show(&server, key, s(&c["id"])).await;
    assert_eq!(shown["attributionWindowDays"], 90);
    assert_eq!(shown["holdDays"], 30);
    assert_eq!(shown["landingUrl"], "https://shop.example.com/landing?utm=x#hero");
    assert_eq!(shown["compensationModel"], "FIXED");
    assert_eq!(shown["payoutCents"], 500);
}

#[tokio::test]
async fn a_campaign_shows_tracking_confirmed_at_null_until_the_test_postback_then_a_time_and_live_stats() {
    let server = TestServer::start().await;
    let adv = new_advertiser(&server, "Acme").await;
    let key = s(&adv["apiKey"]);
    let c = create(&server, key, fixed_campaign()).await;
    let id = s(&c["id"]);
    let before = show(&server, key, id).await;
    assert!(before.get("trackingConfirmedAt").is_some(), "trackingConfirmedAt must be present (null): {before}");
    assert_eq!(before["trackingConfirmedAt"], Value::Null);
    assert_eq!(before["stats"], zero_stats());
    let r = test_postback(&server, key, s(&c["testTrackingCode"]), "setup").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let after = show(&server, key, id).await;
    let confirmed = after["trackingConfirmedAt"].as_u64().unwrap_or_else(|| panic!("a number: {after}"));
    assert!(confirmed >= after["createdAt"].as_u64().unwrap(), "{after}");
    // A second test postback does not move the stamp.
    test_postback(&server, key, s(&c["testTrackingCode"]), "setup-2").await;
    assert_eq!(show(&server, key, id).await["trackingConfirmedAt"], confirmed);
}

#[tokio::test]
async fn the_stats_count_clicks_bot_clicks_conversions_and_postbacks() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    assert_eq!(w.stats(&server).await, zero_stats());
    let token = w.click_token(&server).await;
    let bot = server
        .send(
            Method::GET,
            &format!("/r/{}", w.code),
            &[("user-agent", "Googlebot/2.1 (+http://www.google.com/bot.html)")],
            Vec::new(),
        )
        .await;
    assert_eq!(bot.status, 302, "{}", bot.text);
    assert_eq!(w.convert(&server, &token).await.status, 201);
    assert_eq!(w.convert(&server, &token).await.status, 200);
    assert_eq!(w.convert(&server, "garbage").await.status, 200);
    assert_eq!(w.postback(&server, "order-1", None).await.status, 201);
    assert_eq!(w.postback(&server, "order-1", None).await.status, 200);
    // Clicks, bot clicks and duplicate counts are flushed within the flush
    // interval, after the answer.
    server
        .until("all counters flushed", || async {
            let s = w.stats(&server).await;
            (s["clicks"] == 1
                && s["botClicks"] == 1
                && s["postbacks"]["duplicate"] == 1
                && s["conversions"]["duplicate"] == 1)
                .then_some(())
        })
        .await;
    let stats = w.stats(&server).await;
    assert_eq!(stats["clicks"], 1, "{stats}");
    assert_eq!(stats["botClicks"], 1, "{stats}");
    assert_eq!(stats["conversions"]["recorded"], 1, "{stats}");
    assert_eq!(stats["conversions"]["duplicate"], 1, "{stats}");
    assert_eq!(stats["postbacks"]["recorded"], 1, "{stats}");
    assert_eq!(stats["postbacks"]["duplicate"], 1, "{stats}");
    assert_eq!(stats["payoutCents"], 1000, "the FIXED conversion and the postback each earn 500: {stats}");
    assert_eq!(stats["conversions"]["byStatus"], json!({"approved": 2}), "{stats}");
}

#[tokio::test]
async fn the_test_postback_answers_200_test_and_creates_no_lead() {
    let server = TestServer::start().await;
    let adv = new_advertiser(&server, "Acme").await;
    let key = s(&adv["apiKey"]);
    let c = create(&server, key, fixed_campaign()).await;
    let id = s(&c["id"]);
    let r = test_postback(&server, key, s(&c["testTrackingCode"]), "order-42").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["status"], "test", "{v}");
    assert!(v.get("lead").is_none() && v.get("leadId").is_none(), "a test postback creates no lead: {v}");
    assert_eq!(v["campaignId"], id);
    assert!(v["trackingConfirmedAt"].is_u64(), "{v}");
    // Repeating it is still a test answer, not a duplicate lead.
    let again = test_postback(&server, key, s(&c["testTrackingCode"]), "order-42").await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["status"], "test");
    assert_eq!(show(&server, key, id).await["stats"]["postbacks"], json!({"recorded": 0, "duplicate": 0}));
    // Activate, approve an affiliate and fire a real postback with the same
    // externalId: it is new.
    let r = server.post(&format!("/api/v1/campaigns/{id}/activate"), Some(key), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let aff = new_affiliate(&server, "Blogger").await;
    let code = approve(&server, key, id, s(&aff["id"])).await.json()["trackingCode"].as_str().unwrap().to_string();
    let r = server
        .post(
            "/api/v1/postback",
            Some(key),
            json!({"swarm_ref": code, "externalId": "order-42", "eventType": "PURCHASE"}),
        )
        .await;
    assert_eq!(r.status, 201, "the test postback must not have stored order-42: {}", r.text);
    assert_eq!(r.json()["status"], "recorded");
    let stats = show(&server, key, id).await["stats"].clone();
    assert_eq!(stats["postbacks"]["recorded"], 1, "{stats}");
}

#[tokio::test]
async fn the_world_fixture_test_postback_left_no_lead_behind() {
    // World fires its test postback with externalId "integration-test".
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    assert_eq!(w.stats(&server).await["postbacks"]["recorded"], 0);
    let r = w.postback(&server, "integration-test", None).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn activation_after_the_test_postback_answers_200_active() {
    let server = TestServer::start().await;
    let adv = new_advertiser(&server, "Acme").await;
    let key = s(&adv["apiKey"]);
    let c = create(&server, key, fixed_campaign()).await;
    let id = s(&c["id"]);
    assert_eq!(server.post(&format!("/api/v1/campaigns/{id}/activate"), Some(key), json!({})).await.status, 409);
    test_postback(&server, key, s(&c["testTrackingCode"]), "t").await;
    let r = server.post(&format!("/api/v1/campaigns/{id}/activate"), Some(key), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["status"], "active");
    assert_eq!(show(&server, key, id).await["status"], "active");
    // Activating again is harmless.
    let r = server.post(&format!("/api/v1/campaigns/{id}/activate"), Some(key), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["status"], "active");
}

// ----------------------------------------------------- affiliate approval

#[tokio::test]
async fn approving_the_same_affiliate_twice_returns_the_same_tracking_code() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let second = approve(&server, &w.key, &w.campaign_id, &w.affiliate_id).await;
    assert_eq!(second.status, 200, "the second approval is not a new code: {}", second.text);
    let second = second.json();
    assert_eq!(second["trackingCode"], w.code.as_str());
    let third = approve(&server, &w.key, &w.campaign_id, &w.affiliate_id).await;
    assert_eq!(third.status, 200);
    assert_eq!(third.json(), second);
    // Another affiliate gets a code of its own.
    let other = new_affiliate(&server, "Newsletter").await;
    let r = approve(&server, &w.key, &w.campaign_id, s(&other["id"])).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let other_code = r.json()["trackingCode"].as_str().unwrap().to_string();
    assert_ne!(other_code, w.code);
    assert_eq!(other_code.len(), 8);
    assert!(other_code.bytes().all(|b| b.is_ascii_alphanumeric()));
}

#[tokio::test]
async fn the_tracking_url_is_the_landing_url_with_swarm_ref_keeping_its_query_and_fragment() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let r = approve(&server, &w.key, &w.campaign_id, &w.affiliate_id).await.json();
    assert_eq!(r["trackingUrl"], format!("https://shop.example.com/landing?utm=x&swarm_ref={}#hero", w.code));
    // Without a query or fragment, swarm_ref starts the query.
    let plain = World::with_campaign(&server, json!({
        "name": "Plain", "landingUrl": "https://plain.example.com/", "compensationModel": "FIXED", "payoutCents": 100,
    })).await;
    let r = approve(&server, &plain.key, &plain.campaign_id, &plain.affiliate_id).await.json();
    assert_eq!(r["trackingUrl"], format!("https://plain.example.com/?swarm_ref={}", plain.code));
}

#[tokio::test]
async fn the_tracking_url_carries_the_promo_code_when_the_campaign_has_one() {
    let server = TestServer::start().await;
    let w = World::with_campaign(
        &server,
        json!({
            "name": "Coupon",
            "landingUrl": "https://shop.example.com/landing?utm=x#hero",
            "compensationModel": "FIXED",
            "payoutCents": 500,
            "promoCode": "SPRING10",
        }),
    )
    .await;
    let r = approve(&server, &w.key, &w.campaign_id, &w.affiliate_id).await.json();
    assert_eq!(
        r["trackingUrl"],
        format!("https://shop.example.com/landing?utm=x&swarm_ref={}&promo=SPRING10#hero", w.code)
    );
    // The redirect carries the same parameters plus the click token.
    let location = redirect_target(&server, &w.code).await;
    assert_eq!(
        without_token(&location),
        format!("https://shop.example.com/landing?utm=x&swarm_ref={}&promo=SPRING10#hero", w.code)
    );
}

#[tokio::test]
async fn the_affiliate_link_ends_with_r_and_the_code_and_redirects_to_the_landing_page() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let r = approve(&server, &w.key, &w.campaign_id, &w.affiliate_id).await.json();
    let link = s(&r["affiliateLink"]);
    assert!(link.ends_with(&format!("/r/{}", w.code)), "{link}");
    assert!(link.starts_with("http://") || link.starts_with("https://"), "{link}");
    assert_eq!(link, format!("{}/r/{}", server.base, w.code), "without public_url the link is on the bound address");
    let path = &link[link.find("/r/").unwrap()..];
    let resp = server.send(Method::GET, path, &[("user-agent", "Mozilla/5.0 Firefox/120.0")], Vec::new()).await;
    assert_eq!(resp.status, 302, "{}", resp.text);
    let location = resp.header("location").unwrap();
    assert!(location.starts_with("https://shop.example.com/landing?utm=x&irw_id="), "{location}");
    assert_eq!(query_param(location, "swarm_ref").as_deref(), Some(w.code.as_str()));
    assert!(location.ends_with("#hero"), "{location}");
}

// ------------------------------------------------------------------ PATCH

#[tokio::test]
async fn patching_the_landing_url_and_promo_code_changes_the_next_redirect() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let path = format!("/api/v1/campaigns/{}", w.campaign_id);
    let r = server
        .patch(&path, Some(&w.key), json!({"landingUrl": "https://new.example.org/start?src=aff", "promoCode": "NEW5"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["landingUrl"], "https://new.example.org/start?src=aff");
    assert_eq!(v["promoCode"], "NEW5");
    assert_eq!(v["status"], "active", "a PATCH keeps the status");
    let shown = show(&server, &w.key, &w.campaign_id).await;
    assert_eq!(shown["landingUrl"], "https://new.example.org/start?src=aff");
    assert_eq!(shown["promoCode"], "NEW5");
    assert_eq!(shown["payoutCents"], 500, "fields not in the PATCH are kept");
    assert_eq!(shown["testTrackingCode"], w.campaign["testTrackingCode"]);
    assert!(shown["trackingConfirmedAt"].is_u64(), "{shown}");
    let location = redirect_target(&server, &w.code).await;
    assert_eq!(
        without_token(&location),
        format!("https://new.example.org/start?src=aff&swarm_ref={}&promo=NEW5", w.code)
    );
    let r = approve(&server, &w.key, &w.campaign_id, &w.affiliate_id).await.json();
    assert_eq!(r["trackingUrl"], format!("https://new.example.org/start?src=aff&swarm_ref={}&promo=NEW5", w.code));
}

#[tokio::test]
async fn patching_the_promo_code_to_null_removes_it() {
    let server = TestServer::start().await;
    let w = World::with_campaign(
        &server,
        json!({
            "name": "Coupon",
            "landingUrl": "https://shop.example.com/",
            "compensationModel": "FIXED",
            "payoutCents": 500,
            "promoCode": "SPRING10",
        }),
    )
    .await;
    let location = redirect_target(&server, &w.code).await;
    assert_eq!(query_param(&location, "promo").as_deref(), Some("SPRING10"));
    let path = format!("/api/v1/campaigns/{}", w.campaign_id);
    let r = server.patch(&path, Some(&w.key), json!({"promoCode": null})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["promoCode"], Value::Null, "promoCode: null removes the promo code: {}", r.text);
    assert_eq!(show(&server, &w.key, &w.campaign_id).await["promoCode"], Value::Null);
    let location = redirect_target(&server, &w.code).await;
    assert_eq!(query_param(&location, "promo"), None, "{location}");
    let r = approve(&server, &w.key, &w.campaign_id, &w.affiliate_id).await.json();
    assert_eq!(r["trackingUrl"], format!("https://shop.example.com/?swarm_ref={}", w.code));
}

#[tokio::test]
async fn a_patch_without_promo_code_keeps_it() {
    let server = TestServer::start().await;
    let w = World::with_campaign(
        &server,
        json!({
            "name": "Coupon",
            "landingUrl": "https://shop.example.com/",
            "compensationModel": "FIXED",
            "payoutCents": 500,
            "promoCode": "SPRING10",
        }),
    )
    .await;
    let path = format!("/api/v1/campaigns/{}", w.campaign_id);
    let r = server.patch(&path, Some(&w.key), json!({"payoutCents": 700})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let shown = show(&server, &w.key, &w.campaign_id).await;
    assert_eq!(shown["promoCode"], "SPRING10");
    assert_eq!(shown["payoutCents"], 700);
    let r = w.postback(&server, "after-patch", None).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["lead"]["payoutCents"], 700, "the new payout applies to the next postback");
}

// ------------------------------------------------------------- ownership

#[tokio::test]
async fn another_advertisers_key_gets_404_for_the_campaign_and_changes_nothing() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let other = new_advertiser(&server, "Globex").await;
    let other_key = s(&other["apiKey"]);
    let path = format!("/api/v1/campaigns/{}", w.campaign_id);
    let before = show(&server, &w.key, &w.campaign_id).await;

    let r = server.get(&path, Some(other_key)).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(r.json()["error"], "not_found");
    let r = server.patch(&path, Some(other_key), json!({"landingUrl": "https://evil.example.net/"})).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(r.json()["error"], "not_found");
    let r = server.post(&format!("{path}/pause"), Some(other_key), json!({})).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = server.post(&format!("{path}/affiliates"), Some(other_key), json!({"affiliateId": w.affiliate_id})).await;
    assert_eq!(r.status, 404, "{}", r.text);
    // The 404 reads exactly like one for a campaign that does not exist.
    let missing = server.get("/api/v1/campaigns/cmp_0000000000000001", Some(other_key)).await;
    assert_eq!(missing.status, 404);

    assert_eq!(show(&server, &w.key, &w.campaign_id).await, before, "nothing changed");
    let location = redirect_target(&server, &w.code).await;
    assert!(location.starts_with("https://shop.example.com/landing"), "{location}");
}

// ----------------------------------------------------------- key headers

#[tokio::test]
async fn both_authorization_bearer_and_x_api_key_are_accepted() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let path = format!("/api/v1/campaigns/{}", w.campaign_id);
    let bearer = format!("Bearer {}", w.key);
    let lower = format!("bearer {}", w.key);
    let headers: [&[(&str, &str)]; 3] =
        [&[("authorization", bearer.as_str())], &[("authorization", lower.as_str())], &[("x-api-key", w.key.as_str())]];
    for h in headers {
        let r = server.send(Method::GET, &path, h, Vec::new()).await;
        assert_eq!(r.status, 200, "{h:?}: {}", r.text);
        assert_eq!(r.json()["id"], w.campaign_id.as_str());
    }
    let json_with = |h: (&'static str, String), body: Value| {
        let server = &server;
        async move {
            let headers = [(h.0, h.1.as_str()), ("content-type", "application/json")];
            server.send(Method::POST, "/api/v1/postback", &headers, serde_json::to_vec(&body).unwrap()).await
        }
    };
    let r = json_with(
        ("x-api-key", w.key.clone()),
        json!({"swarm_ref": w.code, "externalId": "xk-1", "eventType": "PURCHASE"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = json_with(
        ("authorization", bearer.clone()),
        json!({"swarm_ref": w.code, "externalId": "xk-2", "eventType": "SIGNUP"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // The conversions endpoint, as the seed's curl example sends it.
    let token = w.click_token(&server).await;
    let body =
        serde_json::to_vec(&json!({"clickId": token, "email": "jane@example.com", "properties": {"plan": "pro"}}))
            .unwrap();
    let r = server
        .send(
            Method::POST,
            "/api/v1/affiliate/conversions",
            &[("x-api-key", w.key.as_str()), ("content-type", "application/json")],
            body,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["status"], "recorded");
    // Campaign creation and admin calls too.
    let body = serde_json::to_vec(&fixed_campaign()).unwrap();
    let r = server.send(Method::POST, "/api/v1/campaigns", &[("x-api-key", w.key.as_str())], body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let body = serde_json::to_vec(&json!({"name": "Initech"})).unwrap();
    let r = server.send(Method::POST, "/api/v1/admin/advertisers", &[("x-api-key", ADMIN_KEY)], body).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

// ------------------------------------------------------------- payouts

#[tokio::test]
async fn a_payout_percentage_of_12_5_round_trips_as_12_5_and_20_as_20() {
    let server = TestServer::start().await;
    let twelve = World::rev_share(&server, json!(12.5)).await;
    assert_eq!(twelve.campaign["payoutPercentage"], json!(12.5), "{}", twelve.campaign);
    let shown = show(&server, &twelve.key, &twelve.campaign_id).await;
    assert_eq!(shown["payoutPercentage"], json!(12.5));
    assert_eq!(shown["compensationModel"], "REV_SHARE");
    assert_eq!(shown["payoutCents"], Value::Null);

    let twenty = World::rev_share(&server, json!(20)).await;
    let shown = show(&server, &twenty.key, &twenty.campaign_id).await;
    assert_eq!(shown["payoutPercentage"], json!(20), "20 is rendered as the integer 20");
    assert!(shown["payoutPercentage"].is_u64(), "{shown}");

    // What is shown is what is paid: 12.5 % of 9900 is 1237.5 → 1238.
    let r = twelve.postback(&server, "o-1", Some(9900)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["lead"]["payoutCents"], 1238);
    // PATCH to another percentage round-trips too, and the next postback uses it.
    let r = server
        .patch(
            &format!("/api/v1/campaigns/{}", twelve.campaign_id),
            Some(&twelve.key),
            json!({"payoutPercentage": 33.33}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["payoutPercentage"], json!(33.33));
    let r = twelve.postback(&server, "o-2", Some(100)).await;
    assert_eq!(r.json()["lead"]["payoutCents"], 33);
}

// --------------------------------------------------------------- pausing

#[tokio::test]
async fn pausing_a_campaign_stops_clicks_and_ignores_conversions_as_campaign_inactive() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let token = w.click_token(&server).await;
    let path = format!("/api/v1/campaigns/{}", w.campaign_id);
    let r = server.post(&format!("{path}/pause"), Some(&w.key), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["status"], "paused");
    assert_eq!(show(&server, &w.key, &w.campaign_id).await["status"], "paused");

    let click = server.click(&w.code).await;
    assert_eq!(click.status, 404, "{}", click.text);
    assert!(click.header("content-type").unwrap_or("").starts_with("text/html"));
    assert!(click.header("location").is_none());

    let r = w.convert(&server, &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json(), json!({"status": "ignored", "reason": "campaign_inactive"}));
    server
        .until("the ignored conversion is counted", || async {
            (w.stats(&server).await["conversions"]["ignored"]["campaign_inactive"] == 1).then_some(())
        })
        .await;
    assert_eq!(w.stats(&server).await["conversions"]["recorded"], 0);

    // Re-activating (tracking is already confirmed) brings the link back and
    // the earlier click can still convert.
    let r = server.post(&format!("{path}/activate"), Some(&w.key), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["status"], "active");
    assert_eq!(server.click(&w.code).await.status, 302);
    let r = w.convert(&server, &token).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_patch_racing_the_test_postback_loses_neither_change() {
    let server = TestServer::start().await;
    let adv = server.post("/api/v1/admin/advertisers", Some(ADMIN_KEY), json!({"name": "Racer"})).await.json();
    let key = adv["apiKey"].as_str().unwrap().to_string();
    for round in 0..10 {
        let created = server
            .post("/api/v1/campaigns", Some(&key), json!({
                "name": "race", "landingUrl": "https://shop.example.com/", "compensationModel": "FIXED", "payoutCents": 1,
            }))
            .await
            .json();
        let id = created["id"].as_str().unwrap();
        let test_code = created["testTrackingCode"].as_str().unwrap();
        let promo = format!("ROUND{round}");
        let postback = server.post(
            "/api/v1/postback",
            Some(&key),
            json!({
                "swarm_ref": test_code, "externalId": "t", "eventType": "LEAD",
            }),
        );
        let path = format!("/api/v1/campaigns/{id}");
        let patch = server.patch(&path, Some(&key), json!({"promoCode": promo}));
        let (p, q) = tokio::join!(postback, patch);
        assert_eq!((p.status.as_u16(), q.status.as_u16()), (200, 200));
        let now = server.get(&format!("/api/v1/campaigns/{id}"), Some(&key)).await.json();
        assert!(now["trackingConfirmedAt"].is_number(), "round {round}: the confirmation was lost");
        assert_eq!(now["promoCode"], promo.as_str(), "round {round}: the patch was lost");
    }
}
