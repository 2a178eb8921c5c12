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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_given_overlapping_batches_at_once_record_each_external_id_once() {
    if skip_unless_cql() {
        return;
    }
    let a = TestServer::start().await;
    let world = World::fixed(&a, 250).await;
    let b = TestServer::start().await;
    let item = |i: usize| json!({"swarm_ref": world.code, "externalId": format!("ov-{i}"), "eventType": "PURCHASE"});
    // Node A gets 0..150, node B 50..200, twice each, all at once.
    let batches = [(0..150, &a), (50..200, &b), (0..150, &a), (50..200, &b)];
    let sends = batches.iter().map(|(range, node)| {
        let items: Vec<_> = range.clone().map(item).collect();
        node.post("/api/v1/postback/batch", Some(&world.key), json!(items))
    });
    let answers = join_all(sends).await;
    let mut lead_of = std::collections::HashMap::new();
    let mut recorded = 0;
    for ((range, _), r) in batches.iter().zip(&answers) {
        assert_eq!(r.status, 200, "{}", r.text);
        for (i, result) in range.clone().zip(r.json()["results"].as_array().unwrap()) {
            match result["status"].as_str() {
                Some("recorded") => recorded += 1,
                Some("duplicate") => {}
                other => panic!("ov-{i}: {other:?} {result}"),
            }
            let first = lead_of.entry(i).or_insert_with(|| result["leadId"].clone());
            assert_eq!(*first, result["leadId"], "ov-{i}: two nodes, two leads");
        }
    }
    assert_eq!(recorded, 200, "each of the 200 externalIds recorded exactly once");
    assert_eq!(world.stats(&b).await["postbacks"]["recorded"], 200);
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

/// A key revoked and a tenant disabled on node A are refused by node B,
/// which had them cached, within `auth.revalidate_ms` (1 s here; the test
/// polls with a generous bound rather than timing it).
#[tokio::test]
async fn a_key_revoked_or_a_tenant_disabled_on_one_node_is_refused_by_the_other() {
    if skip_unless_cql() {
        return;
    }
    let env = [("CLICKLEDGER_AUTH_REVALIDATE_MS", "1000")];
    let a = TestServer::start_with(&env).await;
    let world = World::fixed(&a, 500).await;
    let b = TestServer::start_with(&env).await;
    let second = a.post("/api/v1/keys", Some(&world.key), json!({})).await.json();
    let second_key = second["apiKey"].as_str().unwrap().to_string();
    let campaign = format!("/api/v1/campaigns/{}", world.campaign_id);
    assert_eq!(b.get(&campaign, Some(&world.key)).await.status, 200, "node B caches the first key");
    let keys = a.get("/api/v1/keys", Some(&world.key)).await.json();
    let first_id =
        keys["keys"].as_array().unwrap().iter().find(|k| k["prefix"] == world.key[..12]).unwrap()["id"].clone();
    let auth = format!("Bearer {second_key}");
    let path = format!("/api/v1/keys/{}", first_id.as_str().unwrap());
    let r = a.send(hyper::Method::DELETE, &path, &[("authorization", auth.as_str())], vec![]).await;
    assert_eq!(r.status, 204, "{}", r.text);
    b.until("node B refuses the revoked key", || async {
        (b.get(&campaign, Some(&world.key)).await.status == 401).then_some(())
    })
    .await;
    assert_eq!(b.get(&campaign, Some(&second_key)).await.status, 200);
    assert_eq!(b.click(&world.code).await.status, 302, "node B caches the affiliate as enabled");
    let disable = format!("/api/v1/admin/affiliates/{}/disable", world.affiliate_id);
    assert_eq!(a.post(&disable, Some(ADMIN_KEY), json!({})).await.status, 200);
    b.until("node B stops the disabled affiliate's links", || async {
        (b.click(&world.code).await.status == 404).then_some(())
    })
    .await;
}

/// Two nodes started exactly as the README says (no CLICKLEDGER_TOKEN_KEYS,
/// each with its own data directory) sign and verify click tokens with the
/// same key: a click redirected by one converts on the other.
#[tokio::test]
async fn two_nodes_without_configured_token_keys_agree_on_them() {
    if skip_unless_cql() {
        return;
    }
    // Their own keyspace: this binary's other servers use the test keys.
    let mut env = own_keyspace().await;
    env.extend([("CLICKLEDGER_TOKEN_KEYS".into(), String::new()), ("CLICKLEDGER_ADMIN_KEY".into(), String::new())]);
    let a = TestServer::start_with_owned(&env).await;
    let admin = a.admin_key().await;
    assert!(admin.starts_with("ak_"), "the keyspace's generated admin key: {admin}");
    let world = World::fixed_with_admin(&a, 500, &admin).await;
    let b = TestServer::start_with_owned(&env).await;
    assert_eq!(b.admin_key().await, admin, "one admin key for the keyspace");
    let token = world.click_token(&b).await;
    let r = world.convert(&a, &token).await;
    assert_eq!(r.status, 201, "a token from node B converts on node A: {}", r.text);
    let token = world.click_token(&a).await;
    assert_eq!(world.convert(&b, &token).await.status, 201);
}

/// A node whose signing key differs from the keyspace's refuses to start and
/// says what to set; started to adopt it on purpose, it runs.
#[tokio::test]
async fn a_node_whose_secrets_differ_from_the_keyspaces_refuses_to_start() {
    if skip_unless_cql() {
        return;
    }
    let env = own_keyspace().await;
    let a = TestServer::start_with_owned(&env).await;
    let mut other = env.clone();
    other.push(("CLICKLEDGER_TOKEN_KEYS".into(), "another-signing-key-0123456789".into()));
    let refused = a.cli_with(&["serve", "--listen", "127.0.0.1:0"], &other).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("CLICKLEDGER_TOKEN_KEYS") && stderr.contains("CLICKLEDGER_SECRETS_ADOPT"), "{stderr}");
    other.push(("CLICKLEDGER_SECRETS_ADOPT".into(), "true".into()));
    let adopted = TestServer::start_with_owned(&other).await;
    assert_eq!(adopted.get("/healthz", None).await.status, 200);
}

const OUTBOX_FAST: &[(&str, &str)] = &[
    ("CLICKLEDGER_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true"),
    ("CLICKLEDGER_WEBHOOKS_RETRY_SCHEDULE", "1s"),
    ("CLICKLEDGER_WEBHOOKS_TIMEOUT_MS", "2000"),
    ("CLICKLEDGER_WEBHOOKS_POLL_MS", "50"),
];

/// Subscribes `receiver` to the world's conversions, through node `a`.
async fn subscribe(a: &TestServer, world: &World, receiver: &common::receiver::Receiver) {
    let body = json!({"url": receiver.url("/"), "events": ["conversion.recorded"]});
    let r = a.post("/api/v1/webhooks", Some(&world.key), body).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_deliver_each_event_and_repeat_one_only_under_its_own_id() {
    use common::receiver::{Answer, Receiver};
    if skip_unless_cql() {
        return;
    }
    let receiver = Receiver::start(vec![Answer::Status(500), Answer::Status(500), Answer::Status(502)]).await;
    let a = TestServer::start_with(OUTBOX_FAST).await;
    let b = TestServer::start_with(OUTBOX_FAST).await;
    let world = World::fixed(&a, 500).await;
    subscribe(&a, &world, &receiver).await;
    let externals: Vec<String> = (0..20).map(|i| format!("two-{i}")).collect();
    let leads =
        join_all(externals.iter().enumerate().map(|(i, e)| world.postback(node(i, &a, &b), e, Some(1000)))).await;
    let ids: std::collections::BTreeSet<String> =
        leads.iter().map(|l| l.json()["leadId"].as_str().unwrap().to_string()).collect();
    // Each event once delivered (at least 20 requests, 3 of them failed ones).
    receiver.until(23, 90).await;
    // Time for any repeat to show up before counting.
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    let got = receiver.received();
    let mut by_id: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for r in &got {
        by_id.entry(r.header("webhook-id").to_string()).or_default().push(r.body.clone());
    }
    let delivered: std::collections::BTreeSet<String> =
        got.iter().map(|r| r.json()["data"]["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(delivered, ids, "every event arrives");
    assert_eq!(by_id.len(), 20, "one webhook-id per event");
    for (id, bodies) in &by_id {
        assert!(bodies.iter().all(|b| b == &bodies[0]), "{id}: a repeat carries the same body");
    }
    assert!(got.len() <= 23 + 2, "repeats come only from failed attempts (and a rare lease race): {}", got.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_claimed_by_a_node_that_dies_is_delivered_by_another() {
    use common::receiver::{Answer, Receiver};
    if skip_unless_cql() {
        return;
    }
    // Node A's attempt hangs at the receiver; A dies holding the lease.
    let receiver = Receiver::start(vec![Answer::Hang(std::time::Duration::from_secs(60))]).await;
    let slow = [OUTBOX_FAST, &[("CLICKLEDGER_WEBHOOKS_TIMEOUT_MS", "20000")]].concat();
    let mut a = TestServer::start_with(&slow).await;
    let world = World::fixed(&a, 500).await;
    subscribe(&a, &world, &receiver).await;
    let lead = world.postback(&a, "dies-1", Some(1000)).await.json();
    receiver.until(1, 60).await;
    a.signal(libc::SIGKILL);
    a.wait_exit().await;
    // A's lease (its 20 s timeout + 5 s) is what B waits out.
    let b = TestServer::start_with(&[OUTBOX_FAST, &[("CLICKLEDGER_WEBHOOKS_TIMEOUT_MS", "1000")]].concat()).await;
    let got = receiver.until(2, 90).await;
    assert_eq!(got[1].header("webhook-id"), got[0].header("webhook-id"));
    assert_eq!(got[1].json()["data"]["id"], lead["leadId"]);
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_conversions_over_two_nodes_against_a_cap_of_ten_approve_exactly_ten() {
    if skip_unless_cql() {
        return;
    }
    let a = TestServer::start().await;
    let world = World::fixed(&a, 500).await;
    let b = TestServer::start().await;
    let path = format!("/api/v1/campaigns/{}", world.campaign_id);
    let r = a.patch(&path, Some(&world.key), json!({"caps": {"total": {"conversions": 10}}})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    b.until("node B sees the cap", || async {
        let c = b.get(&path, Some(&world.key)).await.json();
        (c["caps"]["total"]["conversions"] == 10).then_some(())
    })
    .await;
    let mut tokens = Vec::new();
    for _ in 0..64 {
        tokens.push(world.click_token(&a).await);
    }
    let replies = join_all(tokens.iter().enumerate().map(|(i, t)| world.convert(node(i, &a, &b), t))).await;
    let recorded = replies.iter().filter(|r| r.status == 201).count();
    let capped = replies.iter().filter(|r| r.status == 200 && r.json()["reason"] == "cap_reached").count();
    let texts: Vec<_> = replies.iter().filter(|r| !r.status.is_success()).map(|r| &r.text).collect();
    assert_eq!((recorded, capped), (10, 54), "not one over the cap, and none refused below it: {texts:?}");
    let shown = a.get(&path, Some(&world.key)).await.json();
    let total = shown["capUsage"].as_array().unwrap().iter().find(|u| u["period"] == "total").unwrap().clone();
    assert_eq!(total["conversions"]["used"], 10, "{shown}");

    // A reversal on node B gives one back; the next conversion on node A takes it.
    let first = replies.iter().find(|r| r.status == 201).unwrap().json()["conversionId"].as_str().unwrap().to_string();
    let reverse = format!("/api/v1/conversions/{first}/reverse");
    assert_eq!(b.post(&reverse, Some(&world.key), json!({"reason": "refund"})).await.status, 200);
    let token = world.click_token(&a).await;
    assert_eq!(world.convert(&a, &token).await.json()["status"], "recorded");
    let token = world.click_token(&b).await;
    assert_eq!(world.convert(&b, &token).await.json()["reason"], "cap_reached");
}
