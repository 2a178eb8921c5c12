//! The change feed on the embedded store: `changes` rows numbered in the
//! transaction of their cause (see `store::feed`). Numbers come from a
//! counter in `meta`, never from the table's last row, so expiring every
//! row cannot make a number come back below a reader's cursor.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::format::META;
use super::*;

/// Change number → its time (8 bytes, big-endian, so expiry reads no JSON)
/// and the change as JSON.
pub(super) const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");
const NEXT_KEY: &str = "change_next";

/// Numbers `records` and writes them, in the caller's transaction.
pub(super) fn append(txn: &WriteTransaction, records: &[&Keyed]) -> StoreResult<()> {
    let changes: Vec<Change> = records.iter().map(|r| Change::recorded(r)).collect();
    append_changes(txn, &changes)
}

/// Numbers `changes` and writes them, in the caller's transaction.
pub(super) fn append_changes(txn: &WriteTransaction, changes: &[Change]) -> StoreResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut meta = txn.open_table(META)?;
    let mut next = meta.get(NEXT_KEY)?.map_or(1, |v| v.value());
    let mut table = txn.open_table(CHANGES)?;
    for change in changes {
        let mut row = change.at.to_be_bytes().to_vec();
        serde_json::to_writer(&mut row, change)?;
        table.insert(next, row.as_slice())?;
        next += 1;
    }
    meta.insert(NEXT_KEY, next)?;
    Ok(())
}

pub(super) fn read(txn: &redb::ReadTransaction, after: &FeedCursor, limit: usize) -> StoreResult<FeedPage> {
    let table = txn.open_table(CHANGES)?;
    let from = u64::try_from(after.at(0)).unwrap_or(u64::MAX).saturating_add(1);
    let mut page = FeedPage { changes: Vec::new(), next: after.clone() };
    for row in table.range(from..)?.take(limit) {
        let (seq, value) = row?;
        let bytes = value.value();
        let change: Change = serde_json::from_slice(bytes.get(8..).unwrap_or_default())?;
        page.changes.push(change);
        page.next.0.insert(0, u128::from(seq.value()));
    }
    Ok(page)
}

/// Deletes up to `limit` of the oldest rows whose time is before `cutoff`.
pub(super) fn expire(txn: &WriteTransaction, cutoff: u64, limit: usize) -> StoreResult<usize> {
    let mut table = txn.open_table(CHANGES)?;
    let mut old = Vec::new();
    for row in table.range(0u64..)?.take(limit) {
        let (seq, value) = row?;
        let at = value.value().get(..8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes);
        if at >= cutoff {
            break;
        }
        old.push(seq.value());
    }
    for seq in &old {
        table.remove(seq)?;
    }
    Ok(old.len())
}
