//! Key lifecycle over HTTP: a tenant lists, adds and revokes its own keys and
//! rotates publishable ones; an operator disables and enables tenants and
//! issues a key to one that lost theirs.

mod common;

use common::*;
use hyper::Method;
use serde_json::{json, Value};

async fn keys_of(server: &TestServer, key: &str) -> Vec<Value> {
    let r = server.get("/api/v1/keys", Some(key)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["keys"].as_array().unwrap().clone()
}

async fn delete(server: &TestServer, key: &str, id: &str) -> Reply {
    let auth = format!("Bearer {key}");
    server.send(Method::DELETE, &format!("/api/v1/keys/{id}"), &[("authorization", auth.as_str())], vec![]).await
}

async fn create_key(server: &TestServer, key: &str) -> Value {
    let r = server.post("/api/v1/keys", Some(key), json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

/// A request only an advertiser's campaigns key may make.
async fn can_manage_campaigns(server: &TestServer, w: &World, key: &str) -> u16 {
    server.get(&format!("/api/v1/campaigns/{}", w.campaign_id), Some(key)).await.status.as_u16()
}

#[tokio::test]
async fn a_tenant_lists_its_keys_without_ever_seeing_a_secret() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let keys = keys_of(&server, &w.key).await;
    let secret: Vec<&Value> = keys.iter().filter(|k| k["kind"] == "secret").collect();
    assert_eq!(secret.len(), 1, "{keys:?}");
    assert!(w.key.starts_with(secret[0]["prefix"].as_str().unwrap()));
    assert_eq!(secret[0]["prefix"].as_str().unwrap().len(), 12);
    assert_eq!(secret[0]["scopes"], json!(["campaigns", "postbacks", "affiliate:write"]));
    assert!(secret[0]["createdAt"].as_u64().is_some());
    let text = server.get("/api/v1/keys", Some(&w.key)).await.text;
    assert!(!text.contains(&w.key), "the secret key itself is never shown again");
    let public: Vec<&Value> = keys.iter().filter(|k| k["kind"] == "publishable").collect();
    assert_eq!(public.len(), 2, "the organisation's and the campaign's: {keys:?}");
    assert!(public.iter().any(|k| k["publishableKey"] == w.org_publishable_key.as_str() && k["current"] == true));
    assert!(public.iter().any(|k| k["campaignId"] == w.campaign_id.as_str()));
    let affiliate = keys_of(&server, &w.affiliate_key).await;
    assert_eq!(affiliate.len(), 1);
    assert_eq!(affiliate[0]["scopes"], json!(["affiliate"]));
}

#[tokio::test]
async fn a_new_key_works_at_once_and_is_listed_with_its_last_use() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let new = create_key(&server, &w.key).await;
    let key = new["apiKey"].as_str().unwrap();
    assert!(key.starts_with("sk_live_") && key.starts_with(new["prefix"].as_str().unwrap()));
    assert_eq!(new["scopes"], json!(["campaigns", "postbacks", "affiliate:write"]), "the caller's own scopes");
    assert_eq!(can_manage_campaigns(&server, &w, key).await, 200);
    // Written in the background, once a minute at most.
    let mine = server
        .until("the use is recorded", || async {
            keys_of(&server, &w.key).await.into_iter().find(|k| k["id"] == new["id"] && k["lastUsedAt"].is_u64())
        })
        .await;
    assert!(mine["lastUsedAt"].as_u64().unwrap() >= mine["createdAt"].as_u64().unwrap());
}

#[tokio::test]
async fn a_revoked_key_is_refused_and_the_last_secret_key_cannot_be_revoked() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let first = keys_of(&server, &w.key).await.into_iter().find(|k| k["kind"] == "secret").unwrap();
    let r = delete(&server, &w.key, first["id"].as_str().unwrap()).await;
    expect_error(&r, 409, "last_key");
    let second = create_key(&server, &w.key).await;
    let second_key = second["apiKey"].as_str().unwrap().to_string();
    let r = delete(&server, &second_key, first["id"].as_str().unwrap()).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let refused = server.get(&format!("/api/v1/campaigns/{}", w.campaign_id), Some(&w.key)).await;
    let body = expect_error(&refused, 401, "unauthorized");
    assert!(body["message"].as_str().unwrap().contains("revoked"), "{body}");
    assert_eq!(can_manage_campaigns(&server, &w, &second_key).await, 200);
    expect_error(&delete(&server, &second_key, first["id"].as_str().unwrap()).await, 404, "not_found");
    expect_error(&delete(&server, &second_key, "key_zz").await, 404, "not_found");
    // Another tenant's key id is not found, whoever asks.
    let affiliate_key_id = keys_of(&server, &w.affiliate_key).await[0]["id"].as_str().unwrap().to_string();
    expect_error(&delete(&server, &second_key, &affiliate_key_id).await, 404, "not_found");
    assert_eq!(keys_of(&server, &w.affiliate_key).await.len(), 1);
}

#[tokio::test]
async fn a_tenant_holds_at_most_the_configured_number_of_secret_keys() {
    let server = TestServer::start_with(&[("CLICKLEDGER_AUTH_MAX_SECRET_KEYS", "2")]).await;
    let w = World::fixed(&server, 500).await;
    create_key(&server, &w.affiliate_key).await;
    let r = server.post("/api/v1/keys", Some(&w.affiliate_key), json!({})).await;
    expect_error(&r, 409, "too_many_keys");
}

#[tokio::test]
async fn a_rotated_publishable_key_replaces_the_current_one_and_the_old_one_works_until_deleted() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let old = keys_of(&server, &w.key)
        .await
        .into_iter()
        .find(|k| k["publishableKey"] == w.org_publishable_key.as_str())
        .unwrap();
    let old_id = old["id"].as_str().unwrap();
    expect_error(&delete(&server, &w.key, old_id).await, 409, "key_in_use");
    let r = server.post(&format!("/api/v1/keys/{old_id}/rotate"), Some(&w.key), json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let new = r.json();
    assert_eq!(new["replaces"], old_id);
    let new_key = new["publishableKey"].as_str().unwrap().to_string();
    assert!(new_key.starts_with("pk_aff_org_") && new_key != w.org_publishable_key);
    let listed = keys_of(&server, &w.key).await;
    assert!(listed.iter().any(|k| k["publishableKey"] == new_key.as_str() && k["current"] == true));
    assert!(listed.iter().any(|k| k["id"] == old_id && k["current"] == false));
    let convert = |key: String| {
        let server = &server;
        async move {
            let body = json!({"clickId": "x", "publishableKey": key}).to_string().into_bytes();
            server.send(Method::POST, "/api/v1/affiliate/conversions", &[("content-type", "text/plain")], body).await
        }
    };
    assert_eq!(convert(w.org_publishable_key.clone()).await.status, 200, "the old key still works");
    assert_eq!(convert(new_key.clone()).await.status, 200);
    assert_eq!(delete(&server, &w.key, old_id).await.status, 204);
    expect_error(&convert(w.org_publishable_key.clone()).await, 401, "unauthorized");
    assert_eq!(convert(new_key).await.status, 200);
    let secret_id = listed.iter().find(|k| k["kind"] == "secret").unwrap()["id"].as_str().unwrap().to_string();
    let r = server.post(&format!("/api/v1/keys/{secret_id}/rotate"), Some(&w.key), json!({})).await;
    expect_error(&r, 409, "not_publishable");
}

#[tokio::test]
async fn a_disabled_advertiser_is_refused_everywhere_until_enabled() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let path = format!("/api/v1/admin/advertisers/{}/disable", w.advertiser_id);
    let r = server.post(&path, Some(ADMIN_KEY), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["disabled"], true);
    let refused = server.get(&format!("/api/v1/campaigns/{}", w.campaign_id), Some(&w.key)).await;
    expect_error(&refused, 403, "account_disabled");
    expect_error(&w.postback(&server, "o-1", None).await, 403, "account_disabled");
    assert_eq!(server.click(&w.code).await.status, 404, "its campaigns' links are dead");
    let path = format!("/api/v1/admin/advertisers/{}/enable", w.advertiser_id);
    assert_eq!(server.post(&path, Some(ADMIN_KEY), json!({})).await.status, 200);
    assert_eq!(w.postback(&server, "o-1", None).await.status, 201);
    assert_eq!(server.click(&w.code).await.status, 302);
}

#[tokio::test]
async fn a_disabled_affiliates_links_stop_redirecting_and_its_keys_are_refused() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let path = format!("/api/v1/admin/affiliates/{}/disable", w.affiliate_id);
    assert_eq!(server.post(&path, Some(ADMIN_KEY), json!({})).await.status, 200);
    let page = server.click(&w.code).await;
    assert_eq!(page.status, 404);
    assert!(page.header("content-type").unwrap().starts_with("text/html"), "visitors get the 404 page");
    expect_error(&server.get("/api/v1/wallet", Some(&w.affiliate_key)).await, 403, "account_disabled");
    let path = format!("/api/v1/admin/affiliates/{}/enable", w.affiliate_id);
    assert_eq!(server.post(&path, Some(ADMIN_KEY), json!({})).await.status, 200);
    assert_eq!(server.click(&w.code).await.status, 302);
    assert_eq!(server.get("/api/v1/wallet", Some(&w.affiliate_key)).await.status, 200);
}

#[tokio::test]
async fn an_operator_issues_a_new_key_to_a_tenant_that_lost_theirs() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let path = format!("/api/v1/admin/advertisers/{}/keys", w.advertiser_id);
    let r = server.post(&path, Some(ADMIN_KEY), json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let key = r.json()["apiKey"].as_str().unwrap().to_string();
    assert_eq!(can_manage_campaigns(&server, &w, &key).await, 200);
    let path = format!("/api/v1/admin/affiliates/{}/keys", w.affiliate_id);
    let key = server.post(&path, Some(ADMIN_KEY), json!({})).await.json()["apiKey"].as_str().unwrap().to_string();
    assert_eq!(server.get("/api/v1/wallet", Some(&key)).await.status, 200);
    let unknown = server.post("/api/v1/admin/affiliates/aff_0000000000000001/keys", Some(ADMIN_KEY), json!({})).await;
    expect_error(&unknown, 404, "not_found");
    let mismatched = format!("/api/v1/admin/advertisers/{}/keys", w.affiliate_id);
    expect_error(&server.post(&mismatched, Some(ADMIN_KEY), json!({})).await, 404, "not_found");
    let not_admin =
        server.post(&format!("/api/v1/admin/affiliates/{}/keys", w.affiliate_id), Some(&w.key), json!({})).await;
    expect_error(&not_admin, 401, "unauthorized");
}

#[tokio::test]
async fn publishable_keys_cannot_manage_keys() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    expect_error(&server.get("/api/v1/keys", Some(&w.org_publishable_key)).await, 403, "forbidden");
    expect_error(&server.post("/api/v1/keys", Some(&w.org_publishable_key), json!({})).await, 403, "forbidden");
}
