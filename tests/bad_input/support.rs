//! Fixtures only these tests use: valid campaign bodies to spoil one field
//! at a time, and the state a refused request must leave as it was.

use serde_json::{json, Value};

use super::common::*;

/// The campaign's stats once `clicks` human clicks have been flushed (clicks
/// are counted after the redirect, within the flush interval).
pub async fn settled_stats(server: &TestServer, w: &World, clicks: u64) -> Value {
    server.until("clicks flushed", || async { Some(w.stats(server).await).filter(|s| s["clicks"] == clicks) }).await
}

pub async fn get_campaign(server: &TestServer, w: &World) -> Value {
    let r = server.get(&format!("/api/v1/campaigns/{}", w.campaign_id), Some(&w.key)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

pub fn fixed_campaign() -> Value {
    json!({
        "name": "Spring sale",
        "landingUrl": "https://shop.example.com/landing",
        "compensationModel": "FIXED",
        "payoutCents": 500,
    })
}

pub fn rev_share_campaign() -> Value {
    json!({
        "name": "Percent of sale",
        "landingUrl": "https://shop.example.com/",
        "compensationModel": "REV_SHARE",
        "payoutPercentage": 20,
    })
}

/// Creates a campaign with `mutate` applied to a valid body.
pub async fn create_campaign(
    server: &TestServer,
    key: &str,
    base: Value,
    mutate: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Reply {
    let mut body = base;
    mutate(body.as_object_mut().unwrap());
    server.post("/api/v1/campaigns", Some(key), body).await
}
