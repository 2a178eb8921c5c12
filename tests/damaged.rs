//! A stored row that does not decode (a damaged data file) is the one 500:
//! no Retry-After, since a retry would meet the same row, and the log
//! says what failed. Embedded store only: the test damages its file.

mod common;

use std::str::FromStr;

use clickledger::domain::ids::CampaignId;
use common::*;
use serde_json::json;

const LEADS: redb::TableDefinition<(u64, &str), &[u8]> = redb::TableDefinition::new("leads");

#[tokio::test]
async fn a_stored_row_that_does_not_decode_is_a_500_without_retry_after() {
    if cql_mode() {
        return;
    }
    let mut server = TestServer::start_capturing_logs(&[]).await;
    let w = World::fixed(&server, 700).await;
    let body = json!({"swarm_ref": w.code, "externalId": "order-1", "eventType": "PURCHASE", "revenueCents": 5000});
    assert_eq!(server.post("/api/v1/postback", Some(&w.key), body.clone()).await.status, 201);
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().await.success());
    {
        let db = redb::Database::open(server.data_dir.join("clickledger.redb")).expect("the file is released");
        let txn = db.begin_write().unwrap();
        let campaign = CampaignId::from_str(&w.campaign_id).unwrap();
        txn.open_table(LEADS).unwrap().insert((campaign.0, "order-1"), b"{not a lead".as_slice()).unwrap();
        txn.commit().unwrap();
    }
    let server = server.relaunch().await;
    // The repeat must read the stored row to answer (the restarted actor
    // has no window yet), and the row does not decode.
    let r = server.post("/api/v1/postback", Some(&w.key), body).await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(r.json()["error"], "internal_error");
    assert!(r.header("retry-after").is_none(), "a retry would meet the same row");
    // Log lines go out through a queue: wait for the line rather than race it.
    server
        .until("the log says what failed", || async {
            let logs = server.logs().join("\n");
            (logs.contains("store error") || logs.contains("group commit failed")).then_some(())
        })
        .await;
    assert_eq!(server.get("/healthz", None).await.status, 200, "the rest of the node serves on");
}
