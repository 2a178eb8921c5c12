//! Every 4xx the spec lists ("Bad input"): each answer is a JSON error
//! `{"error", "message"}` (plus `field` for validation errors) with the right
//! status, never a 5xx, and nothing stored changes. The one lenient answer —
//! 200 `ignored` — is for token problems on the conversions endpoint only.

mod common;

use std::time::Duration;

use common::*;
use hyper::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------- helpers

/// Asserts a JSON error of `status` with `code` and a non-empty message.
fn assert_error(r: &Reply, status: u16, code: &str) -> Value {
    assert_eq!(r.status.as_u16(), status, "unexpected status; body: {}", r.text);
    let ct = r.header("content-type").unwrap_or("");
    assert!(ct.starts_with("application/json"), "content-type {ct:?}; body: {}", r.text);
    let body = r.json();
    assert!(body.is_object(), "error body is not an object: {}", r.text);
    assert_eq!(body["error"], code, "error code; body: {}", r.text);
    let message = body["message"].as_str().unwrap_or_else(|| panic!("no message: {}", r.text));
    assert!(!message.trim().is_empty(), "empty message: {}", r.text);
    body
}

/// A validation error: 400 `validation_failed` with `field` set and the
/// message naming the field.
fn assert_invalid(r: &Reply, field: &str) -> Value {
    let body = assert_error(r, 400, "validation_failed");
    assert_eq!(body["field"], field, "field; body: {}", r.text);
    assert!(body["message"].as_str().unwrap().contains(field), "message does not name {field}: {}", r.text);
    body
}

/// A 400 about one field, whether it was caught while decoding (wrong type,
/// missing, unknown) or while validating: the message names the field, and a
/// `field` member, when present, is that field.
fn assert_400_naming(r: &Reply, field: &str) -> Value {
    assert_eq!(r.status, 400, "{}", r.text);
    let body = r.json();
    let code = body["error"].as_str().unwrap_or_else(|| panic!("no error code: {}", r.text));
    assert!(code == "invalid_json" || code == "validation_failed", "error code {code}: {}", r.text);
    let body = assert_error(r, 400, code);
    assert!(body["message"].as_str().unwrap().contains(field), "message does not name {field}: {}", r.text);
    if let Some(f) = body.get("field") {
        assert_eq!(f, field, "field; body: {}", r.text);
    }
    body
}

async fn new_advertiser(server: &TestServer, name: &str) -> (String, String) {
    let r = server.post("/api/v1/admin/advertisers", Some(ADMIN_KEY), json!({"name": name})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = r.json();
    (v["id"].as_str().unwrap().to_string(), v["apiKey"].as_str().unwrap().to_string())
}

async fn new_affiliate(server: &TestServer) -> (String, String) {
    let r = server.post("/api/v1/admin/affiliates", Some(ADMIN_KEY), json!({"name": "Partner"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = r.json();
    (v["id"].as_str().unwrap().to_string(), v["apiKey"].as_str().unwrap().to_string())
}

/// POSTs raw bytes with a key and a JSON content type.
async fn post_raw(server: &TestServer, path: &str, key: &str, body: impl Into<Vec<u8>>) -> Reply {
    let auth = format!("Bearer {key}");
    server
        .send(
            Method::POST,
            path,
            &[("authorization", auth.as_str()), ("content-type", "application/json")],
            body.into(),
        )
        .await
}

/// The campaign's stats once `clicks` human clicks have been flushed (clicks
/// are counted after the redirect, within the flush interval).
async fn settled_stats(server: &TestServer, w: &World, clicks: u64) -> Value {
    server.eventually("clicks flushed", || async { w.stats(server).await["clicks"] == clicks }).await;
    w.stats(server).await
}

async fn get_campaign(server: &TestServer, w: &World) -> Value {
    let r = server.get(&format!("/api/v1/campaigns/{}", w.campaign_id), Some(&w.key)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

fn fixed_campaign() -> Value {
    json!({
        "name": "Spring sale",
        "landingUrl": "https://shop.example.com/landing",
        "compensationModel": "FIXED",
        "payoutCents": 500,
    })
}

fn rev_share_campaign() -> Value {
    json!({
        "name": "Percent of sale",
        "landingUrl": "https://shop.example.com/",
        "compensationModel": "REV_SHARE",
        "payoutPercentage": 20,
    })
}

/// Creates a campaign with `mutate` applied to a valid FIXED body.
async fn create_campaign(
    server: &TestServer,
    key: &str,
    base: Value,
    mutate: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Reply {
    let mut body = base;
    mutate(body.as_object_mut().unwrap());
    server.post("/api/v1/campaigns", Some(key), body).await
}

/// Sends raw bytes over a fresh TCP connection and returns the status code
/// and the response text (whatever arrived before the server closed).
async fn raw_http(server: &TestServer, request: &[u8]) -> (u16, String) {
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    stream.write_all(request).await.expect("write request");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => 0, // reset after the answer: keep what arrived
            Err(_) => break,
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head.lines().find_map(|l| {
                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))
            });
            if len.is_some_and(|len| body.len() >= len) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status line in {text:?}"));
    (status, text)
}

// ------------------------------------------------------ malformed bodies

#[tokio::test]
async fn malformed_json_is_a_400_naming_the_problem() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let before = w.stats(&server).await;
    let bodies: [&[u8]; 4] = [b"{\"swarm_ref\": ", b"{not json}", b"{\"externalId\": \"a\",}", b"\xff\xfe{}"];
    for body in bodies {
        let r = post_raw(&server, "/api/v1/postback", &w.key, body).await;
        let v = assert_error(&r, 400, "invalid_json");
        assert!(
            v["message"].as_str().unwrap().to_lowercase().contains("json")
                || v["message"].as_str().unwrap().contains("line"),
            "message should say what is wrong: {}",
            r.text
        );
    }
    let r = post_raw(&server, "/api/v1/campaigns", &w.key, "{\"name\": \"x\", \"landingUrl\": ").await;
    assert_error(&r, 400, "invalid_json");
    let r = post_raw(&server, "/api/v1/admin/advertisers", ADMIN_KEY, "name=Acme").await;
    assert_error(&r, 400, "invalid_json");
    assert_eq!(w.stats(&server).await, before, "a malformed postback must not change the stats");
}

#[tokio::test]
async fn a_json_value_that_is_not_an_object_is_a_400() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    for body in ["[]", "null", "42", "\"swarm_ref\"", "[{\"swarm_ref\": \"x\"}]"] {
        let r = post_raw(&server, "/api/v1/postback", &w.key, body).await;
        assert_error(&r, 400, "invalid_json");
        let r = post_raw(&server, "/api/v1/campaigns", &w.key, body).await;
        assert_error(&r, 400, "invalid_json");
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
    let r = post_raw(&server, "/api/v1/postback", &w.key, nested).await;
    assert_error(&r, 400, "invalid_json");
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
            let r = post_raw(&server, path, &w.key, body).await;
            let v = assert_error(&r, 400, "invalid_json");
            assert!(v["message"].as_str().unwrap().contains("empty"), "{path}: {}", r.text);
        }
    }
    let r = post_raw(&server, "/api/v1/admin/affiliates", ADMIN_KEY, "").await;
    assert_error(&r, 400, "invalid_json");
    let r = server
        .send(
            Method::PATCH,
            &format!("/api/v1/campaigns/{}", w.campaign_id),
            &[("authorization", format!("Bearer {}", w.key).as_str())],
            Vec::new(),
        )
        .await;
    assert_error(&r, 400, "invalid_json");
    assert_eq!(w.stats(&server).await, before);
}

// ------------------------------------------------------------ wrong types

#[tokio::test]
async fn payout_cents_as_a_string_is_a_400_naming_payout_cents() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    let r = create_campaign(&server, &key, fixed_campaign(), |c| {
        c.insert("payoutCents".into(), json!("500"));
    })
    .await;
    assert_400_naming(&r, "payoutCents");
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
        assert_invalid(&r, "externalId");
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
        assert_400_naming(&r, field);
    }
    let r = server
        .post("/api/v1/affiliate/conversions", Some(&w.key), json!({"clickId": "x", "properties": ["plan", "pro"]}))
        .await;
    assert_400_naming(&r, "properties");
    let r = create_campaign(&server, &w.key, rev_share_campaign(), |c| {
        c.insert("payoutPercentage".into(), json!("20"));
    })
    .await;
    assert_400_naming(&r, "payoutPercentage");
    let r = server.post("/api/v1/admin/advertisers", Some(ADMIN_KEY), json!({"name": 7})).await;
    assert_400_naming(&r, "name");
    assert_eq!(w.postback(&server, "wt-1", None).await.status, 201, "no rejected postback may have stored wt-1");
}

// -------------------------------------------------- routes and methods

#[tokio::test]
async fn an_unknown_route_is_a_404_json_no_route() {
    let server = TestServer::start().await;
    for path in ["/", "/nope", "/api/v1/nope", "/api/v2/campaigns", "/api/v1/campaigns/x/y/z", "/r", "/r/"] {
        let r = server.get(path, Some(ADMIN_KEY)).await;
        assert_error(&r, 404, "no_route");
    }
    let r = server.post("/api/v1/conversions", Some(ADMIN_KEY), json!({})).await;
    assert_error(&r, 404, "no_route");
}

#[tokio::test]
async fn a_wrong_method_is_a_405_with_an_allow_header() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let campaign = format!("/api/v1/campaigns/{}", w.campaign_id);
    let redirect = format!("/r/{}", w.code);
    let cases = [
        (Method::GET, "/api/v1/postback", "POST"),
        (Method::PUT, "/api/v1/affiliate/conversions", "POST"),
        (Method::DELETE, campaign.as_str(), "GET PATCH"),
        (Method::POST, redirect.as_str(), "GET HEAD"),
        (Method::GET, "/api/v1/admin/advertisers", "POST"),
        (Method::POST, "/healthz", "GET"),
    ];
    for (method, path, expect) in cases {
        let auth = format!("Bearer {}", w.key);
        let r = server.send(method.clone(), path, &[("authorization", auth.as_str())], Vec::new()).await;
        assert_error(&r, 405, "method_not_allowed");
        let allow = r.header("allow").unwrap_or_else(|| panic!("{method} {path}: no Allow header"));
        let allowed: Vec<&str> = allow.split(',').map(str::trim).collect();
        for m in expect.split(' ') {
            assert!(allowed.contains(&m), "{method} {path}: Allow {allow:?} lacks {m}");
        }
        assert!(!allowed.contains(&method.as_str()), "{method} {path}: Allow {allow:?} lists the refused method");
    }
    // The campaign was not deleted.
    assert_eq!(server.get(&campaign, Some(&w.key)).await.status, 200);
}

// ------------------------------------------------------------ body size

#[tokio::test]
async fn a_body_over_64_kib_is_a_413_before_anything_is_stored() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let before = w.stats(&server).await;
    let mut body = json!({"swarm_ref": w.code, "externalId": "big-1", "eventType": "PURCHASE",
        "metadata": {"note": "x".repeat(65 * 1024)}});
    let bytes = serde_json::to_vec(&body).unwrap();
    assert!(bytes.len() > 64 * 1024);
    let r = post_raw(&server, "/api/v1/postback", &w.key, bytes).await;
    let v = assert_error(&r, 413, "payload_too_large");
    assert!(v["message"].as_str().unwrap().contains("65536"), "the message should name the limit: {}", r.text);
    // One byte over the default limit, declared with Content-Length.
    let r = post_raw(&server, "/api/v1/campaigns", &w.key, vec![b' '; 64 * 1024 + 1]).await;
    assert_error(&r, 413, "payload_too_large");
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
    let r = post_raw(&server, "/api/v1/admin/advertisers", ADMIN_KEY, padded(1025)).await;
    let v = assert_error(&r, 413, "payload_too_large");
    assert!(v["message"].as_str().unwrap().contains("1024"), "the message should name the limit: {}", r.text);
    let r = post_raw(&server, "/api/v1/admin/advertisers", ADMIN_KEY, padded(1024)).await;
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
    let (status, text) = raw_http(&server, &req).await;
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
    let (status, text) = raw_http(&server, &req).await;
    assert_eq!(status, 201, "{text}");
}

// -------------------------------------------------------- authentication

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
        assert_error(&r, 401, "unauthorized");
    }
    let r = server.get(&format!("/api/v1/campaigns/{}", w.campaign_id), None).await;
    assert_error(&r, 401, "unauthorized");
    // An Authorization header that carries no key is the same as none.
    for auth in ["Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "sk_live_nothing"] {
        let r = server
            .send(Method::GET, &format!("/api/v1/campaigns/{}", w.campaign_id), &[("authorization", auth)], Vec::new())
            .await;
        assert_error(&r, 401, "unauthorized");
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
    assert_error(&r, 401, "unauthorized");
    let r = server.post("/api/v1/affiliate/conversions", Some(wrong), json!({"clickId": token})).await;
    assert_error(&r, 401, "unauthorized");
    let r = server.get(&format!("/api/v1/campaigns/{}", w.campaign_id), Some(wrong)).await;
    assert_error(&r, 401, "unauthorized");
    let r = server.post("/api/v1/campaigns", Some(wrong), fixed_campaign()).await;
    assert_error(&r, 401, "unauthorized");
    let r = server.post("/api/v1/admin/advertisers", Some("not-the-admin-key"), json!({"name": "Acme"})).await;
    assert_error(&r, 401, "unauthorized");
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
    assert_error(&r, 401, "unauthorized");
}

#[tokio::test]
async fn an_affiliate_key_on_the_conversions_endpoint_is_a_403() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let (_, affiliate_key) = new_affiliate(&server).await;
    let token = w.click_token(&server).await;
    let r = server.post("/api/v1/affiliate/conversions", Some(&affiliate_key), json!({"clickId": token})).await;
    let v = assert_error(&r, 403, "forbidden");
    assert!(v["message"].as_str().unwrap().contains("affiliate:write"), "{}", r.text);
    // Leniency is about tokens, not authentication: a bad token is still 403.
    let r = server.post("/api/v1/affiliate/conversions", Some(&affiliate_key), json!({"clickId": "garbage"})).await;
    assert_error(&r, 403, "forbidden");
    let r = server.post("/api/v1/affiliate/conversions", Some(&affiliate_key), json!({})).await;
    assert_error(&r, 403, "forbidden");
    // Nor may an affiliate fire postbacks or manage campaigns.
    let r = server
        .post(
            "/api/v1/postback",
            Some(&affiliate_key),
            json!({"swarm_ref": w.code, "externalId": "aff", "eventType": "PURCHASE"}),
        )
        .await;
    assert_error(&r, 403, "forbidden");
    let r = server.post("/api/v1/campaigns", Some(&affiliate_key), fixed_campaign()).await;
    assert_error(&r, 403, "forbidden");
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
    assert_error(&r, 403, "forbidden");
    // Nor may B confirm A's tracking with A's test code.
    let test_code = a.campaign["testTrackingCode"].as_str().unwrap();
    let r = server
        .post(
            "/api/v1/postback",
            Some(&b_key),
            json!({"swarm_ref": test_code, "externalId": "t", "eventType": "PURCHASE"}),
        )
        .await;
    assert_error(&r, 403, "forbidden");
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
    assert_error(&r, 403, "forbidden");
    assert_eq!(a.stats(&server).await["conversions"], before["conversions"]);
    let r = a.convert(&server, &token).await;
    assert_eq!(r.status, 201, "the token must not have been consumed by B: {}", r.text);
}

#[tokio::test]
async fn admin_endpoints_with_an_advertiser_key_are_a_401() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    let (_, affiliate_key) = new_affiliate(&server).await;
    for k in [key.as_str(), affiliate_key.as_str()] {
        for path in ["/api/v1/admin/advertisers", "/api/v1/admin/affiliates"] {
            let r = server.post(path, Some(k), json!({"name": "Sneaky"})).await;
            assert_error(&r, 401, "unauthorized");
            assert!(r.header("www-authenticate").is_some(), "a 401 should say how to authenticate");
        }
    }
}

// ------------------------------------------------------------- postbacks

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
        let v = assert_invalid(&r, "eventType");
        if !event.is_empty() {
            let m = v["message"].as_str().unwrap();
            for t in ["PURCHASE", "SIGNUP", "INSTALL", "LEAD", "SUBSCRIPTION", "REFUND"] {
                assert!(m.contains(t), "message does not list {t}: {m}");
            }
        }
    }
    let r = server.post("/api/v1/postback", Some(&w.key), json!({"swarm_ref": w.code, "externalId": "ev-1"})).await;
    assert_invalid(&r, "eventType");
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
        assert_invalid(&r, "externalId");
    }
    assert_eq!(w.stats(&server).await, before);
}

#[tokio::test]
async fn a_postback_with_an_overlong_external_id_is_a_400() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let r = w.postback(&server, &"x".repeat(257), None).await;
    let v = assert_invalid(&r, "externalId");
    assert!(v["message"].as_str().unwrap().contains("256"), "{}", r.text);
    assert_eq!(w.stats(&server).await["postbacks"]["recorded"], 0);
}

#[tokio::test]
async fn a_postback_without_a_swarm_ref_is_a_400() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let r = server.post("/api/v1/postback", Some(&w.key), json!({"externalId": "o-1", "eventType": "PURCHASE"})).await;
    assert_invalid(&r, "swarm_ref");
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
    let v = assert_error(&r, 404, "not_found");
    assert!(v["message"].as_str().unwrap().contains("swarm_ref"), "{}", r.text);
    assert_eq!(w.stats(&server).await, before);
}

#[tokio::test]
async fn a_rev_share_postback_without_revenue_cents_is_a_400_naming_revenue_cents() {
    let server = TestServer::start().await;
    let w = World::rev_share(&server, json!(20)).await;
    let before = w.stats(&server).await;
    let r = w.postback(&server, "rs-1", None).await;
    assert_invalid(&r, "revenueCents");
    let r = server
        .post(
            "/api/v1/postback",
            Some(&w.key),
            json!({"swarm_ref": w.code, "externalId": "rs-1", "eventType": "PURCHASE", "revenueCents": null}),
        )
        .await;
    assert_invalid(&r, "revenueCents");
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
    assert_invalid(&r, "revenueCents");
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
        let r = post_raw(&server, "/api/v1/postback", &w.key, body).await;
        assert_invalid(&r, "revenueCents");
    }
    assert_eq!(w.stats(&server).await, before);
    // A whole number written with a decimal point is whole cents.
    let body =
        format!(r#"{{"swarm_ref":"{}","externalId":"frac","eventType":"PURCHASE","revenueCents":9900.0}}"#, w.code);
    let r = post_raw(&server, "/api/v1/postback", &w.key, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["lead"]["payoutCents"], 1980);
}

// ----------------------------------------------- properties and metadata

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
    let v = assert_invalid(&r, "metadata");
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
    let v = assert_invalid(&r, "metadata");
    assert!(v["message"].as_str().unwrap().contains("1024"), "{}", r.text);
    let r = send(json!({ "k".repeat(65): "v" })).await;
    let v = assert_invalid(&r, "metadata");
    assert!(v["message"].as_str().unwrap().contains("64"), "{}", r.text);
    // A nested value counts by its JSON text.
    let r = send(json!({"items": vec!["abcdefghij"; 100]})).await;
    assert_invalid(&r, "metadata");
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
    assert_invalid(&r, "metadata");
    let shown = server.get(&format!("/api/v1/campaigns/{id}"), Some(&key)).await.json();
    assert_eq!(shown["trackingConfirmedAt"], Value::Null);
    let r = server.post(&format!("/api/v1/campaigns/{id}/activate"), Some(&key), json!({})).await;
    assert_error(&r, 409, "tracking_not_confirmed");
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
    let v = assert_invalid(&r, "properties");
    assert!(v["message"].as_str().unwrap().contains("50"), "{}", r.text);
    let r = convert(json!({"plan": "p".repeat(1025)})).await;
    let v = assert_invalid(&r, "properties");
    assert!(v["message"].as_str().unwrap().contains("1024"), "{}", r.text);
    let r = convert(json!({ "k".repeat(65): "pro" })).await;
    let v = assert_invalid(&r, "properties");
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
    assert_invalid(&r, "email");
    assert_eq!(w.convert(&server, &token).await.status, 201);
}

// ------------------------------------------------ campaign creation rules

#[tokio::test]
async fn a_campaign_without_a_landing_url_is_a_400_naming_it() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    let r = create_campaign(&server, &key, fixed_campaign(), |c| {
        c.remove("landingUrl");
    })
    .await;
    assert_400_naming(&r, "landingUrl");
    let r = create_campaign(&server, &key, fixed_campaign(), |c| {
        c.insert("landingUrl".into(), json!(""));
    })
    .await;
    assert_invalid(&r, "landingUrl");
}

#[tokio::test]
async fn a_campaign_with_a_non_http_landing_url_is_a_400() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    for url in [
        "ftp://shop.example.com/",
        "javascript:alert(1)",
        "shop.example.com/landing",
        "//shop.example.com/",
        "https://",
        "https://shop.example.com/a b",
        "https://shop.example.com/\r\nSet-Cookie: x=1",
    ] {
        let r = create_campaign(&server, &key, fixed_campaign(), |c| {
            c.insert("landingUrl".into(), json!(url));
        })
        .await;
        assert_invalid(&r, "landingUrl");
    }
}

#[tokio::test]
async fn a_fixed_campaign_without_payout_cents_is_a_400() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    let r = create_campaign(&server, &key, fixed_campaign(), |c| {
        c.remove("payoutCents");
    })
    .await;
    assert_invalid(&r, "payoutCents");
    let r = create_campaign(&server, &key, fixed_campaign(), |c| {
        c.insert("payoutCents".into(), json!(0));
    })
    .await;
    assert_invalid(&r, "payoutCents");
    let r = create_campaign(&server, &key, fixed_campaign(), |c| {
        c.insert("payoutCents".into(), json!(-5));
    })
    .await;
    assert_400_naming(&r, "payoutCents");
}

#[tokio::test]
async fn a_rev_share_campaign_without_a_payout_percentage_is_a_400() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    let r = create_campaign(&server, &key, rev_share_campaign(), |c| {
        c.remove("payoutPercentage");
    })
    .await;
    assert_invalid(&r, "payoutPercentage");
}

#[tokio::test]
async fn a_payout_percentage_of_0_or_101_or_with_three_decimals_is_a_400() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    for bad in ["0", "101", "12.345", "-5", "100.01"] {
        let mut body = rev_share_campaign();
        body["payoutPercentage"] = serde_json::from_str(bad).unwrap();
        let r = server.post("/api/v1/campaigns", Some(&key), body).await;
        assert_invalid(&r, "payoutPercentage");
    }
    // The bounds themselves are fine.
    for good in ["100", "0.01"] {
        let mut body = rev_share_campaign();
        body["payoutPercentage"] = serde_json::from_str(good).unwrap();
        let r = server.post("/api/v1/campaigns", Some(&key), body).await;
        assert_eq!(r.status, 201, "{good}: {}", r.text);
    }
}

#[tokio::test]
async fn mixing_the_payout_settings_of_the_two_models_is_a_400() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    let r = create_campaign(&server, &key, fixed_campaign(), |c| {
        c.insert("payoutPercentage".into(), json!(20));
    })
    .await;
    assert_invalid(&r, "payoutPercentage");
    let r = create_campaign(&server, &key, rev_share_campaign(), |c| {
        c.insert("payoutCents".into(), json!(500));
    })
    .await;
    assert_invalid(&r, "payoutCents");
}

#[tokio::test]
async fn an_unknown_compensation_model_is_a_400() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    for model in [json!("CPA"), json!("fixed"), json!(""), json!(1)] {
        let r = create_campaign(&server, &key, fixed_campaign(), |c| {
            c.insert("compensationModel".into(), model.clone());
        })
        .await;
        assert_400_naming(&r, "compensationModel");
    }
    let r = create_campaign(&server, &key, fixed_campaign(), |c| {
        c.remove("compensationModel");
    })
    .await;
    assert_400_naming(&r, "compensationModel");
}

#[tokio::test]
async fn an_unknown_field_in_a_new_campaign_is_a_400_naming_it() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    let r = create_campaign(&server, &key, fixed_campaign(), |c| {
        c.insert("payout_cents".into(), json!(500));
    })
    .await;
    assert_400_naming(&r, "payout_cents");
    let r = create_campaign(&server, &key, fixed_campaign(), |c| {
        c.insert("status".into(), json!("active"));
    })
    .await;
    assert_400_naming(&r, "status");
}

#[tokio::test]
async fn other_campaign_settings_out_of_range_are_400s_naming_them() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    let cases: [(&str, Value); 6] = [
        ("name", json!("")),
        ("attributionWindowDays", json!(0)),
        ("holdDays", json!(100_000)),
        ("promoCode", json!("has space")),
        ("allowedOrigins", json!(["https://shop.example.com/cart"])),
        ("fieldMapping", json!({"plan": ""})),
    ];
    for (field, value) in cases {
        let r = create_campaign(&server, &key, fixed_campaign(), |c| {
            c.insert(field.into(), value.clone());
        })
        .await;
        assert_invalid(&r, field);
    }
}

#[tokio::test]
async fn activating_before_a_test_postback_is_a_409_tracking_not_confirmed() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    let created = server.post("/api/v1/campaigns", Some(&key), fixed_campaign()).await.json();
    let id = created["id"].as_str().unwrap();
    let test_code = created["testTrackingCode"].as_str().unwrap();
    let r = server.post(&format!("/api/v1/campaigns/{id}/activate"), Some(&key), json!({})).await;
    let v = assert_error(&r, 409, "tracking_not_confirmed");
    assert!(
        v["message"].as_str().unwrap().contains(test_code),
        "the message should say which code to fire: {}",
        r.text
    );
    let shown = server.get(&format!("/api/v1/campaigns/{id}"), Some(&key)).await.json();
    assert_eq!(shown["status"], "draft", "a refused activation changes nothing");
}

// ------------------------------------------------------- campaign PATCH

#[tokio::test]
async fn a_rejected_campaign_patch_leaves_the_campaign_unchanged() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let path = format!("/api/v1/campaigns/{}", w.campaign_id);
    let before = get_campaign(&server, &w).await;
    let patches = [
        // The valid landing URL comes first: it must not be half-applied.
        (json!({"landingUrl": "https://new.example.com/", "payoutPercentage": 10}), "payoutPercentage"),
        (json!({"promoCode": "NEW10", "landingUrl": "ftp://new.example.com/"}), "landingUrl"),
        (json!({"landingUrl": "https://new.example.com/", "promoCode": 5}), "promoCode"),
        (json!({"payoutCents": 0}), "payoutCents"),
        (json!({"landingUrl": "https://new.example.com/", "compensationModel": "REV_SHARE"}), "compensationModel"),
        (json!({"landingUrl": "https://new.example.com/", "status": "active"}), "status"),
    ];
    for (patch, field) in patches {
        let r = server.patch(&path, Some(&w.key), patch).await;
        assert_400_naming(&r, field);
    }
    assert_eq!(get_campaign(&server, &w).await, before, "a rejected PATCH must not change the campaign");
    let r = server.click(&w.code).await;
    assert!(
        r.header("location").unwrap().starts_with("https://shop.example.com/landing?utm=x&"),
        "{:?}",
        r.header("location")
    );
}

#[tokio::test]
async fn a_malformed_campaign_id_is_a_404_json() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    for id in ["garbage", "cmp_zz", "cmp_0000000000000000", "adv_0000000000000001"] {
        let r = server.get(&format!("/api/v1/campaigns/{id}"), Some(&key)).await;
        assert_error(&r, 404, "not_found");
        let r = server.patch(&format!("/api/v1/campaigns/{id}"), Some(&key), json!({"promoCode": "X"})).await;
        assert_error(&r, 404, "not_found");
        let r = server.post(&format!("/api/v1/campaigns/{id}/activate"), Some(&key), json!({})).await;
        assert_error(&r, 404, "not_found");
    }
}

#[tokio::test]
async fn approving_an_unknown_or_malformed_affiliate_is_a_4xx() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let path = format!("/api/v1/campaigns/{}/affiliates", w.campaign_id);
    let r = server.post(&path, Some(&w.key), json!({"affiliateId": "aff_00000000000000ff"})).await;
    assert_error(&r, 404, "not_found");
    let r = server.post(&path, Some(&w.key), json!({"affiliateId": "nobody"})).await;
    assert_400_naming(&r, "affiliateId");
    let r = server.post(&path, Some(&w.key), json!({})).await;
    assert_400_naming(&r, "affiliateId");
}

// ------------------------------------------------------------- redirects

#[tokio::test]
async fn a_click_on_an_unknown_code_is_a_404_html_page() {
    let server = TestServer::start().await;
    for code in ["NOPE1234", "x", "%3Cscript%3E"] {
        let r = server.click(code).await;
        assert_eq!(r.status, 404, "{}", r.text);
        let ct = r.header("content-type").unwrap_or("");
        assert!(ct.starts_with("text/html"), "content-type {ct:?}");
        assert!(r.text.to_lowercase().contains("<html"), "{}", r.text);
        assert!(r.header("location").is_none());
        assert!(!r.text.contains("<script"), "the page must not echo the code: {}", r.text);
    }
}

#[tokio::test]
async fn a_click_on_a_draft_campaigns_affiliate_code_is_a_404() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    let (affiliate, _) = new_affiliate(&server).await;
    let created = server.post("/api/v1/campaigns", Some(&key), fixed_campaign()).await.json();
    let id = created["id"].as_str().unwrap();
    let approval =
        server.post(&format!("/api/v1/campaigns/{id}/affiliates"), Some(&key), json!({"affiliateId": affiliate})).await;
    assert_eq!(approval.status, 201, "{}", approval.text);
    let code = approval.json()["trackingCode"].as_str().unwrap().to_string();
    let r = server.click(&code).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(r.header("content-type").unwrap_or("").starts_with("text/html"));
    assert!(r.header("location").is_none());
    // The test code is never a click link either.
    let r = server.click(created["testTrackingCode"].as_str().unwrap()).await;
    assert_eq!(r.status, 404, "{}", r.text);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let shown = server.get(&format!("/api/v1/campaigns/{id}"), Some(&key)).await.json();
    assert_eq!(shown["stats"]["clicks"], 0, "a refused click is not counted");
}

// ----------------------------------------------- lenient conversion answers

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
        let r = post_raw(&server, "/api/v1/affiliate/conversions", &w.key, body).await;
        assert_error(&r, 400, "invalid_json");
    }
    let r = server.post("/api/v1/affiliate/conversions", Some(&w.key), json!({"clickId": {"id": "x"}})).await;
    assert_400_naming(&r, "clickId");
}
