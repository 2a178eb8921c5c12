//! Listings and lifecycle (issue 16): an advertiser lists its campaigns and
//! a campaign's affiliates, an affiliate lists the campaigns it is approved
//! on, newest first and paged with an opaque cursor; an advertiser
//! un-approves an affiliate and archives a campaign.

mod common;

use common::*;
use serde_json::{json, Value};

async fn new_campaign(server: &TestServer, key: &str, name: &str) -> String {
    let body = json!({"name": name, "landingUrl": "https://shop.example.com/", "compensationModel": "FIXED", "payoutCents": 500});
    let r = server.post("/api/v1/campaigns", Some(key), body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()["id"].as_str().unwrap().to_string()
}

/// Every item of a listing, following `nextCursor` page by page.
async fn walk(server: &TestServer, path: &str, key: &str, field: &str, limit: usize) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let (mut items, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let r = server.get(&url, Some(key)).await;
        assert_eq!(r.status, 200, "{url}: {}", r.text);
        let page = r.json();
        let got = page[field].as_array().unwrap().clone();
        assert!(got.len() <= limit, "a page holds at most limit items: {}", r.text);
        items.extend(got);
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return items,
        }
    }
}

fn names(items: &[Value]) -> Vec<&str> {
    items.iter().map(|c| c["name"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn an_advertiser_lists_its_own_campaigns_newest_first_across_pages() {
    let server = TestServer::start_money().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    let (_, other) = new_advertiser(&server, "Rival").await;
    new_campaign(&server, &other, "Not yours").await;
    for n in 1..=5 {
        new_campaign(&server, &key, &format!("Campaign {n}")).await;
        server.advance_clock(1).await;
    }
    let listed = walk(&server, "/api/v1/campaigns", &key, "campaigns", 2).await;
    assert_eq!(names(&listed), ["Campaign 5", "Campaign 4", "Campaign 3", "Campaign 2", "Campaign 1"]);
    assert!(listed.iter().all(|c| c["status"] == "draft" && c["publishableKey"].is_string()));
    let drafts = server.get("/api/v1/campaigns?status=active", Some(&key)).await;
    assert_eq!(drafts.json()["campaigns"], json!([]), "{}", drafts.text);
}

#[tokio::test]
async fn listing_queries_that_make_no_sense_are_refused_by_name() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    expect_validation(&server.get("/api/v1/campaigns?status=gone", Some(&w.key)).await, "status");
    expect_validation(&server.get("/api/v1/campaigns?cursor=bm9wZQ", Some(&w.key)).await, "cursor");
    expect_validation(&server.get("/api/v1/campaigns?limit=0", Some(&w.key)).await, "limit");
    let affiliates = format!("/api/v1/campaigns/{}/affiliates", w.campaign_id);
    let first = server.get(&format!("{affiliates}?limit=1"), Some(&w.key)).await;
    assert_eq!(first.status, 200, "{}", first.text);
    // A cursor of one listing is no cursor of another.
    w.another_affiliate(&server).await;
    let cursor = server.get(&format!("{affiliates}?limit=1"), Some(&w.key)).await.json()["nextCursor"].clone();
    let misused = server.get(&format!("/api/v1/campaigns?cursor={}", cursor.as_str().unwrap()), Some(&w.key)).await;
    expect_validation(&misused, "cursor");
    expect_error(&server.get("/api/v1/campaigns", Some(&w.affiliate_key)).await, 403, "forbidden");
    expect_error(&server.get("/api/v1/affiliate/campaigns", Some(&w.key)).await, 403, "forbidden");
}

#[tokio::test]
async fn a_campaigns_affiliates_come_with_their_links_and_only_its_advertiser_sees_them() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let (second_id, _, second_code) = w.another_affiliate(&server).await;
    let path = format!("/api/v1/campaigns/{}/affiliates", w.campaign_id);
    let listed = walk(&server, &path, &w.key, "affiliates", 1).await;
    let ids: Vec<&str> = listed.iter().map(|a| a["affiliateId"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{listed:?}");
    assert!(ids.contains(&w.affiliate_id.as_str()) && ids.contains(&second_id.as_str()));
    let second = listed.iter().find(|a| a["affiliateId"] == second_id.as_str()).unwrap();
    assert_eq!(second["trackingCode"], second_code.as_str());
    assert_eq!(second["name"], "Second blogger");
    assert!(second["affiliateLink"].as_str().unwrap().ends_with(&format!("/r/{second_code}")));
    assert!(second["trackingUrl"].as_str().unwrap().contains(&format!("swarm_ref={second_code}")));
    let (_, rival) = new_advertiser(&server, "Rival").await;
    expect_error(&server.get(&path, Some(&rival)).await, 404, "not_found");
}

#[tokio::test]
async fn an_affiliate_lists_the_campaigns_it_is_approved_on_with_its_links() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let r = server.get("/api/v1/affiliate/campaigns", Some(&w.affiliate_key)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let page = r.json();
    let listed = page["campaigns"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{page}");
    let c = &listed[0];
    assert_eq!(c["campaignId"], w.campaign_id.as_str());
    assert_eq!(c["trackingCode"], w.code.as_str());
    assert_eq!(
        (c["name"].as_str(), c["status"].as_str(), c["payoutCents"].as_u64()),
        (Some("Spring sale"), Some("active"), Some(500))
    );
    assert!(c["affiliateLink"].as_str().unwrap().ends_with(&format!("/r/{}", w.code)));
    assert!(c.get("publishableKey").is_none() && c.get("rules").is_none(), "only the terms it earns by: {c}");
    let (_, stranger) = new_affiliate(&server, "Stranger").await;
    let none = server.get("/api/v1/affiliate/campaigns", Some(&stranger)).await;
    assert_eq!(none.json()["campaigns"], json!([]), "{}", none.text);
}

#[tokio::test]
async fn a_removed_affiliate_loses_its_links_and_new_records_but_keeps_what_it_earned() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let earned = w.postback(&server, "order-before", Some(1000)).await;
    assert_eq!(earned.status, 201, "{}", earned.text);
    let token = w.click_token(&server).await;
    let remove = format!("/api/v1/campaigns/{}/affiliates/{}", w.campaign_id, w.affiliate_id);
    let r =
        server.send(hyper::Method::DELETE, &remove, &[("authorization", &format!("Bearer {}", w.key))], vec![]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["status"], "removed");
    assert_eq!(server.click(&w.code).await.status, 404, "its link is dead");
    let late = w.convert(&server, &token).await;
    assert_eq!(
        (late.status.as_u16(), late.json()["reason"].as_str()),
        (200, Some("affiliate_removed")),
        "{}",
        late.text
    );
    let postback = w.postback(&server, "order-after", Some(1000)).await;
    let lead = &postback.json()["lead"];
    assert_eq!(
        (lead["status"].as_str(), lead["rejectionReason"].as_str()),
        (Some("rejected"), Some("affiliate_removed")),
        "{}",
        postback.text
    );
    let referral = server.post("/api/v1/referrals", Some(&w.affiliate_key), json!({"campaignId": w.campaign_id})).await;
    expect_error(&referral, 403, "forbidden");
    let lead = json!({"campaignId": w.campaign_id, "trackingCode": w.code, "evidence": [{"type": "tweet", "url": "https://x.com/a/status/1"}]});
    expect_error(&server.post("/api/v1/leads", Some(&w.affiliate_key), lead).await, 403, "forbidden");
    let listed = server.get(&format!("/api/v1/campaigns/{}/affiliates", w.campaign_id), Some(&w.key)).await;
    assert_eq!(listed.json()["affiliates"], json!([]), "{}", listed.text);
    let own = server.get("/api/v1/affiliate/campaigns", Some(&w.affiliate_key)).await;
    assert_eq!(own.json()["campaigns"], json!([]), "{}", own.text);
    let kept =
        server.get(&format!("/api/v1/conversions?campaignId={}&status=approved", w.campaign_id), Some(&w.key)).await;
    assert_eq!(kept.json()["conversions"].as_array().unwrap().len(), 1, "what it earned stays: {}", kept.text);
    let again =
        server.send(hyper::Method::DELETE, &remove, &[("authorization", &format!("Bearer {}", w.key))], vec![]).await;
    expect_error(&again, 404, "not_found");
    // Approving it again revives the same code.
    let back = server
        .post(
            &format!("/api/v1/campaigns/{}/affiliates", w.campaign_id),
            Some(&w.key),
            json!({"affiliateId": w.affiliate_id}),
        )
        .await;
    assert_eq!(
        (back.status.as_u16(), back.json()["trackingCode"].as_str()),
        (200, Some(w.code.as_str())),
        "{}",
        back.text
    );
    assert_eq!(server.click(&w.code).await.status, 302);
}

#[tokio::test]
async fn an_archived_campaign_is_read_only_dead_to_traffic_and_hidden_from_the_default_listing() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let path = format!("/api/v1/campaigns/{}", w.campaign_id);
    let r = server.post(&format!("{path}/archive"), Some(&w.key), json!({})).await;
    assert_eq!((r.status.as_u16(), r.json()["status"].as_str()), (200, Some("archived")), "{}", r.text);
    let again = server.post(&format!("{path}/archive"), Some(&w.key), json!({})).await;
    assert_eq!(again.status, 200, "archiving twice is harmless: {}", again.text);
    expect_error(&server.patch(&path, Some(&w.key), json!({"name": "Renamed"})).await, 409, "campaign_archived");
    expect_error(&server.post(&format!("{path}/activate"), Some(&w.key), json!({})).await, 409, "campaign_archived");
    expect_error(&server.post(&format!("{path}/pause"), Some(&w.key), json!({})).await, 409, "campaign_archived");
    let (other, _) = new_affiliate(&server, "Latecomer").await;
    let approve = server.post(&format!("{path}/affiliates"), Some(&w.key), json!({"affiliateId": other})).await;
    expect_error(&approve, 409, "campaign_archived");
    assert_eq!(server.click(&w.code).await.status, 404);
    assert_eq!(server.get(&path, Some(&w.key)).await.json()["name"], "Spring sale", "still readable");
    let default = server.get("/api/v1/campaigns", Some(&w.key)).await;
    assert_eq!(default.json()["campaigns"], json!([]), "{}", default.text);
    let archived = server.get("/api/v1/campaigns?status=archived", Some(&w.key)).await;
    assert_eq!(names(archived.json()["campaigns"].as_array().unwrap()), ["Spring sale"]);
    let own = server.get("/api/v1/affiliate/campaigns", Some(&w.affiliate_key)).await;
    assert_eq!(own.json()["campaigns"], json!([]), "{}", own.text);
}
