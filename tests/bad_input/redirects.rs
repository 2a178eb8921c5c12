//! Links that do not redirect.

use super::common::*;
use super::support::*;
use serde_json::json;
use std::time::Duration;

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
    let (affiliate, _) = new_affiliate(&server, "Partner").await;
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
