//! Missing, wrong and misplaced keys: 401 and 403, nothing stored.

use super::common::*;
use super::support::*;
use hyper::Method;
use serde_json::json;

#[tokio::test]
async fn a_missing_key_is_a_401() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let token = w.click_token(&server).await;
    let before = settled_stats(&server, &w, 1).await;
    let cases = [
        ("/api/v1/postback", json!({"swarm_ref": w.code, "externalId": "nokey", "eventType": "PURCHASE"})),
        ("/api/v1/affiliate/conversions", json!({"clickId": token})),
        ("/api/v1/campaigns", fixed_campaign()),
        ("/api/v1/admin/advertisers", json!({"name": "Acme"})),
        ("/api/v1/admin/affiliates", json!({"name": "Blog"})),
    ];
    for (path, body) in cases {
        let r = server.post(path, None, body).await;
        expect_error(&r, 401, "unauthorized");
    }
    let r = server.get(&format!("/api/v1/campaigns/{}", w.campaign_id), None).await;
    expect_error(&r, 401, "unauthorized");
    // An Authorization header that carries no key is the same as none.
    for auth in ["Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "sk_live_nothing"] {
        let r = server
            .send(Method::GET, &format!("/api/v1/campaigns/{}", w.campaign_id), &[("authorization", auth)], Vec::new())
            .await;
        expect_error(&r, 401, "unauthorized");
    }
    assert_eq!(w.stats(&server).await, before);
    assert_eq!(w.convert(&server, &token).await.status, 201, "the token must not have been consumed");
    assert_eq!(w.postback(&server, "nokey", None).await.status, 201, "nokey must not have been stored");
}

#[tokio::test]
async fn a_wrong_key_is_a_401() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let token = w.click_token(&server).await;
    let before = settled_stats(&server, &w, 1).await;
    let wrong = "sk_live_0000000000000000000000000000000";
    let r = server
        .post(
            "/api/v1/postback",
            Some(wrong),
            json!({"swarm_ref": w.code, "externalId": "wk", "eventType": "PURCHASE"}),
        )
        .await;
    expect_error(&r, 401, "unauthorized");
    let r = server.post("/api/v1/affiliate/conversions", Some(wrong), json!({"clickId": token})).await;
    expect_error(&r, 401, "unauthorized");
    let r = server.get(&format!("/api/v1/campaigns/{}", w.campaign_id), Some(wrong)).await;
    expect_error(&r, 401, "unauthorized");
    let r = server.post("/api/v1/campaigns", Some(wrong), fixed_campaign()).await;
    expect_error(&r, 401, "unauthorized");
    let r = server.post("/api/v1/admin/advertisers", Some("not-the-admin-key"), json!({"name": "Acme"})).await;
    expect_error(&r, 401, "unauthorized");
    // The admin key is not an advertiser key.
    let r = server
        .post(
            "/api/v1/postback",
            Some(ADMIN_KEY),
            json!({"swarm_ref": w.code, "externalId": "wk", "eventType": "PURCHASE"}),
        )
        .await;
    assert!(r.status == 401 || r.status == 403, "{}", r.text);
    assert_eq!(w.stats(&server).await, before);
    assert_eq!(w.convert(&server, &token).await.status, 201);
    assert_eq!(w.postback(&server, "wk", None).await.status, 201);
}

#[tokio::test]
async fn a_wrong_key_in_x_api_key_is_a_401_too() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let r = server
        .send(
            Method::GET,
            &format!("/api/v1/campaigns/{}", w.campaign_id),
            &[("x-api-key", "sk_live_bogus")],
            Vec::new(),
        )
        .await;
    expect_error(&r, 401, "unauthorized");
}

#[tokio::test]
async fn an_affiliate_key_on_the_conversions_endpoint_is_a_403() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let (_, affiliate_key) = new_affiliate(&server, "Partner").await;
    let token = w.click_token(&server).await;
    let r = server.post("/api/v1/affiliate/conversions", Some(&affiliate_key), json!({"clickId": token})).await;
    let v = expect_error(&r, 403, "forbidden");
    assert!(v["message"].as_str().unwrap().contains("affiliate:write"), "{}", r.text);
    // Leniency is about tokens, not authentication: a bad token is still 403.
    let r = server.post("/api/v1/affiliate/conversions", Some(&affiliate_key), json!({"clickId": "garbage"})).await;
    expect_error(&r, 403, "forbidden");
    let r = server.post("/api/v1/affiliate/conversions", Some(&affiliate_key), json!({})).await;
    expect_error(&r, 403, "forbidden");
    // Nor may an affiliate fire postbacks or manage campaigns.
    let r = server
        .post(
            "/api/v1/postback",
            Some(&affiliate_key),
            json!({"swarm_ref": w.code, "externalId": "aff", "eventType": "PURCHASE"}),
        )
        .await;
    expect_error(&r, 403, "forbidden");
    let r = server.post("/api/v1/campaigns", Some(&affiliate_key), fixed_campaign()).await;
    expect_error(&r, 403, "forbidden");
    let stats = w.stats(&server).await;
    assert_eq!(stats["conversions"]["recorded"], 0);
    assert_eq!(stats["postbacks"]["recorded"], 0);
    assert_eq!(w.convert(&server, &token).await.status, 201, "the token must not have been consumed");
}

#[tokio::test]
async fn another_advertisers_key_on_a_postback_swarm_ref_is_a_403_and_stores_nothing() {
    let server = TestServer::start().await;
    let a = World::fixed(&server, 500).await;
    let (_, b_key) = new_advertiser(&server, "Globex").await;
    let before = a.stats(&server).await;
    let r = server
        .post(
            "/api/v1/postback",
            Some(&b_key),
            json!({"swarm_ref": a.code, "externalId": "order-b", "eventType": "PURCHASE"}),
        )
        .await;
    expect_error(&r, 403, "forbidden");
    // Nor may B confirm A's tracking with A's test code.
    let test_code = a.campaign["testTrackingCode"].as_str().unwrap();
    let r = server
        .post(
            "/api/v1/postback",
            Some(&b_key),
            json!({"swarm_ref": test_code, "externalId": "t", "eventType": "PURCHASE"}),
        )
        .await;
    expect_error(&r, 403, "forbidden");
    assert_eq!(a.stats(&server).await, before);
    let r = a.postback(&server, "order-b", None).await;
    assert_eq!(r.status, 201, "A's own postback with the same externalId is new: {}", r.text);
}

#[tokio::test]
async fn another_advertisers_key_on_a_click_token_conversion_is_a_403_and_stores_nothing() {
    let server = TestServer::start().await;
    let a = World::fixed(&server, 500).await;
    let (_, b_key) = new_advertiser(&server, "Globex").await;
    let token = a.click_token(&server).await;
    let before = a.stats(&server).await;
    let r = server.post("/api/v1/affiliate/conversions", Some(&b_key), json!({"clickId": token})).await;
    expect_error(&r, 403, "forbidden");
    assert_eq!(a.stats(&server).await["conversions"], before["conversions"]);
    let r = a.convert(&server, &token).await;
    assert_eq!(r.status, 201, "the token must not have been consumed by B: {}", r.text);
}

#[tokio::test]
async fn admin_endpoints_with_an_advertiser_key_are_a_401() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    let (_, affiliate_key) = new_affiliate(&server, "Partner").await;
    for k in [key.as_str(), affiliate_key.as_str()] {
        for path in ["/api/v1/admin/advertisers", "/api/v1/admin/affiliates"] {
            let r = server.post(path, Some(k), json!({"name": "Sneaky"})).await;
            expect_error(&r, 401, "unauthorized");
            assert!(r.header("www-authenticate").is_some(), "a 401 should say how to authenticate");
        }
    }
}
