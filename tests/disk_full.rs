//! A full disk: writes fail (and say so) while it is full, nothing
//! acknowledged is lost, readiness reports the store failing, and once space
//! is back the store writes again by itself, without a restart.
//!
//! The store-level test fails writes through the store's file seam
//! (`DiskFaults`); the end-to-end test fills a real 4 MiB tmpfs, when the
//! machine lets this process mount one (root).

mod common;

use std::sync::Arc;
use std::time::Duration;

use clickledger::domain::ids::*;
use clickledger::domain::model::*;
use clickledger::store::embedded::{DiskFaults, EmbeddedStore};
use clickledger::store::*;
use common::*;

fn lead(external: &str) -> Keyed {
    let now = clickledger::domain::unix_now();
    Keyed::Lead(Lead::verified(CampaignId(1), AffiliateId(1), "CODE".into(), external.into(), now))
}

async fn commit(store: &EmbeddedStore, external: &str) -> StoreResult<Vec<Outcome>> {
    store.commit(Arc::new(Batch { keyed: vec![lead(external)], ..Default::default() })).await
}

#[tokio::test]
async fn the_store_writes_again_by_itself_once_the_disk_has_room() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(DiskFaults::default());
    let store = EmbeddedStore::open_with_faults(dir.path(), 64, faults.clone()).unwrap();
    commit(&store, "before").await.expect("a write before the disk fills");
    faults.set_full(true);
    let failed = commit(&store, "while-full").await.expect_err("no room: the write fails");
    assert!(failed.is_unavailable() && failed.message().contains("I/O error"), "{failed}");
    let health = store.health().await.expect_err("not ready while writes fail");
    assert!(health.message().contains("writes are failing"), "{health}");
    faults.set_full(false);
    let mut healed = false;
    for _ in 0..200 {
        if commit(&store, "after").await.is_ok() {
            healed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(healed, "the store did not recover");
    assert!(store.health().await.is_ok(), "ready again");
    assert!(store.get_lead(CampaignId(1), "before").await.unwrap().is_some(), "what was acknowledged is there");
    assert!(store.get_lead(CampaignId(1), "while-full").await.unwrap().is_none(), "what failed was not written");
}

/// Mounts a small tmpfs for a data directory; `None` if this process may not.
fn small_tmpfs(dir: &std::path::Path) -> Option<TmpfsGuard> {
    std::fs::create_dir_all(dir).ok()?;
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| TmpfsGuard(dir.to_path_buf()))
}

struct TmpfsGuard(std::path::PathBuf);

impl Drop for TmpfsGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_server_on_a_full_disk_answers_503_then_recovers_when_space_is_freed() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = tmp.path().join("disk");
    let Some(_guard) = small_tmpfs(&mount) else {
        eprintln!("skipping: cannot mount a tmpfs here (needs root); the store-level test covers recovery");
        return;
    };
    if cql_mode() {
        return; // the data directory holds no data on CQL
    }
    let server = TestServer::start_at(mount.join("data"), &[]).await;
    let w = World::fixed(&server, 500).await;
    assert_eq!(w.postback(&server, "before", None).await.status, 201);
    // Fill the disk, leaving the store no room to grow.
    let filler = mount.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 8 << 20]);
    let padding = "x".repeat(1000);
    let mut refused = 0;
    for i in 0..500 {
        let body = serde_json::json!({"swarm_ref": w.code, "externalId": format!("full-{i}"), "eventType": "PURCHASE",
            "metadata": {"pad": padding}});
        let r = server.post("/api/v1/postback", Some(&w.key), body).await;
        assert!(r.status == 201 || r.status == 503, "only recorded or 503: {} {}", r.status, r.text);
        if r.status == 503 {
            refused += 1;
            assert!(r.header("retry-after").is_some());
            break;
        }
    }
    assert_eq!(refused, 1, "the disk never filled");
    server.until("/readyz fails", || async { (server.get("/readyz", None).await.status == 503).then_some(()) }).await;
    std::fs::remove_file(&filler).unwrap();
    server
        .until("/readyz recovers", || async { (server.get("/readyz", None).await.status == 200).then_some(()) })
        .await;
    let r = w.postback(&server, "after", None).await;
    assert_eq!(r.status, 201, "writes again without a restart: {}", r.text);
    assert_eq!(w.postback(&server, "before", None).await.status, 200, "the acknowledged postback is there");
}
