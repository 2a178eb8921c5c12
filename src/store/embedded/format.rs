//! The data file's format version, and the upgrades to the current one,
//! run in the opening transaction (so an upgrade is all or nothing).
//!
//! - Format 1 (through 0.1 of issue 12): one JSON row per click in `clicks`;
//!   no version recorded.
//! - Format 2: clicks as a log of batch records in `click_log`
//!   (`store::clicklog`). Opening a format 1 file moves its clicks into the
//!   log, 1000 per record, and drops the old table; counters are unchanged.
//!
//! A file of a newer format than this build knows is refused, never read.

use redb::{ReadableTable, TableDefinition, TableHandle, WriteTransaction};

use super::{err, CLICK_LOG};
use crate::domain::model::Click;
use crate::store::{clicklog, StoreError, StoreResult};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const FORMAT_KEY: &str = "format";
pub const CURRENT: u64 = 2;

/// Format 1's click rows: (campaign, click id) → JSON.
const OLD_CLICKS: TableDefinition<(u64, u128), &[u8]> = TableDefinition::new("clicks");
/// Clicks per record when moving format 1 rows into the log.
const MOVE_BATCH: usize = 1000;

/// Brings the file to [`CURRENT`], or refuses it; returns the format found.
pub fn upgrade(txn: &WriteTransaction) -> StoreResult<u64> {
    let found = txn.open_table(META).map_err(err)?.get(FORMAT_KEY).map_err(err)?.map(|v| v.value());
    match found {
        Some(CURRENT) => return Ok(CURRENT),
        Some(newer) if newer > CURRENT => {
            return Err(StoreError(format!(
                "the data directory is in format {newer}, newer than this build's {CURRENT}: \
                 run the clickledger release that wrote it (or newer), or restore a backup"
            )))
        }
        _ => {}
    }
    let has_old_clicks = txn.list_tables().map_err(err)?.any(|t| t.name() == OLD_CLICKS.name());
    if has_old_clicks {
        move_clicks(txn)?;
        txn.delete_table(OLD_CLICKS).map_err(err)?;
    }
    txn.open_table(META).map_err(err)?.insert(FORMAT_KEY, CURRENT).map_err(err)?;
    Ok(found.unwrap_or(1))
}

/// Format 1's rows, in (campaign, id) order, into log records.
fn move_clicks(txn: &WriteTransaction) -> StoreResult<()> {
    let old = txn.open_table(OLD_CLICKS).map_err(err)?;
    let mut log = txn.open_table(CLICK_LOG).map_err(err)?;
    let mut group: Vec<Click> = Vec::with_capacity(MOVE_BATCH);
    let mut write = |group: &mut Vec<Click>| -> StoreResult<()> {
        if let Some(first) = group.first() {
            let key = (first.campaign_id.0, first.id.0);
            log.insert(key, clicklog::encode(&group.iter().collect::<Vec<_>>()).as_slice()).map_err(err)?;
        }
        group.clear();
        Ok(())
    };
    for row in old.iter().map_err(err)? {
        let (_, json) = row.map_err(err)?;
        let click: Click = super::dec(json.value())?;
        let other_campaign = group.first().is_some_and(|c| c.campaign_id != click.campaign_id);
        if other_campaign || group.len() == MOVE_BATCH {
            write(&mut group)?;
        }
        group.push(click);
    }
    write(&mut group)
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
        let log = txn.open_table(CLICK_LOG).unwrap();
        let moved: usize = log
            .iter()
            .unwrap()
            .map(|r| clicklog::decode(CampaignId(r.as_ref().unwrap().0.value().0), r.unwrap().1.value()).unwrap().len())
            .sum();
        assert_eq!(moved, 2500);
        assert_eq!(txn.open_table(META).unwrap().get(FORMAT_KEY).unwrap().unwrap().value(), CURRENT);
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
