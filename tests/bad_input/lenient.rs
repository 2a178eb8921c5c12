//! The one lenient answer: 200 `ignored` for token problems on the conversions endpoint.

use super::common::*;
use serde_json::json;

#[tokio::test]
async fn a_conversion_without_a_click_id_is_200_ignored_missing_token() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    for body in [
        json!({}),
        json!({"clickId": null}),
        json!({"clickId": ""}),
        json!({"clickId": "   "}),
        json!({"email": "jane@example.com", "properties": {"plan": "pro"}}),
    ] {
        let r = server.post("/api/v1/affiliate/conversions", Some(&w.key), body).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json(), json!({"status": "ignored", "reason": "missing_token"}));
    }
    assert_eq!(w.stats(&server).await["conversions"]["recorded"], 0);
}

#[tokio::test]
async fn a_conversion_with_a_garbage_click_id_is_200_ignored_bad_signature() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let token = w.click_token(&server).await;
    // Flip one character in the middle: well-formed but tampered.
    let mut tampered: Vec<char> = token.chars().collect();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    let long = "A".repeat(5000);
    for click_id in ["garbage", "!!!not base64!!!", "clk_0123", tampered.as_str(), long.as_str()] {
        let r = w.convert(&server, click_id).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json(), json!({"status": "ignored", "reason": "bad_signature"}));
    }
    assert_eq!(w.stats(&server).await["conversions"]["recorded"], 0);
    assert_eq!(w.convert(&server, &token).await.status, 201);
}

#[tokio::test]
async fn malformed_json_on_the_conversions_endpoint_is_still_a_400() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let bodies: [&[u8]; 4] = [b"{\"clickId\": ", b"clickId=abc", b"", b"[]"];
    for body in bodies {
        let r = server.post_raw("/api/v1/affiliate/conversions", &w.key, body).await;
        expect_error(&r, 400, "invalid_json");
    }
    let r = server.post("/api/v1/affiliate/conversions", Some(&w.key), json!({"clickId": {"id": "x"}})).await;
    expect_400_naming(&r, "clickId");
}
