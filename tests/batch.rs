//! Batch ingestion: `POST /api/v1/postback/batch` and
//! `POST /api/v1/affiliate/conversions/batch`, each item answered as the
//! single endpoint would answer it, in input order.

mod common;

use common::*;
use hyper::Method;
use serde_json::{json, Value};

const BATCH: &str = "/api/v1/postback/batch";
const CONVERSIONS_BATCH: &str = "/api/v1/affiliate/conversions/batch";

async fn ndjson(server: &TestServer, path: &str, key: &str, lines: &[String]) -> Reply {
    let auth = format!("Bearer {key}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/x-ndjson")];
    server.send(Method::POST, path, &headers, lines.join("\n").into_bytes()).await
}

fn purchase(code: &str, external_id: &str) -> Value {
    json!({"swarm_ref": code, "externalId": external_id, "eventType": "PURCHASE", "revenueCents": 5000})
}

/// What the single endpoint answers for `body`: (status, error code, message).
async fn single(server: &TestServer, key: &str, body: &str) -> (u16, Value, Value) {
    let r = server.post_raw("/api/v1/postback", key, body.to_string()).await;
    let v: Value = serde_json::from_str(&r.text).unwrap_or(Value::Null);
    (r.status.as_u16(), v["error"].clone(), v["message"].clone())
}

#[tokio::test]
async fn every_item_gets_its_own_outcome_in_input_order() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 700).await;
    let other = World::fixed(&server, 100).await;
    let test_code = w.campaign["testTrackingCode"].as_str().unwrap().to_string();
    let lines = vec![
        purchase(&w.code, "order-1").to_string(),
        purchase(&w.code, "order-2").to_string(),
        purchase(&w.code, "order-1").to_string(),
        json!({"swarm_ref": test_code, "externalId": "t-1", "eventType": "PURCHASE"}).to_string(),
        json!({"swarm_ref": w.code, "externalId": "order-2", "eventType": "REFUND"}).to_string(),
        "{not json".to_string(),
    ];
    let r = ndjson(&server, BATCH, &w.key, &lines).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    let results = body["results"].as_array().unwrap();
    let statuses: Vec<&str> = results.iter().map(|i| i["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["recorded", "recorded", "duplicate", "test", "reversed", "rejected"], "{body}");
    for (i, item) in results.iter().enumerate() {
        assert_eq!(item["index"], i, "{item}");
    }
    assert_eq!(results[2]["leadId"], results[0]["leadId"], "the repeat names the first item's lead");
    assert_eq!(results[4]["leadId"], results[1]["leadId"], "the refund reverses the earlier item");
    assert_eq!(results[5]["error"], "invalid_json");
    assert_eq!((body["recorded"].as_u64(), body["duplicate"].as_u64()), (Some(2), Some(1)));
    assert_eq!(
        (body["rejected"].as_u64(), body["test"].as_u64(), body["reversed"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    // Duplicates are counted by the actor and written with its next flush.
    let stats = server
        .until("the duplicate counted", || async {
            let stats = w.stats(&server).await;
            (stats["postbacks"]["duplicate"] == 1).then_some(stats)
        })
        .await;
    assert_eq!(stats["postbacks"]["recorded"], 2, "{stats}");
    // The other advertiser's campaign saw nothing.
    assert_eq!(other.stats(&server).await["postbacks"]["recorded"], 0);
}

#[tokio::test]
async fn a_rejected_item_carries_the_error_the_single_endpoint_gives() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 700).await;
    let other = World::fixed(&server, 100).await;
    let bad = [
        json!({"externalId": "a", "eventType": "PURCHASE"}),
        json!({"swarm_ref": w.code, "eventType": "PURCHASE"}),
        json!({"swarm_ref": w.code, "externalId": "b", "eventType": "DANCE"}),
        json!({"swarm_ref": w.code, "externalId": "c", "eventType": "PURCHASE", "revenueCents": 1.5}),
        json!({"swarm_ref": w.code, "externalId": "d", "eventType": "PURCHASE", "revenueCents": 1_000_000_000_001u64}),
        json!({"swarm_ref": w.code, "externalId": {"x": 1}, "eventType": "PURCHASE"}),
        json!({"swarm_ref": "NOPE-NOT-A-CODE", "externalId": "e", "eventType": "PURCHASE"}),
        json!({"swarm_ref": other.code, "externalId": "f", "eventType": "PURCHASE"}),
        json!([1, 2]),
    ];
    let mut lines: Vec<String> = bad.iter().map(Value::to_string).collect();
    lines.push(purchase(&w.code, "good").to_string());
    let r = ndjson(&server, BATCH, &w.key, &lines).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let results = r.json()["results"].as_array().unwrap().clone();
    for (line, item) in lines.iter().zip(&results).take(bad.len()) {
        let (status, error, message) = single(&server, &w.key, line).await;
        assert!((400..500).contains(&status), "{line} → {status}");
        assert_eq!(item["status"], "rejected", "{line} → {item}");
        assert_eq!((&item["error"], &item["message"]), (&error, &message), "{line}");
    }
    assert_eq!(results[bad.len()]["status"], "recorded", "one bad item never fails the others");
    assert_eq!(w.stats(&server).await["postbacks"]["recorded"], 1, "only the good item was recorded");
}

#[tokio::test]
async fn a_json_array_is_the_same_batch_as_ndjson() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 700).await;
    let items = json!([purchase(&w.code, "arr-1"), purchase(&w.code, "arr-2"), purchase(&w.code, "arr-1")]);
    let r = server.post(BATCH, Some(&w.key), items.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!((body["recorded"].as_u64(), body["duplicate"].as_u64()), (Some(2), Some(1)), "{body}");
    // Sent again, as NDJSON: every item is now a duplicate of itself.
    let lines: Vec<String> = items.as_array().unwrap().iter().map(Value::to_string).collect();
    let again = ndjson(&server, BATCH, &w.key, &lines).await.json();
    assert_eq!(again["duplicate"], 3, "{again}");
    assert_eq!(again["results"][0]["leadId"], body["results"][0]["leadId"]);
}

#[tokio::test]
async fn the_batch_as_a_whole_is_refused_when_empty_too_long_or_too_large() {
    let env = [("CLICKLEDGER_INGEST_BATCH_MAX_ITEMS", "3"), ("CLICKLEDGER_INGEST_BATCH_MAX_BYTES", "2048")];
    let server = TestServer::start_with(&env).await;
    let w = World::fixed(&server, 700).await;
    expect_400_naming(&ndjson(&server, BATCH, &w.key, &["\n".into()]).await, "items");
    expect_400_naming(&server.post(BATCH, Some(&w.key), json!([])).await, "items");
    let four: Vec<String> = (0..4).map(|i| purchase(&w.code, &format!("o{i}")).to_string()).collect();
    expect_400_naming(&ndjson(&server, BATCH, &w.key, &four).await, "items");
    let big = vec![json!({"swarm_ref": w.code, "externalId": "x".repeat(3000)}).to_string()];
    expect_error(&ndjson(&server, BATCH, &w.key, &big).await, 413, "payload_too_large");
    expect_error(&server.post(BATCH, Some(&w.key), json!({"not": "an array"})).await, 400, "invalid_json");
    expect_error(&server.post(BATCH, None, json!([purchase(&w.code, "k")])).await, 401, "unauthorized");
    let r = server.post(BATCH, Some(&w.affiliate_key), json!([purchase(&w.code, "k")])).await;
    expect_error(&r, 403, "forbidden");
    assert_eq!(w.stats(&server).await["postbacks"]["recorded"], 0, "nothing refused was recorded");
    // The single endpoint keeps its own limit.
    let lines = vec![purchase(&w.code, "fits").to_string()];
    assert_eq!(ndjson(&server, BATCH, &w.key, &lines).await.status, 200);
}

#[tokio::test]
async fn server_conversions_arrive_in_batches_too() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 300).await;
    let (a, b) = (w.click_token(&server).await, w.click_token(&server).await);
    let items = json!([{"clickId": a}, {"clickId": b, "email": "buyer@example.com"}, {"clickId": a}, {}, {"clickId": "forged"}]);
    let r = server.post(CONVERSIONS_BATCH, Some(&w.key), items).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    let statuses: Vec<&str> =
        body["results"].as_array().unwrap().iter().map(|i| i["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["recorded", "recorded", "duplicate", "ignored", "ignored"], "{body}");
    assert_eq!(body["results"][2]["conversionId"], body["results"][0]["conversionId"]);
    assert_eq!(body["results"][3]["reason"], "missing_token");
    assert_eq!(w.stats(&server).await["conversions"]["recorded"], 2);
    let bad_email = server.post(CONVERSIONS_BATCH, Some(&w.key), json!([{"clickId": a, "email": "nope"}])).await;
    assert_eq!(bad_email.json()["results"][0]["error"], "validation_failed", "{}", bad_email.text);
    let browser = server.post(CONVERSIONS_BATCH, Some(&w.org_publishable_key), json!([{"clickId": b}])).await;
    expect_error(&browser, 403, "forbidden");
}

#[tokio::test]
async fn every_item_reported_recorded_survives_kill_9() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 700).await;
    let batches: Vec<Vec<String>> =
        (0..20).map(|b| (0..50).map(|i| purchase(&w.code, &format!("k9-{b}-{i}")).to_string()).collect()).collect();
    let sends = batches.iter().map(|lines| ndjson(&server, BATCH, &w.key, lines));
    let answers = futures::future::join_all(sends).await;
    let mut recorded = std::collections::BTreeMap::new();
    for (lines, r) in batches.iter().zip(&answers) {
        assert_eq!(r.status, 200, "{}", r.text);
        for (line, item) in lines.iter().zip(r.json()["results"].as_array().unwrap()) {
            assert_eq!(item["status"], "recorded", "{item}");
            recorded.insert(line.clone(), item["leadId"].clone());
        }
    }
    let server = server.kill9_and_restart().await;
    let all: Vec<String> = recorded.keys().cloned().collect();
    for chunk in all.chunks(500) {
        let again = ndjson(&server, BATCH, &w.key, chunk).await;
        assert_eq!(again.status, 200, "{}", again.text);
        for (line, item) in chunk.iter().zip(again.json()["results"].as_array().unwrap()) {
            assert_eq!(item["status"], "duplicate", "{line} was acknowledged, then lost: {item}");
            assert_eq!(item["leadId"], recorded[line]);
        }
    }
    assert_eq!(w.stats(&server).await["postbacks"]["recorded"], 1000);
}
