//! Postback fields: event types, ids, swarm_ref, revenueCents.

use super::common::*;
use serde_json::json;

#[tokio::test]
async fn a_postback_with_an_unknown_event_type_is_a_400_listing_the_event_types() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let before = w.stats(&server).await;
    for event in ["CHARGEBACK", "purchase", "refund", ""] {
        let r = server
            .post(
                "/api/v1/postback",
                Some(&w.key),
                json!({"swarm_ref": w.code, "externalId": "ev-1", "eventType": event}),
            )
            .await;
        let v = expect_validation(&r, "eventType");
        if !event.is_empty() {
            let m = v["message"].as_str().unwrap();
            for t in ["PURCHASE", "SIGNUP", "INSTALL", "LEAD", "SUBSCRIPTION", "REFUND"] {
                assert!(m.contains(t), "message does not list {t}: {m}");
            }
        }
    }
    let r = server.post("/api/v1/postback", Some(&w.key), json!({"swarm_ref": w.code, "externalId": "ev-1"})).await;
    expect_validation(&r, "eventType");
    assert_eq!(w.stats(&server).await, before);
    assert_eq!(w.postback(&server, "ev-1", None).await.status, 201);
}

#[tokio::test]
async fn a_postback_without_an_external_id_is_a_400() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let before = w.stats(&server).await;
    for body in [
        json!({"swarm_ref": w.code, "eventType": "PURCHASE"}),
        json!({"swarm_ref": w.code, "eventType": "PURCHASE", "externalId": null}),
        json!({"swarm_ref": w.code, "eventType": "PURCHASE", "externalId": ""}),
        json!({"swarm_ref": w.code, "eventType": "PURCHASE", "externalId": "   "}),
    ] {
        let r = server.post("/api/v1/postback", Some(&w.key), body).await;
        expect_validation(&r, "externalId");
    }
    assert_eq!(w.stats(&server).await, before);
}

#[tokio::test]
async fn a_postback_with_an_overlong_external_id_is_a_400() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let r = w.postback(&server, &"x".repeat(257), None).await;
    let v = expect_validation(&r, "externalId");
    assert!(v["message"].as_str().unwrap().contains("256"), "{}", r.text);
    assert_eq!(w.stats(&server).await["postbacks"]["recorded"], 0);
}

#[tokio::test]
async fn a_postback_without_a_swarm_ref_is_a_400() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let r = server.post("/api/v1/postback", Some(&w.key), json!({"externalId": "o-1", "eventType": "PURCHASE"})).await;
    expect_validation(&r, "swarm_ref");
}

#[tokio::test]
async fn a_postback_with_an_unknown_swarm_ref_is_a_404() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let before = w.stats(&server).await;
    let r = server
        .post(
            "/api/v1/postback",
            Some(&w.key),
            json!({"swarm_ref": "ZZZZ9999", "externalId": "o-1", "eventType": "PURCHASE"}),
        )
        .await;
    let v = expect_error(&r, 404, "not_found");
    assert!(v["message"].as_str().unwrap().contains("swarm_ref"), "{}", r.text);
    assert_eq!(w.stats(&server).await, before);
}

#[tokio::test]
async fn a_rev_share_postback_without_revenue_cents_is_a_400_naming_revenue_cents() {
    let server = TestServer::start().await;
    let w = World::rev_share(&server, json!(20)).await;
    let before = w.stats(&server).await;
    let r = w.postback(&server, "rs-1", None).await;
    expect_validation(&r, "revenueCents");
    let r = server
        .post(
            "/api/v1/postback",
            Some(&w.key),
            json!({"swarm_ref": w.code, "externalId": "rs-1", "eventType": "PURCHASE", "revenueCents": null}),
        )
        .await;
    expect_validation(&r, "revenueCents");
    assert_eq!(w.stats(&server).await, before, "a rejected postback changes nothing");
    let r = w.postback(&server, "rs-1", Some(1499)).await;
    assert_eq!(r.status, 201, "the corrected postback is new: {}", r.text);
    assert_eq!(r.json()["lead"]["payoutCents"], 300);
}

#[tokio::test]
async fn negative_revenue_cents_is_a_400() {
    let server = TestServer::start().await;
    let w = World::rev_share(&server, json!(20)).await;
    let before = w.stats(&server).await;
    let r = server
        .post(
            "/api/v1/postback",
            Some(&w.key),
            json!({"swarm_ref": w.code, "externalId": "neg", "eventType": "PURCHASE", "revenueCents": -100}),
        )
        .await;
    expect_validation(&r, "revenueCents");
    assert_eq!(w.stats(&server).await, before);
    assert_eq!(w.postback(&server, "neg", Some(100)).await.status, 201);
}

#[tokio::test]
async fn fractional_revenue_cents_is_a_400() {
    let server = TestServer::start().await;
    let w = World::rev_share(&server, json!(20)).await;
    let before = w.stats(&server).await;
    for bad in ["12.5", "0.1", "-0.5"] {
        let body =
            format!(r#"{{"swarm_ref":"{}","externalId":"frac","eventType":"PURCHASE","revenueCents":{bad}}}"#, w.code);
        let r = server.post_raw("/api/v1/postback", &w.key, body).await;
        expect_validation(&r, "revenueCents");
    }
    assert_eq!(w.stats(&server).await, before);
    // A whole number written with a decimal point is whole cents.
    let body =
        format!(r#"{{"swarm_ref":"{}","externalId":"frac","eventType":"PURCHASE","revenueCents":9900.0}}"#, w.code);
    let r = server.post_raw("/api/v1/postback", &w.key, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["lead"]["payoutCents"], 1980);
}
