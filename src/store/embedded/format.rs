//! The data file's format version, and the upgrades to the current one,
//! run in the opening transaction (so an upgrade is all or nothing).
//!
//! - Format 1 (through 0.1 of issue 12): one JSON row per click in `clicks`;
//!   no version recorded.
//! - Format 2: clicks as batch records in redb's `click_log` table
//!   (`store::clicklog`).
//! - Format 3: clicks in segment files beside the database (`clicks.rs`),
//!   with a checkpoint of the counted log position in `meta`.
//! - Format 4: the change feed (`changes`, `feed.rs`). A format 3 file
//!   gains the empty table (the opening transaction creates it) and its
//!   feed starts with the first record after the upgrade. A build that
//!   knows only format 3 refuses the file rather than write records
//!   without their changes.
//! - Format 5: the listing indexes (`listings.rs`), built from the
//!   campaigns and approvals on the upgrade. A format 4 build refuses the
//!   file rather than write campaigns the listings would miss.
//!
//! Opening a format 1 or 2 file moves its clicks into segments (synced
//! before the opening transaction commits), drops the old table and
//! checkpoints the end, since the counters already hold those clicks. An
//! upgrade interrupted before its commit starts over: the segments it wrote
//! are deleted first.
//!
//! A file of a newer format than this build knows is refused, never read.

use std::path::Path;

use redb::{ReadableTable, TableDefinition, TableHandle, WriteTransaction};

use super::clicks::{set_checkpoint, Segments};
use crate::domain::ids::CampaignId;
use crate::domain::model::Click;
use crate::store::{clicklog, StoreError, StoreResult};

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const FORMAT_KEY: &str = "format";
pub const CURRENT: u64 = 5;

/// Format 1's click rows: (campaign, click id) → JSON.
const OLD_CLICKS: TableDefinition<(u64, u128), &[u8]> = TableDefinition::new("clicks");
/// Format 2's batch records: (campaign, first click id) → `clicklog` bytes.
const OLD_LOG: TableDefinition<(u64, u128), &[u8]> = TableDefinition::new("click_log");
/// Clicks per append when moving old rows into segments.
const MOVE_BATCH: usize = 10_000;

/// Brings the file to [`CURRENT`], or refuses it; returns the format found.
pub fn upgrade(txn: &WriteTransaction, data_dir: &Path) -> StoreResult<u64> {
    let found = txn.open_table(META)?.get(FORMAT_KEY)?.map(|v| v.value());
    match found {
        Some(CURRENT) => return Ok(CURRENT),
        Some(found @ (3 | 4)) => {
            super::listings::build(txn)?;
            txn.open_table(META)?.insert(FORMAT_KEY, CURRENT)?;
            return Ok(found);
        }
        Some(newer) if newer > CURRENT => {
            return Err(StoreError::Failed(format!(
                "the data directory is in format {newer}, newer than this build's {CURRENT}: \
                 run the clickledger release that wrote it (or newer), or restore a backup"
            )))
        }
        _ => {}
    }
    let tables: Vec<String> = txn.list_tables()?.map(|t| t.name().to_string()).collect();
    let mut segments = Segments::for_upgrade(data_dir)?;
    let mut mover = Mover { segments: &mut segments, group: Vec::with_capacity(MOVE_BATCH) };
    if tables.iter().any(|t| t == OLD_CLICKS.name()) {
        for row in txn.open_table(OLD_CLICKS)?.iter()? {
            mover.push(vec![super::dec(row?.1.value())?])?;
        }
        txn.delete_table(OLD_CLICKS)?;
    }
    if tables.iter().any(|t| t == OLD_LOG.name()) {
        for row in txn.open_table(OLD_LOG)?.iter()? {
            let (key, bytes) = row?;
            mover.push(clicklog::decode(CampaignId(key.value().0), bytes.value())?)?;
        }
        txn.delete_table(OLD_LOG)?;
    }
    mover.flush()?;
    set_checkpoint(txn, segments.end())?;
    super::listings::build(txn)?;
    txn.open_table(META)?.insert(FORMAT_KEY, CURRENT)?;
    Ok(found.unwrap_or(1))
}

/// Old clicks into segments, `MOVE_BATCH` per append (one sync each).
struct Mover<'a> {
    segments: &'a mut Segments,
    group: Vec<Click>,
}

impl Mover<'_> {
    fn push(&mut self, clicks: Vec<Click>) -> StoreResult<()> {
        self.group.extend(clicks);
        if self.group.len() >= MOVE_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> StoreResult<()> {
        if !self.group.is_empty() {
            self.segments.append(&self.group.iter().collect::<Vec<_>>())?;
            self.group.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{AffiliateId, CampaignId, ClickId};
    use crate::domain::model::IpHash;
    use crate::store::embedded::EmbeddedStore;
    use crate::store::Store;

    fn old_click(campaign: u64, n: u128) -> Click {
        Click {
            id: ClickId(n),
            campaign_id: CampaignId(campaign),
            affiliate_id: AffiliateId(3),
            tracking_code: "CODE".into(),
            at: 1_800_000_000,
            ip_hash: IpHash([9; 16]),
            user_agent: "Mozilla/5.0".into(),
            referer: String::new(),
            flagged: n == 7,
            subs: Default::default(),
            duplicate: false,
            capped: false,
            paid_traffic: false,
        }
    }

    /// A data file as format 1 wrote it: JSON click rows, no version.
    fn write_format_1(dir: &std::path::Path, clicks: &[Click]) {
        let db = redb::Database::create(dir.join("clickledger.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(OLD_CLICKS).unwrap();
            for c in clicks {
                table.insert((c.campaign_id.0, c.id.0), serde_json::to_vec(c).unwrap().as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }

    #[tokio::test]
    async fn a_format_1_file_has_its_clicks_moved_into_the_log_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let clicks: Vec<Click> = (1..=2500).map(|n| old_click(if n % 2 == 0 { 1 } else { 2 }, n)).collect();
        write_format_1(dir.path(), &clicks);
        let store = EmbeddedStore::open(dir.path(), 16).unwrap();
        for probe in [2u128, 7, 2500, 1999] {
            let campaign = CampaignId(if probe % 2 == 0 { 1 } else { 2 });
            let found = store.get_click(campaign, ClickId(probe)).await.unwrap().expect("moved, not lost");
            assert_eq!(
                (found.id, found.flagged, found.user_agent.as_str()),
                (ClickId(probe), probe == 7, "Mozilla/5.0")
            );
        }
        drop(store);
        // The writer thread lets go of the file once it sees the store gone.
        let file = dir.path().join("clickledger.redb");
        let db = (0..500)
            .find_map(|_| {
                redb::Database::open(&file).ok().or_else(|| {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    None
                })
            })
            .expect("the file is released");
        let txn = db.begin_write().unwrap();
        assert!(!txn.list_tables().unwrap().any(|t| t.name() == OLD_CLICKS.name()), "the old table is gone");
        assert_eq!(txn.open_table(META).unwrap().get(FORMAT_KEY).unwrap().unwrap().value(), CURRENT);
    }

    /// A data file as format 2 wrote it: batch records in `click_log`.
    fn write_format_2(dir: &std::path::Path, batches: &[Vec<Click>]) {
        let db = redb::Database::create(dir.join("clickledger.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            txn.open_table(META).unwrap().insert(FORMAT_KEY, 2).unwrap();
            let mut table = txn.open_table(OLD_LOG).unwrap();
            for batch in batches {
                let key = (batch[0].campaign_id.0, batch[0].id.0);
                table.insert(key, clicklog::encode(&batch.iter().collect::<Vec<_>>()).as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }

    #[tokio::test]
    async fn a_format_2_file_has_its_records_moved_into_segments_and_counts_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let batches: Vec<Vec<Click>> =
            (0..30u128).map(|b| (1..=100).map(|n| old_click((b % 3) as u64, b * 1000 + n)).collect()).collect();
        write_format_2(dir.path(), &batches);
        let store = EmbeddedStore::open(dir.path(), 16).unwrap();
        for probe in [1u128, 7, 29_100, 15_050] {
            let campaign = CampaignId((probe / 1000 % 3) as u64);
            let found = store.get_click(campaign, ClickId(probe)).await.unwrap().expect("moved, not lost");
            assert_eq!((found.id, found.campaign_id), (ClickId(probe), campaign));
        }
        // The old counters (none were written here) are the counters: the
        // moved clicks are behind the checkpoint, not replayed.
        assert_eq!(store.get_stats(CampaignId(0)).await.unwrap().clicks, 0);
        drop(store);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let store = (0..100)
            .find_map(|_| {
                EmbeddedStore::open(dir.path(), 16).ok().or_else(|| {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    None
                })
            })
            .expect("reopens");
        assert_eq!(
            store.get_stats(CampaignId(0)).await.unwrap().clicks,
            0,
            "nothing is replayed on the next open either"
        );
        assert!(store.get_click(CampaignId(2), ClickId(2_050)).await.unwrap().is_some());
    }

    /// Opens the store at `dir`, waiting for an earlier one's writer to let go.
    /// The data file opened bare, once the store that had it let go.
    fn raw_db(dir: &std::path::Path) -> redb::Database {
        (0..100)
            .find_map(|_| {
                redb::Database::open(dir.join("clickledger.redb")).ok().or_else(|| {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    None
                })
            })
            .expect("the file is released")
    }

    fn reopen(dir: &std::path::Path) -> EmbeddedStore {
        (0..100)
            .find_map(|_| {
                EmbeddedStore::open(dir, 16).ok().or_else(|| {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    None
                })
            })
            .expect("reopens")
    }

    #[tokio::test]
    async fn a_format_3_file_gains_the_change_feed_and_keeps_its_clicks_and_records() {
        use crate::domain::model::Lead;
        use crate::store::{Batch, Feed, FeedCursor, Keyed};
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), 16).unwrap();
        let lead = Lead::verified(CampaignId(1), AffiliateId(3), "CODE".into(), "o-1".into(), 1_800_000_000);
        let batch = Batch { clicks: vec![old_click(1, 5)], keyed: vec![Keyed::Lead(lead)], ..Default::default() };
        store.commit(std::sync::Arc::new(batch)).await.unwrap();
        drop(store);
        std::thread::sleep(std::time::Duration::from_millis(200));
        {
            // Back to what format 3 wrote: no feed table, format 3.
            let db = raw_db(dir.path());
            let txn = db.begin_write().unwrap();
            txn.delete_table(super::super::feed::CHANGES).unwrap();
            txn.open_table(META).unwrap().insert(FORMAT_KEY, 3).unwrap();
            txn.commit().unwrap();
        }
        let store = reopen(dir.path());
        assert!(store.get_click(CampaignId(1), ClickId(5)).await.unwrap().is_some(), "the click log is untouched");
        assert!(store.get_lead(CampaignId(1), "o-1").await.unwrap().is_some());
        assert_eq!(store.get_stats(CampaignId(1)).await.unwrap().clicks, 1, "counted once");
        let feed = store.changes(&FeedCursor::default(), 0, 10).await.unwrap();
        assert!(feed.changes.is_empty(), "the feed starts after the upgrade");
        drop(store);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let store = reopen(dir.path());
        assert_eq!(store.get_stats(CampaignId(1)).await.unwrap().clicks, 1, "and is format 4 from then on");
    }

    #[tokio::test]
    async fn a_format_4_file_gains_the_listing_indexes_of_what_it_holds() {
        use crate::domain::ids::AdvertiserId;
        use crate::domain::model::{Campaign, TrackingCode};
        use crate::store::Store;
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), 16).unwrap();
        let campaign: Campaign = serde_json::from_value(serde_json::json!({
            "id": "cmp_0000000000000007", "advertiserId": "adv_0000000000000002", "name": "c",
            "landingUrl": "https://a.example/", "compensationModel": "FIXED", "payoutCents": 1, "payoutBp": null,
            "promoCode": null, "allowedOrigins": [], "fieldMapping": {}, "attributionWindowDays": 1, "holdDays": 0,
            "status": "active", "testTrackingCode": "T", "publishableKey": "pk", "trackingConfirmedAt": null,
            "createdAt": 0,
        }))
        .unwrap();
        store.put_campaign(&campaign).await.unwrap();
        let code = TrackingCode {
            code: "AFF3CODE".into(),
            campaign_id: CampaignId(7),
            affiliate_id: Some(AffiliateId(3)),
            created_at: 0,
        };
        store.insert_tracking_code(&code).await.unwrap();
        drop(store);
        std::thread::sleep(std::time::Duration::from_millis(200));
        {
            // Back to what format 4 wrote: no listing indexes.
            let db = raw_db(dir.path());
            let txn = db.begin_write().unwrap();
            txn.delete_table(super::super::listings::BY_ADVERTISER).unwrap();
            txn.delete_table(super::super::listings::BY_AFFILIATE).unwrap();
            txn.open_table(META).unwrap().insert(FORMAT_KEY, 4).unwrap();
            txn.commit().unwrap();
        }
        let store = reopen(dir.path());
        assert_eq!(store.campaign_ids_of(AdvertiserId(2)).await.unwrap(), vec![CampaignId(7)]);
        assert_eq!(store.codes_of_affiliate(AffiliateId(3)).await.unwrap(), vec![code]);
    }

    #[test]
    fn a_file_of_a_newer_format_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = redb::Database::create(dir.path().join("clickledger.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META).unwrap().insert(FORMAT_KEY, CURRENT + 1).unwrap();
            txn.commit().unwrap();
        }
        let refused = EmbeddedStore::open(dir.path(), 16).err().expect("refused").to_string();
        assert!(refused.contains(&format!("format {}", CURRENT + 1)) && refused.contains("newer"), "{refused}");
    }
}
