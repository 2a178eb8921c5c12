//! The CQL node goes away mid-run and comes back: requests get 503 with
//! Retry-After (never a wrong "recorded"), redirects keep working, the engine
//! reconnects by itself, and nothing acknowledged is lost. This binary holds
//! one test, so stopping the node disturbs no other test.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn cql_node_script(action: &str) {
    let status = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cql-node"))
        .arg(action)
        .status()
        .expect("run scripts/cql-node");
    assert!(status.success(), "scripts/cql-node {action} failed");
}

/// The first answer of `send` that is not a 503, trying for up to a minute.
async fn until_not_503<F: std::future::Future<Output = Reply>>(send: impl Fn() -> F) -> Reply {
    for _ in 0..120 {
        let r = send().await;
        if r.status != 503 {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("still 503 after a minute: the engine never reached the node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cql_outage_answers_503_then_recovers_without_losing_anything_acknowledged() {
    if !cql_mode() || std::env::var("CLICKLEDGER_TEST_CQL_MANAGED").is_err() {
        eprintln!("the outage test needs the node scripts/test started (it stops and restarts it)");
        return;
    }
    let server = TestServer::start_with(&[("CLICKLEDGER_SCYLLA_REQUEST_TIMEOUT_MS", "2000")]).await;
    let world = World::fixed(&server, 500).await;
    // A loaded node can time out a first write; a 503 records nothing, so
    // the caller's retry is what a client would do.
    let before = until_not_503(|| world.postback(&server, "before-outage", None)).await;
    assert_eq!(before.status, 201, "{}", before.text);
    let token = world.click_token(&server).await;

    tokio::task::spawn_blocking(|| cql_node_script("stop")).await.unwrap();

    let during = world.postback(&server, "during-outage", None).await;
    assert_eq!(during.status, 503, "{}", during.text);
    assert!(during.header("retry-after").is_some());
    let conversion = world.convert(&server, &token).await;
    assert_eq!(conversion.status, 503, "{}", conversion.text);
    let click = server.click(&world.code).await;
    assert_eq!(click.status, 302, "redirects do not wait for the store");

    tokio::task::spawn_blocking(|| cql_node_script("start")).await.unwrap();

    // The driver reconnects on its own; the first attempts may still fail.
    let recovered = until_not_503(|| world.postback(&server, "during-outage", None)).await;
    assert_eq!(recovered.status, 201, "the 503 recorded nothing, so the retry records: {}", recovered.text);
    let again = world.postback(&server, "before-outage", None).await;
    assert_eq!((again.status.as_u16(), again.json()["leadId"].clone()), (200, before.json()["leadId"].clone()));
    assert_eq!(world.convert(&server, &token).await.status, 201);
    server
        .until("clicks queued during the outage are written", || async {
            // The same client twice: one counted, one a repeat.
            let s = world.stats(&server).await;
            (s["clicks"] == 1 && s["duplicateClicks"] == 1).then_some(())
        })
        .await;
    let stats = world.stats(&server).await;
    assert_eq!(stats["postbacks"]["recorded"], json!(2));
}
