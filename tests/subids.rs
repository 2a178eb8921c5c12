//! Sub-IDs (`sub1`…`sub5`): an affiliate's tags on its links follow the click
//! onto its conversion; a postback may carry them too. A visitor's bad value
//! is dropped, never an error page; an API caller's is a 400 naming it.

mod common;

use common::*;
use serde_json::{json, Value};

/// The records of `w`'s campaign the change feed shows, waiting until
/// `want` came (CQL shows a change once it is a few seconds old; on CQL the
/// servers of one test binary share a keyspace, so others' are there too).
async fn records(server: &TestServer, w: &World, want: usize) -> Vec<Value> {
    let admin = server.admin_key().await;
    server
        .until("the recorded changes", || async {
            let page = server.get("/api/v1/admin/changes?limit=1000", Some(&admin)).await.json();
            let changes = page["changes"].as_array().cloned().unwrap_or_default();
            let mine: Vec<Value> = changes
                .into_iter()
                .map(|c| c["data"].clone())
                .filter(|d| d["campaignId"] == w.campaign_id.as_str())
                .collect();
            (mine.len() >= want).then_some(mine)
        })
        .await
}

async fn click_with(server: &TestServer, w: &World, query: &str) -> String {
    let r = server.get(&format!("/r/{}?{query}", w.code), None).await;
    assert_eq!(r.status, 302, "a visitor always reaches the landing page: {}", r.text);
    r.header("location").unwrap().to_string()
}

#[tokio::test]
async fn a_links_sub_ids_follow_its_click_onto_the_conversion_and_never_onto_the_landing_page() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 300).await;
    let long = "x".repeat(256);
    let query = format!("sub1=fb%20ads&sub2=%3Cscript%3E%26%3D&sub3={long}&sub4=a%0Ab&sub5=%E2%82%AC");
    let location = click_with(&server, &w, &query).await;
    assert!(!location.contains("sub1") && !location.contains("fb"), "not forwarded: {location}");
    let token = query_param(&location, "irw_id").unwrap();
    assert_eq!(w.convert(&server, &token).await.status, 201);

    let plain = query_param(&click_with(&server, &w, "utm=1").await, "irw_id").unwrap();
    assert_eq!(plain.len(), w.click_token(&server).await.len(), "a link without sub-IDs keeps its short token");
    assert_eq!(w.convert(&server, &plain).await.status, 201);

    let mut seen = records(&server, &w, 2).await;
    seen.sort_by_key(|c| c.get("sub1").is_none());
    let tagged = &seen[0];
    assert_eq!(tagged["sub1"], "fb ads", "{tagged}");
    assert_eq!(tagged["sub2"], "<script>&=", "{tagged}");
    assert_eq!(tagged["sub5"], "€", "{tagged}");
    assert!(tagged.get("sub3").is_none() && tagged.get("sub4").is_none(), "too long, control char: dropped {tagged}");
    assert!(seen[1].get("sub1").is_none(), "{}", seen[1]);
}

#[tokio::test]
async fn a_postback_carries_its_sub_ids_on_the_lead_alone_and_in_a_batch() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 300).await;
    let body = json!({"swarm_ref": w.code, "externalId": "o-1", "eventType": "PURCHASE", "sub1": "nl-06", "sub5": "z"});
    let r = server.post("/api/v1/postback", Some(&w.key), body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!((r.json()["lead"]["sub1"].clone(), r.json()["lead"]["sub5"].clone()), (json!("nl-06"), json!("z")));

    let items = json!([{"swarm_ref": w.code, "externalId": "o-2", "eventType": "PURCHASE", "sub2": "batch"}]);
    let r = server.post("/api/v1/postback/batch", Some(&w.key), items).await;
    assert!(r.status.is_success(), "{}", r.text);
    let seen = records(&server, &w, 2).await;
    assert!(seen.iter().any(|l| l["externalId"] == "o-2" && l["sub2"] == "batch"), "{seen:?}");
}

#[tokio::test]
async fn an_api_callers_bad_sub_id_is_refused_by_name_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 300).await;
    for (field, value) in [("sub2", json!("y".repeat(256))), ("sub4", json!("tab\there")), ("sub1", json!(7))] {
        let mut body = json!({"swarm_ref": w.code, "externalId": "o-1", "eventType": "PURCHASE"});
        body[field] = value;
        let r = server.post("/api/v1/postback", Some(&w.key), body).await;
        assert_eq!(r.status, 400, "{field}: {}", r.text);
        assert!(r.text.contains(field), "the error names {field}: {}", r.text);
    }
    assert_eq!(w.stats(&server).await["postbacks"]["recorded"], 0);
}
