//! Unknown routes and wrong methods.

use super::common::*;
use hyper::Method;
use serde_json::json;

#[tokio::test]
async fn an_unknown_route_is_a_404_json_no_route() {
    let server = TestServer::start().await;
    for path in ["/", "/nope", "/api/v1/nope", "/api/v2/campaigns", "/api/v1/campaigns/x/y/z", "/r", "/r/"] {
        let r = server.get(path, Some(ADMIN_KEY)).await;
        expect_error(&r, 404, "no_route");
    }
    let r = server.post("/api/v1/conversion", Some(ADMIN_KEY), json!({})).await;
    expect_error(&r, 404, "no_route");
    // The review queue is read-only: a POST there is the wrong method.
    let r = server.post("/api/v1/conversions", Some(ADMIN_KEY), json!({})).await;
    expect_error(&r, 405, "method_not_allowed");
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
        expect_error(&r, 405, "method_not_allowed");
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
