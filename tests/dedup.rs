//! Exactly once: concurrency, restarts, kill -9 and bloom false positives.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_conversions_of_one_click_record_exactly_once() {
    let server = TestServer::start().await;
    let world = World::fixed(&server, 500).await;
    let token = world.click_token(&server).await;
    let replies = futures_join(64, |_| world.convert(&server, &token)).await;
    let recorded: Vec<_> = replies.iter().filter(|r| r.status == 201).collect();
    assert_eq!(recorded.len(), 1, "{:?}", replies.iter().map(|r| &r.text).collect::<Vec<_>>());
    let id = recorded[0].json()["conversionId"].clone();
    for r in replies.iter().filter(|r| r.status != 201) {
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), json!({"status": "duplicate", "conversionId": id}));
    }
    server
        .until("stats agree", || async {
            let s = world.stats(&server).await;
            (s["conversions"]["recorded"] == 1 && s["conversions"]["duplicate"] == 63).then_some(())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_postbacks_with_one_external_id_make_one_lead() {
    let server = TestServer::start().await;
    let world = World::rev_share(&server, json!(10)).await;
    let replies = futures_join(64, |_| world.postback(&server, "order-64", Some(1000))).await;
    let recorded: Vec<_> = replies.iter().filter(|r| r.status == 201).collect();
    assert_eq!(recorded.len(), 1);
    let lead_id = recorded[0].json()["leadId"].clone();
    assert!(replies.iter().all(|r| r.json()["leadId"] == lead_id));
    assert_eq!(replies.iter().filter(|r| r.status == 200 && r.json()["status"] == "duplicate").count(), 63);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_distinct_postbacks_at_once_are_all_recorded_in_group_commits() {
    let server = TestServer::start().await;
    let world = World::rev_share(&server, json!(10)).await;
    let replies = futures_join(200, |i| {
        let id = format!("order-{i}");
        let world = &world;
        let server = &server;
        async move { world.postback(server, &id, Some(1000)).await }
    })
    .await;
    assert!(replies.iter().all(|r| r.status == 201), "every new key records");
    server
        .until("payout adds up", || async { (world.stats(&server).await["payoutCents"] == 200 * 100).then_some(()) })
        .await;
    let m = server.metrics().await;
    let commits = metric_value(&m, "clickledger_store_batch_size_count");
    assert!(commits < 200.0, "200 writes took {commits} commits: no group commit happened");
}

#[tokio::test]
async fn a_restarted_server_still_detects_duplicates() {
    let server = TestServer::start().await;
    let world = World::fixed(&server, 500).await;
    let token = world.click_token(&server).await;
    assert_eq!(world.convert(&server, &token).await.status, 201);
    assert_eq!(world.postback(&server, "order-1", None).await.status, 201);
    let server = server.restart().await;
    let again = world.convert(&server, &token).await;
    assert_eq!((again.status.as_u16(), again.json()["status"].clone()), (200, json!("duplicate")));
    assert_eq!(world.postback(&server, "order-1", None).await.status, 200);
    // Answered by a store read if the bloom rebuild was done, else by the
    // commit while it still ran; never as a new key.
    let m = server.metrics().await;
    let paths = ["store_hit", "bloom_rebuilding"]
        .map(|p| metric_value(&m, &format!("clickledger_dedup_path_total{{path=\"{p}\"}}")));
    assert_eq!(paths.iter().sum::<f64>(), 2.0, "{m}");
}

#[tokio::test]
async fn an_acknowledged_conversion_and_postback_survive_kill_dash_nine() {
    let server = TestServer::start().await;
    let world = World::fixed(&server, 500).await;
    let token = world.click_token(&server).await;
    let conversion = world.convert(&server, &token).await;
    assert_eq!(conversion.status, 201);
    let lead = world.postback(&server, "order-k9", None).await;
    assert_eq!(lead.status, 201);
    let server = server.kill9_and_restart().await;
    let again = world.convert(&server, &token).await;
    assert_eq!(again.json()["conversionId"], conversion.json()["conversionId"]);
    let lead_again = world.postback(&server, "order-k9", None).await;
    assert_eq!(lead_again.status, 200);
    assert_eq!(lead_again.json()["leadId"], lead.json()["leadId"]);
    let stats = world.stats(&server).await;
    assert_eq!(stats["conversions"]["recorded"], 1);
    assert_eq!(stats["postbacks"]["recorded"], 1);
}

#[tokio::test]
async fn a_tiny_bloom_filter_still_records_every_new_key() {
    // One key per layer at a 50 % false-positive rate: most new keys hit the
    // filter, so the store must decide, and it must say "new".
    let server = TestServer::start_with(&[
        ("CLICKLEDGER_ENGINE_BLOOM_EXPECTED_KEYS", "1"),
        ("CLICKLEDGER_ENGINE_BLOOM_FP_RATE", "0.5"),
        ("CLICKLEDGER_ENGINE_WINDOW_CAPACITY", "1"),
    ])
    .await;
    let world = World::fixed(&server, 100).await;
    for i in 0..60 {
        let r = world.postback(&server, &format!("fp-{i}"), None).await;
        assert_eq!(r.status, 201, "key {i} is new and must record: {}", r.text);
    }
    for i in 0..60 {
        assert_eq!(world.postback(&server, &format!("fp-{i}"), None).await.status, 200, "key {i} repeats");
    }
    let m = server.metrics().await;
    assert!(metric_value(&m, "clickledger_dedup_path_total{path=\"bloom_false_positive\"}") > 0.0, "{m}");
    assert!(metric_value(&m, "clickledger_dedup_path_total{path=\"store_hit\"}") > 0.0, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_campaign_queue_answers_503_with_retry_after_and_loses_nothing_acknowledged() {
    let server = TestServer::start_with(&[
        ("CLICKLEDGER_ENGINE_MAILBOX_CAPACITY", "1"),
        ("CLICKLEDGER_ENGINE_MAX_PENDING_WRITES", "1"),
    ])
    .await;
    let world = World::fixed(&server, 100).await;
    let replies = futures_join(64, |i| {
        let id = format!("burst-{i}");
        let world = &world;
        let server = &server;
        async move { (id.clone(), world.postback(server, &id, None).await) }
    })
    .await;
    let mut accepted = Vec::new();
    for (id, r) in &replies {
        match r.status.as_u16() {
            201 => accepted.push(id.clone()),
            503 => {
                assert_eq!(r.json()["error"], "overloaded");
                assert!(r.header("retry-after").is_some(), "503 without Retry-After");
            }
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert!(accepted.len() < 64, "the bounds never pushed back");
    for id in &accepted {
        assert_eq!(world.postback(&server, id, None).await.status, 200, "{id} was acknowledged, so it is on record");
    }
}

/// Runs `n` requests at once and returns their replies in order.
async fn futures_join<T, F, Fut>(n: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    futures::future::join_all((0..n).map(f)).await
}

fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
