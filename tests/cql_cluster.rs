//! Two engine nodes on one CQL keyspace: the conditional inserts, not the
//! in-memory fast paths, decide what is recorded. Runs in the CQL pass of
//! `scripts/test` (CLICKLEDGER_TEST_STORE=cql); in the embedded pass there is
//! no shared store to test.

mod common;

use common::*;
use futures::future::join_all;
use serde_json::json;

fn skip_unless_cql() -> bool {
    if !cql_mode() {
        eprintln!("two-node tests run only with CLICKLEDGER_TEST_STORE=cql (scripts/test does)");
        return true;
    }
    false
}

/// Node A for even `i`, node B for odd: requests alternate between nodes.
fn node<'a>(i: usize, a: &'a TestServer, b: &'a TestServer) -> &'a TestServer {
    if i % 2 == 0 {
        a
    } else {
        b
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_record_one_conversion_per_click_and_agree_on_its_id() {
    if skip_unless_cql() {
        return;
    }
    let a = TestServer::start().await;
    let world = World::fixed(&a, 500).await;
    let b = TestServer::start().await;
    for round in 0..3 {
        let token = world.click_token(&a).await;
        let replies = join_all((0..64).map(|i| world.convert(node(i, &a, &b), &token))).await;
        let recorded: Vec<_> = replies.iter().filter(|r| r.status == 201).collect();
        assert_eq!(recorded.len(), 1, "round {round}: {:?}", replies.iter().map(|r| &r.text).collect::<Vec<_>>());
        let id = recorded[0].json()["conversionId"].clone();
        for r in replies.iter().filter(|r| r.status != 201) {
            assert_eq!(r.json(), json!({"status": "duplicate", "conversionId": id}), "round {round}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_make_one_lead_per_external_id_and_give_every_caller_its_id() {
    if skip_unless_cql() {
        return;
    }
    let a = TestServer::start().await;
    let world = World::rev_share(&a, json!(10)).await;
    let b = TestServer::start().await;
    for round in 0..3 {
        let external = format!("order-{round}");
        let replies = join_all((0..64).map(|i| world.postback(node(i, &a, &b), &external, Some(1000)))).await;
        assert_eq!(replies.iter().filter(|r| r.status == 201).count(), 1, "round {round}");
        let lead_id = replies[0].json()["leadId"].clone();
        assert!(lead_id.is_string());
        assert!(replies.iter().all(|r| r.json()["leadId"] == lead_id), "round {round}: callers disagree");
    }
    // Node B's bloom filter and window never saw these keys; its conditional
    // insert still finds them.
    let again = world.postback(&b, "order-0", Some(1000)).await;
    assert_eq!(again.status, 200);
}

#[tokio::test]
async fn a_campaign_edited_on_one_node_is_seen_by_the_other() {
    if skip_unless_cql() {
        return;
    }
    let a = TestServer::start().await;
    let world = World::fixed(&a, 500).await;
    let b = TestServer::start().await;
    assert_eq!(b.click(&world.code).await.status, 302);
    let paused = a.post(&format!("/api/v1/campaigns/{}/pause", world.campaign_id), Some(&world.key), json!({})).await;
    assert_eq!(paused.status, 200);
    b.until("node B sees the pause", || async { (b.click(&world.code).await.status == 404).then_some(()) }).await;
}
