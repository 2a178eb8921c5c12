//! Malformed, mistyped and oversized bodies: 400 or 413, never stored.

use super::common::*;
use super::support::*;
use hyper::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn malformed_json_is_a_400_naming_the_problem() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let before = w.stats(&server).await;
    let bodies: [&[u8]; 4] = [b"{\"swarm_ref\": ", b"{not json}", b"{\"externalId\": \"a\",}", b"\xff\xfe{}"];
    for body in bodies {
        let r = server.post_raw("/api/v1/postback", &w.key, body).await;
        let v = expect_error(&r, 400, "invalid_json");
        assert!(
            v["message"].as_str().unwrap().to_lowercase().contains("json")
                || v["message"].as_str().unwrap().contains("line"),
            "message should say what is wrong: {}",
            r.text
        );
    }
    let r = server.post_raw("/api/v1/campaigns", &w.key, "{\"name\": \"x\", \"landingUrl\": ").await;
    expect_error(&r, 400, "invalid_json");
    let r = server.post_raw("/api/v1/admin/advertisers", ADMIN_KEY, "name=Acme").await;
    expect_error(&r, 400, "invalid_json");
    assert_eq!(w.stats(&server).await, before, "a malformed postback must not change the stats");
}

#[tokio::test]
async fn a_json_value_that_is_not_an_object_is_a_400() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    for body in ["[]", "null", "42", "\"swarm_ref\"", "[{\"swarm_ref\": \"x\"}]"] {
        let r = server.post_raw("/api/v1/postback", &w.key, body).await;
        expect_error(&r, 400, "invalid_json");
        let r = server.post_raw("/api/v1/campaigns", &w.key, body).await;
        expect_error(&r, 400, "invalid_json");
    }
}

#[tokio::test]
async fn deeply_nested_json_is_a_400_not_a_crash() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let depth = 5000;
    let nested = format!(
        "{{\"swarm_ref\":\"{}\",\"externalId\":\"deep\",\"eventType\":\"PURCHASE\",\"metadata\":{{\"a\":{}{}}}}}",
        w.code,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let r = server.post_raw("/api/v1/postback", &w.key, nested).await;
    expect_error(&r, 400, "invalid_json");
    // The server is still up and answering.
    assert_eq!(server.get("/healthz", None).await.status, 200);
    assert_eq!(w.postback(&server, "deep", None).await.status, 201, "the rejected externalId must not be stored");
}

#[tokio::test]
async fn an_empty_body_is_a_400_asking_for_a_json_object() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let before = w.stats(&server).await;
    for path in ["/api/v1/postback", "/api/v1/campaigns", "/api/v1/affiliate/conversions"] {
        for body in ["", "   \n"] {
            let r = server.post_raw(path, &w.key, body).await;
            let v = expect_error(&r, 400, "invalid_json");
            assert!(v["message"].as_str().unwrap().contains("empty"), "{path}: {}", r.text);
        }
    }
    let r = server.post_raw("/api/v1/admin/affiliates", ADMIN_KEY, "").await;
    expect_error(&r, 400, "invalid_json");
    let r = server
        .send(
            Method::PATCH,
            &format!("/api/v1/campaigns/{}", w.campaign_id),
            &[("authorization", format!("Bearer {}", w.key).as_str())],
            Vec::new(),
        )
        .await;
    expect_error(&r, 400, "invalid_json");
    assert_eq!(w.stats(&server).await, before);
}

#[tokio::test]
async fn payout_cents_as_a_string_is_a_400_naming_payout_cents() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    let r = create_campaign(&server, &key, fixed_campaign(), |c| {
        c.insert("payoutCents".into(), json!("500"));
    })
    .await;
    expect_400_naming(&r, "payoutCents");
}

#[tokio::test]
async fn external_id_as_an_object_is_a_400_naming_external_id() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let before = w.stats(&server).await;
    for bad in [json!({"id": 1}), json!([1, 2]), json!(true), json!(1.5)] {
        let r = server
            .post(
                "/api/v1/postback",
                Some(&w.key),
                json!({"swarm_ref": w.code, "externalId": bad, "eventType": "PURCHASE"}),
            )
            .await;
        expect_validation(&r, "externalId");
    }
    assert_eq!(w.stats(&server).await, before);
}

#[tokio::test]
async fn other_wrong_types_are_400s_naming_their_field() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let postback = |field: &str, value: Value| {
        let mut body = json!({"swarm_ref": w.code, "externalId": "wt-1", "eventType": "PURCHASE"});
        body[field] = value;
        body
    };
    for (field, value) in [
        ("eventType", json!(1)),
        ("revenueCents", json!("9900")),
        ("metadata", json!("orderId=1")),
        ("swarm_ref", json!(["x"])),
    ] {
        let r = server.post("/api/v1/postback", Some(&w.key), postback(field, value)).await;
        expect_400_naming(&r, field);
    }
    let r = server
        .post("/api/v1/affiliate/conversions", Some(&w.key), json!({"clickId": "x", "properties": ["plan", "pro"]}))
        .await;
    expect_400_naming(&r, "properties");
    let r = create_campaign(&server, &w.key, rev_share_campaign(), |c| {
        c.insert("payoutPercentage".into(), json!("20"));
    })
    .await;
    expect_400_naming(&r, "payoutPercentage");
    let r = server.post("/api/v1/admin/advertisers", Some(ADMIN_KEY), json!({"name": 7})).await;
    expect_400_naming(&r, "name");
    assert_eq!(w.postback(&server, "wt-1", None).await.status, 201, "no rejected postback may have stored wt-1");
}

#[tokio::test]
async fn a_body_over_64_kib_is_a_413_before_anything_is_stored() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let before = w.stats(&server).await;
    let mut body = json!({"swarm_ref": w.code, "externalId": "big-1", "eventType": "PURCHASE",
        "metadata": {"note": "x".repeat(65 * 1024)}});
    let bytes = serde_json::to_vec(&body).unwrap();
    assert!(bytes.len() > 64 * 1024);
    let r = server.post_raw("/api/v1/postback", &w.key, bytes).await;
    let v = expect_error(&r, 413, "payload_too_large");
    assert!(v["message"].as_str().unwrap().contains("65536"), "the message should name the limit: {}", r.text);
    // One byte over the default limit, declared with Content-Length.
    let r = server.post_raw("/api/v1/campaigns", &w.key, vec![b' '; 64 * 1024 + 1]).await;
    expect_error(&r, 413, "payload_too_large");
    assert_eq!(w.stats(&server).await, before);
    body["metadata"] = json!({"note": "small"});
    assert_eq!(
        server.post("/api/v1/postback", Some(&w.key), body).await.status,
        201,
        "big-1 must not have been stored"
    );
}

#[tokio::test]
async fn a_body_just_over_a_configured_limit_is_a_413_and_one_at_the_limit_is_accepted() {
    let server = TestServer::start_with(&[("CLICKLEDGER_HTTP_BODY_LIMIT_BYTES", "1024")]).await;
    let padded = |len: usize| {
        let mut b = br#"{"name":"Acme"}"#.to_vec();
        b.resize(len, b' ');
        b
    };
    let r = server.post_raw("/api/v1/admin/advertisers", ADMIN_KEY, padded(1025)).await;
    let v = expect_error(&r, 413, "payload_too_large");
    assert!(v["message"].as_str().unwrap().contains("1024"), "the message should name the limit: {}", r.text);
    let r = server.post_raw("/api/v1/admin/advertisers", ADMIN_KEY, padded(1024)).await;
    assert_eq!(r.status, 201, "a body of exactly the limit is allowed: {}", r.text);
}

#[tokio::test]
async fn a_chunked_body_without_content_length_over_the_limit_is_a_413() {
    let server = TestServer::start_with(&[("CLICKLEDGER_HTTP_BODY_LIMIT_BYTES", "1024")]).await;
    let mut json = br#"{"name":"Acme"}"#.to_vec();
    json.resize(1025, b' ');
    let mut req = format!(
        "POST /api/v1/admin/advertisers HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    // Two chunks, so the limit is crossed part-way through the stream.
    for part in [&json[..600], &json[600..]] {
        req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        req.extend_from_slice(part);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let (status, text) = raw::exchange(&server, &req).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("payload_too_large"), "{text}");
    // And a chunked body within the limit is read normally.
    let small = br#"{"name":"Acme"}"#;
    let mut req = format!(
        "POST /api/v1/admin/advertisers HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n",
        small.len()
    )
    .into_bytes();
    req.extend_from_slice(small);
    req.extend_from_slice(b"\r\n0\r\n\r\n");
    let (status, text) = raw::exchange(&server, &req).await;
    assert_eq!(status, 201, "{text}");
}

#[tokio::test]
async fn a_second_json_value_or_garbage_after_the_body_is_a_400_and_deposits_nothing() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let fund = format!("/api/v1/campaigns/{}/fund", w.campaign_id);
    let r = server.post_raw(&fund, &w.key, r#"{"amountCents":100}{"amountCents":999999}garbage"#).await;
    let v = expect_error(&r, 400, "invalid_json");
    assert!(v["message"].as_str().unwrap().contains("after the JSON"), "{}", r.text);
    assert_eq!(w.balance(&server).await["fundedCents"], 0, "nothing may be deposited");
    // Trailing whitespace is still fine.
    let r = server.post_raw(&fund, &w.key, "{\"amountCents\":100}\r\n \n").await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn every_json_endpoint_refuses_trailing_data() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let campaign = format!("/api/v1/campaigns/{}", w.campaign_id);
    let cases: Vec<(Method, String, &str, String)> = vec![
        (Method::POST, "/api/v1/admin/advertisers".into(), ADMIN_KEY, r#"{"name":"A"}"#.into()),
        (Method::POST, "/api/v1/admin/affiliates".into(), ADMIN_KEY, r#"{"name":"A"}"#.into()),
        (Method::POST, "/api/v1/campaigns".into(), &w.key, fixed_campaign().to_string()),
        (Method::PATCH, campaign.clone(), &w.key, r#"{"name":"B"}"#.into()),
        (Method::POST, format!("{campaign}/affiliates"), &w.key, format!(r#"{{"affiliateId":"{}"}}"#, w.affiliate_id)),
        (
            Method::POST,
            "/api/v1/postback".into(),
            &w.key,
            json!({"swarm_ref": w.code, "externalId": "t-1", "eventType": "PURCHASE"}).to_string(),
        ),
        (Method::POST, "/api/v1/affiliate/conversions".into(), &w.key, r#"{"clickId":"x"}"#.into()),
        (Method::POST, "/api/v1/referrals".into(), &w.affiliate_key, json!({"campaignId": w.campaign_id}).to_string()),
        (Method::POST, "/api/v1/referrals/verify".into(), &w.key, r#"{"token":"x"}"#.into()),
        (
            Method::POST,
            "/api/v1/leads".into(),
            &w.affiliate_key,
            json!({"campaignId": w.campaign_id, "trackingCode": w.code, "evidence": []}).to_string(),
        ),
    ];
    for (method, path, key, body) in cases {
        let auth = format!("Bearer {key}");
        let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
        let r = server.send(method.clone(), &path, &headers, format!("{body} {{}}").into_bytes()).await;
        expect_error(&r, 400, "invalid_json");
        let r = server.send(method, &path, &headers, format!("{body}x").into_bytes()).await;
        expect_error(&r, 400, "invalid_json");
    }
    assert_eq!(w.stats(&server).await["postbacks"]["recorded"], 0);
}

#[tokio::test]
async fn error_messages_quote_only_a_short_excerpt_of_the_input() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let long = "y".repeat(60_000);
    let answers = [
        // An unknown field named by 60 KB of text (serde quotes it).
        server.post_raw("/api/v1/campaigns", &w.key, format!(r#"{{"{long}": 1}}"#)).await,
        // A 60 KB swarm_ref (our own message quotes it).
        server
            .post(
                "/api/v1/postback",
                Some(&w.key),
                json!({"swarm_ref": long, "externalId": "e", "eventType": "PURCHASE"}),
            )
            .await,
        // A 60 KB event type and a 10 KB path.
        server
            .post("/api/v1/postback", Some(&w.key), json!({"swarm_ref": w.code, "externalId": "e", "eventType": long}))
            .await,
        server.get(&format!("/api/v1/campaigns/{}", "z".repeat(10_000)), Some(&w.key)).await,
        server.get(&format!("/{}", "z".repeat(10_000)), None).await,
    ];
    for r in answers {
        assert!((400..500).contains(&r.status.as_u16()), "{}", &r.text[..200.min(r.text.len())]);
        assert!(r.text.len() < 1024, "an error answer of {} bytes echoes the input", r.text.len());
        assert!(r.text.contains("yyyy") || r.text.contains("zzzz") || r.text.contains("eventType"), "{}", r.text);
    }
}
