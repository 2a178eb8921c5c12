use std::io::Write;
use std::path::Path;

use super::segment::Encoder;
use super::*;
use crate::domain::model::IpHash;
use crate::store::embedded::EmbeddedStore;
use crate::store::Store;

const DAY_MS: u128 = 86_400_000;

fn clicks(from: u128, n: u128, flag_every: u128) -> Vec<Click> {
    (from..from + n)
        .map(|i| Click {
            id: ClickId((20_000 * DAY_MS) << 80 | i),
            campaign_id: CampaignId(5),
            affiliate_id: AffiliateId(1),
            tracking_code: "CODE".into(),
            at: 20_000 * 86_400,
            ip_hash: IpHash([3; 16]),
            user_agent: format!("agent {}", i % 4),
            referer: String::new(),
            flagged: i % flag_every == 0,
            subs: Default::default(),
            duplicate: false,
            capped: false,
            paid_traffic: false,
        })
        .collect()
}

fn batch(clicks: Vec<Click>) -> Arc<Batch> {
    Arc::new(Batch { clicks, ..Default::default() })
}

/// Opens `dir` again once the last store's threads have let go of it.
fn reopen(dir: &Path) -> EmbeddedStore {
    (0..200)
        .find_map(|_| {
            EmbeddedStore::open(dir, 16).ok().or_else(|| {
                std::thread::sleep(Duration::from_millis(20));
                None
            })
        })
        .expect("the store reopens")
}

async fn counted(store: &EmbeddedStore) -> (u64, u64) {
    let stats = store.get_stats(CampaignId(5)).await.unwrap();
    (stats.clicks, stats.bot_clicks)
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    list(&dir.join(DIR)).unwrap().into_iter().map(|s| s.2).collect()
}

#[tokio::test]
async fn clicks_logged_before_a_checkpoint_are_counted_once_after_a_crash_and_once_after_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), 16).unwrap();
    for b in 0..3 {
        store.commit(batch(clicks(b * 10, 10, 5))).await.unwrap();
    }
    assert_eq!(counted(&store).await, (24, 6), "counted from memory before any checkpoint");
    drop(store);
    let store = reopen(dir.path());
    assert_eq!(counted(&store).await, (24, 6), "replayed from the log on open");
    store.commit(batch(clicks(30, 10, 5))).await.unwrap();
    tokio::time::sleep(CHECKPOINT_EVERY * 3).await;
    store.commit(batch(clicks(40, 1, 5))).await.unwrap();
    tokio::time::sleep(CHECKPOINT_EVERY * 3).await;
    assert!(lock(&store.clicks.reader.shared).entries.is_empty(), "the checkpoint moved the counts to the table");
    assert_eq!(counted(&store).await, (32, 9));
    drop(store);
    let store = reopen(dir.path());
    assert_eq!(counted(&store).await, (32, 9), "nothing behind the checkpoint is replayed");
    assert!(store.get_click(CampaignId(5), clicks(7, 1, 5)[0].id).await.unwrap().is_some());
}

#[tokio::test]
async fn a_torn_tail_is_cut_on_open_and_its_clicks_are_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), 16).unwrap();
    store.commit(batch(clicks(0, 10, 100))).await.unwrap();
    drop(store);
    let last = segment_files(dir.path()).pop().unwrap();
    let whole = std::fs::metadata(&last).unwrap().len();
    let mut torn = Vec::new();
    Encoder::default().record(CampaignId(5), &clicks(10, 5, 100).iter().collect::<Vec<_>>(), &mut torn);
    let mut file = OpenOptions::new().append(true).open(&last).unwrap();
    file.write_all(&torn[..torn.len() / 2]).unwrap();
    drop(file);
    let store = reopen(dir.path());
    assert_eq!(std::fs::metadata(&last).unwrap().len(), whole, "cut back to the last whole record");
    assert_eq!(counted(&store).await, (9, 1));
    store.commit(batch(clicks(10, 5, 100))).await.unwrap();
    assert_eq!(counted(&store).await, (14, 1));
    let id = clicks(12, 1, 100)[0].id;
    assert_eq!(store.get_click(CampaignId(5), id).await.unwrap().map(|c| c.id), Some(id));
}

#[tokio::test]
async fn a_batch_retried_after_its_other_half_failed_logs_its_clicks_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), 16).unwrap();
    let first = clicks(0, 10, 100);
    store.clicks.append(batch(first.clone())).await.unwrap();
    store.clicks.mark_retried(&first);
    // The retry carries the same clicks and one that arrived meanwhile.
    store.commit(batch(clicks(0, 11, 100))).await.unwrap();
    assert_eq!(counted(&store).await, (10, 1));
    assert!(lock(&store.clicks.reader.shared).retried.is_empty(), "forgotten once skipped");
}

#[tokio::test]
async fn a_full_disk_fails_the_append_and_leaves_nothing_behind_to_count() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(DiskFaults::default());
    let store = EmbeddedStore::open_with_faults(dir.path(), 16, faults.clone()).unwrap();
    store.commit(batch(clicks(0, 10, 100))).await.unwrap();
    faults.set_full(true);
    assert!(store.commit(batch(clicks(10, 10, 100))).await.is_err());
    faults.set_full(false);
    store.commit(batch(clicks(10, 10, 100))).await.unwrap();
    assert_eq!(counted(&store).await, (19, 1));
    drop(store);
    let store = reopen(dir.path());
    assert_eq!(counted(&store).await, (19, 1), "the failed append left no record to replay");
}

#[tokio::test]
async fn a_click_costs_a_few_dozen_bytes_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), 16).unwrap();
    for b in 0..100 {
        store.commit(batch(clicks(b * 100, 100, 7))).await.unwrap();
    }
    let bytes: u64 = segment_files(dir.path()).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    assert!(bytes / 10_000 <= 48, "{} bytes per click", bytes / 10_000);
}
