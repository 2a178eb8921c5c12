//! The server side of the browser path, over plain HTTP: publishable keys,
//! the campaign guard, the origin allowlist, CORS and the abuse limit. (The
//! snippet itself is exercised in a real browser in `browser.rs`.)

mod common;

use common::*;
use hyper::Method;
use serde_json::{json, Value};

const SHOP: &str = "https://shop.example.com";

async fn browser_world(server: &TestServer, allowed: Value) -> World {
    World::with_campaign(
        server,
        json!({
            "name": "Browser", "landingUrl": "https://shop.example.com/", "compensationModel": "FIXED",
            "payoutCents": 100, "allowedOrigins": allowed,
        }),
    )
    .await
}

/// What the snippet sends: text/plain JSON with the key in the body.
async fn from_page(server: &TestServer, origin: Option<&str>, body: Value) -> Reply {
    let mut headers = vec![("content-type", "text/plain;charset=UTF-8")];
    if let Some(o) = origin {
        headers.push(("origin", o));
    }
    server.send(Method::POST, "/api/v1/affiliate/conversions", &headers, body.to_string().into_bytes()).await
}

fn ignored(reason: &str) -> Value {
    json!({"status": "ignored", "reason": reason})
}

#[tokio::test]
async fn the_organisation_key_records_a_conversion_from_an_allowed_origin_with_cors() {
    let server = TestServer::start().await;
    let world = browser_world(&server, json!([SHOP])).await;
    let token = world.click_token(&server).await;
    let body = json!({"clickId": token, "email": "jane@example.com", "publishableKey": world.org_publishable_key});
    let r = from_page(&server, Some(SHOP), body.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("access-control-allow-origin"), Some(SHOP));
    assert_eq!(r.header("vary"), Some("Origin"));
    assert!(r.header("access-control-allow-credentials").is_none());
    let again = from_page(&server, Some(SHOP), body).await;
    assert_eq!(again.json()["status"], "duplicate");
}

#[tokio::test]
async fn an_origin_outside_the_allowlist_is_ignored_without_cors() {
    let server = TestServer::start().await;
    let world = browser_world(&server, json!([SHOP])).await;
    let token = world.click_token(&server).await;
    let body = json!({"clickId": token, "publishableKey": world.org_publishable_key});
    let r = from_page(&server, Some("https://evil.example.net"), body.clone()).await;
    assert_eq!((r.status.as_u16(), r.json()), (200, ignored("origin_not_allowed")));
    assert!(r.header("access-control-allow-origin").is_none());
    let no_origin = from_page(&server, None, body.clone()).await;
    assert_eq!(no_origin.json(), ignored("origin_not_allowed"), "a call from no page at all is not an allowed origin");
    assert_eq!(from_page(&server, Some(SHOP), body).await.status, 201, "nothing was used up");
}

#[tokio::test]
async fn an_empty_allowlist_accepts_any_origin() {
    let server = TestServer::start().await;
    let world = browser_world(&server, json!([])).await;
    let token = world.click_token(&server).await;
    let r = from_page(
        &server,
        Some("https://anywhere.example"),
        json!({"clickId": token, "publishableKey": world.org_publishable_key}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn a_campaign_key_only_guards_its_own_campaign() {
    let server = TestServer::start().await;
    let world = browser_world(&server, json!([])).await;
    let other = server
        .post("/api/v1/campaigns", Some(&world.key), json!({
            "name": "Other", "landingUrl": "https://shop.example.com/other", "compensationModel": "FIXED", "payoutCents": 1,
        }))
        .await
        .json();
    let token = world.click_token(&server).await;
    let wrong = json!({"clickId": token, "publishableKey": other["publishableKey"]});
    assert_eq!(from_page(&server, Some(SHOP), wrong).await.json(), ignored("campaign_mismatch"));
    let right = json!({"clickId": token, "publishableKey": world.campaign["publishableKey"]});
    let r = from_page(&server, Some(SHOP), right).await;
    assert_eq!(r.status, 201, "{}", r.text);
    server
        .until("the mismatch is counted", || async {
            (world.stats(&server).await["conversions"]["ignored"]["campaign_mismatch"] == 1).then_some(())
        })
        .await;
}

#[tokio::test]
async fn another_organisations_key_is_a_mismatch_not_a_recording() {
    let server = TestServer::start().await;
    let ours = browser_world(&server, json!([])).await;
    let theirs = browser_world(&server, json!([])).await;
    let token = ours.click_token(&server).await;
    let r =
        from_page(&server, Some(SHOP), json!({"clickId": token, "publishableKey": theirs.org_publishable_key})).await;
    assert_eq!(r.json(), ignored("campaign_mismatch"));
    assert_eq!(ours.convert(&server, &token).await.status, 201, "the click is still unused");
}

#[tokio::test]
async fn a_browser_conversion_with_an_odd_email_still_attributes() {
    let server = TestServer::start().await;
    let world = browser_world(&server, json!([])).await;
    let token = world.click_token(&server).await;
    let r = from_page(
        &server,
        Some(SHOP),
        json!({"clickId": token, "email": "not an email", "publishableKey": world.org_publishable_key}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn a_preflight_is_answered_for_json_integrations() {
    let server = TestServer::start().await;
    let headers = [
        ("origin", SHOP),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "content-type, x-api-key"),
    ];
    let r = server.send(Method::OPTIONS, "/api/v1/affiliate/conversions", &headers, vec![]).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some(SHOP));
    assert!(r.header("access-control-allow-methods").unwrap().contains("POST"));
    assert!(r.header("access-control-allow-headers").unwrap().contains("content-type"));
    assert!(r.header("access-control-max-age").is_some());
}

#[tokio::test]
async fn too_many_browser_calls_from_one_client_get_429_before_the_store() {
    let server = TestServer::start_with(&[
        ("CLICKLEDGER_HTTP_BROWSER_BURST", "3"),
        ("CLICKLEDGER_HTTP_BROWSER_RATE_PER_SEC", "0.01"),
    ])
    .await;
    let world = browser_world(&server, json!([])).await;
    let tokens = [
        world.click_token(&server).await,
        world.click_token(&server).await,
        world.click_token(&server).await,
        world.click_token(&server).await,
    ];
    for token in &tokens[..3] {
        let r = from_page(&server, Some(SHOP), json!({"clickId": token, "publishableKey": world.org_publishable_key}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let over =
        from_page(&server, Some(SHOP), json!({"clickId": tokens[3], "publishableKey": world.org_publishable_key}))
            .await;
    assert_eq!(over.status, 429, "{}", over.text);
    assert_eq!(over.json()["error"], "rate_limited");
    assert!(over.header("retry-after").is_some());
    assert_eq!(
        world.convert(&server, &tokens[3]).await.status,
        201,
        "the limited call stored nothing; secret keys are not limited"
    );
}

#[tokio::test]
async fn publishable_keys_open_nothing_but_browser_conversions() {
    let server = TestServer::start().await;
    let world = browser_world(&server, json!([])).await;
    let pk = world.org_publishable_key.as_str();
    let postback = server
        .post("/api/v1/postback", Some(pk), json!({"swarm_ref": world.code, "externalId": "x", "eventType": "LEAD"}))
        .await;
    assert_eq!(postback.status, 403, "{}", postback.text);
    let campaign = server.get(&format!("/api/v1/campaigns/{}", world.campaign_id), Some(pk)).await;
    assert_eq!(campaign.status, 403);
    let secret_in_body = from_page(&server, Some(SHOP), json!({"clickId": "x", "publishableKey": world.key})).await;
    assert_eq!(secret_in_body.status, 401, "secret keys are refused in bodies: {}", secret_in_body.text);
    let unknown = from_page(&server, Some(SHOP), json!({"clickId": "x", "publishableKey": "pk_aff_org_nope"})).await;
    assert_eq!(unknown.status, 401);
}

#[tokio::test]
async fn made_up_keys_from_one_client_are_limited_before_any_lookup() {
    let server = TestServer::start_with(&[
        ("CLICKLEDGER_HTTP_BROWSER_BURST", "3"),
        ("CLICKLEDGER_HTTP_BROWSER_RATE_PER_SEC", "0.01"),
    ])
    .await;
    let world = browser_world(&server, json!([])).await;
    let real = |token: String| json!({"clickId": token, "publishableKey": world.org_publishable_key});
    let first = from_page(&server, Some(SHOP), real(world.click_token(&server).await)).await;
    assert_eq!(first.status, 201, "{}", first.text);
    for i in 0..2 {
        let r =
            from_page(&server, Some(SHOP), json!({"clickId": "x", "publishableKey": format!("pk_aff_fake{i}")})).await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    let r = from_page(&server, Some(SHOP), json!({"clickId": "x", "publishableKey": "pk_aff_fake9"})).await;
    assert_eq!(r.status, 429, "made-up keys stop costing lookups: {}", r.text);
    let known = from_page(&server, Some(SHOP), real(world.click_token(&server).await)).await;
    assert_eq!(known.status, 201, "a key this node already knows is not held up: {}", known.text);
}
