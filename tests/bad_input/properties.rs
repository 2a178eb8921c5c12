//! Bounds on properties and metadata objects.

use super::common::*;
use super::support::*;
use serde_json::{json, Value};

fn many_keys(n: usize) -> Value {
    Value::Object((0..n).map(|i| (format!("k{i}"), json!("v"))).collect())
}

#[tokio::test]
async fn metadata_with_too_many_keys_is_a_400_naming_the_limit() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let before = w.stats(&server).await;
    let r = server
        .post(
            "/api/v1/postback",
            Some(&w.key),
            json!({"swarm_ref": w.code, "externalId": "m-1", "eventType": "PURCHASE", "metadata": many_keys(51)}),
        )
        .await;
    let v = expect_validation(&r, "metadata");
    assert!(v["message"].as_str().unwrap().contains("50"), "{}", r.text);
    assert_eq!(w.stats(&server).await, before);
    let r = server
        .post(
            "/api/v1/postback",
            Some(&w.key),
            json!({"swarm_ref": w.code, "externalId": "m-1", "eventType": "PURCHASE", "metadata": many_keys(50)}),
        )
        .await;
    assert_eq!(r.status, 201, "50 keys is within the limit: {}", r.text);
}

#[tokio::test]
async fn metadata_with_too_long_a_value_or_key_is_a_400_naming_the_limit() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let before = w.stats(&server).await;
    let send = |metadata: Value| {
        server.post(
            "/api/v1/postback",
            Some(&w.key),
            json!({"swarm_ref": w.code, "externalId": "m-2", "eventType": "PURCHASE", "metadata": metadata}),
        )
    };
    let r = send(json!({"note": "x".repeat(1025)})).await;
    let v = expect_validation(&r, "metadata");
    assert!(v["message"].as_str().unwrap().contains("1024"), "{}", r.text);
    let r = send(json!({ "k".repeat(65): "v" })).await;
    let v = expect_validation(&r, "metadata");
    assert!(v["message"].as_str().unwrap().contains("64"), "{}", r.text);
    // A nested value counts by its JSON text.
    let r = send(json!({"items": vec!["abcdefghij"; 100]})).await;
    expect_validation(&r, "metadata");
    assert_eq!(w.stats(&server).await, before);
    let r = send(json!({"note": "x".repeat(1024), "k".repeat(64): "v"})).await;
    assert_eq!(r.status, 201, "values of 1024 and keys of 64 characters are allowed: {}", r.text);
}

#[tokio::test]
async fn an_oversize_test_postback_does_not_confirm_tracking() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    let created = server.post("/api/v1/campaigns", Some(&key), fixed_campaign()).await.json();
    let id = created["id"].as_str().unwrap();
    let r = server.post("/api/v1/postback", Some(&key), json!({
        "swarm_ref": created["testTrackingCode"], "externalId": "t", "eventType": "PURCHASE", "metadata": many_keys(51),
    })).await;
    expect_validation(&r, "metadata");
    let shown = server.get(&format!("/api/v1/campaigns/{id}"), Some(&key)).await.json();
    assert_eq!(shown["trackingConfirmedAt"], Value::Null);
    let r = server.post(&format!("/api/v1/campaigns/{id}/activate"), Some(&key), json!({})).await;
    expect_error(&r, 409, "tracking_not_confirmed");
}

#[tokio::test]
async fn the_field_limits_count_characters_not_bytes() {
    // The documented limits are 1024 characters per value and 64 per key; a
    // value of 1024 accented letters is 2048 bytes but within the limit.
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let r = server
        .post(
            "/api/v1/postback",
            Some(&w.key),
            json!({
                "swarm_ref": w.code, "externalId": "utf8", "eventType": "PURCHASE",
                "metadata": {"name": "é".repeat(1024), "ü".repeat(64): "v"},
            }),
        )
        .await;
    assert_eq!(r.status, 201, "1024 characters per value and 64 per key are allowed: {}", r.text);
}

#[tokio::test]
async fn conversion_properties_over_the_limits_are_a_400_and_do_not_use_up_the_click() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let token = w.click_token(&server).await;
    let before = w.stats(&server).await["conversions"].clone();
    let convert = |properties: Value| {
        server.post("/api/v1/affiliate/conversions", Some(&w.key), json!({"clickId": token, "properties": properties}))
    };
    let r = convert(many_keys(51)).await;
    let v = expect_validation(&r, "properties");
    assert!(v["message"].as_str().unwrap().contains("50"), "{}", r.text);
    let r = convert(json!({"plan": "p".repeat(1025)})).await;
    let v = expect_validation(&r, "properties");
    assert!(v["message"].as_str().unwrap().contains("1024"), "{}", r.text);
    let r = convert(json!({ "k".repeat(65): "pro" })).await;
    let v = expect_validation(&r, "properties");
    assert!(v["message"].as_str().unwrap().contains("64"), "{}", r.text);
    assert_eq!(w.stats(&server).await["conversions"], before);
    let r = convert(json!({"plan": "pro"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["status"], "recorded");
}

#[tokio::test]
async fn a_conversion_with_a_malformed_email_is_a_400() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let token = w.click_token(&server).await;
    let r = server
        .post("/api/v1/affiliate/conversions", Some(&w.key), json!({"clickId": token, "email": "not-an-email"}))
        .await;
    expect_validation(&r, "email");
    assert_eq!(w.convert(&server, &token).await.status, 201);
}
