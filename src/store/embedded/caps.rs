//! Caps on the embedded store: each window's usage and each record's claim
//! in tables of their own, checked and written in the record's own
//! transaction, so a cap is exact (one writer) and a claim is given back
//! exactly once (its row goes with the decrement).

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

use super::{dec, enc};
use crate::domain::caps::{Claim, Usage, Window};
use crate::domain::ids::CampaignId;
use crate::store::{DedupKey, StoreResult};

/// (campaign, window key) → JSON `Usage`.
pub(super) const CAP_USAGE: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("cap_usage");
/// (campaign, record's dedup key text) → JSON `Claim`.
pub(super) const CAP_CLAIMS: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("cap_claims");

pub(super) fn open_tables(txn: &WriteTransaction) -> StoreResult<()> {
    txn.open_table(CAP_USAGE)?;
    txn.open_table(CAP_CLAIMS)?;
    Ok(())
}

pub(super) fn table_names() -> Vec<String> {
    use redb::TableHandle;
    vec![CAP_USAGE.name().to_string(), CAP_CLAIMS.name().to_string()]
}

/// Takes the claim's capacity if every window admits it; `false` (nothing
/// written) if one refuses. A record that already holds a claim keeps it.
pub(super) fn admit(txn: &WriteTransaction, campaign: CampaignId, key: &DedupKey, claim: &Claim) -> StoreResult<bool> {
    let mut claims = txn.open_table(CAP_CLAIMS)?;
    let text = key.text();
    if claims.get((campaign.0, text.as_str()))?.is_some() {
        return Ok(true);
    }
    let mut usage = txn.open_table(CAP_USAGE)?;
    let keys: Vec<String> = claim.bounds.iter().map(|b| b.window.key()).collect();
    let mut used = Vec::with_capacity(keys.len());
    for k in &keys {
        used.push(read(&usage, campaign, k)?);
    }
    if claim.check(&used).is_err() {
        return Ok(false);
    }
    for (k, u) in keys.iter().zip(used) {
        usage.insert((campaign.0, k.as_str()), enc(&u.plus(claim.cents)).as_slice())?;
    }
    claims.insert((campaign.0, text.as_str()), enc(claim).as_slice())?;
    Ok(true)
}

/// Gives a claim back: its row goes and its windows shrink by what it took.
pub(super) fn release(txn: &WriteTransaction, campaign: CampaignId, key: &DedupKey) -> StoreResult<bool> {
    let mut claims = txn.open_table(CAP_CLAIMS)?;
    let text = key.text();
    let Some(claim) = claims.remove((campaign.0, text.as_str()))?.map(|v| dec::<Claim>(v.value())).transpose()? else {
        return Ok(false);
    };
    let mut usage = txn.open_table(CAP_USAGE)?;
    for bound in &claim.bounds {
        let k = bound.window.key();
        let u = read(&usage, campaign, &k)?;
        usage.insert((campaign.0, k.as_str()), enc(&u.minus(claim.cents)).as_slice())?;
    }
    Ok(true)
}

pub(super) fn usage(txn: &ReadTransaction, campaign: CampaignId, windows: &[Window]) -> StoreResult<Vec<Usage>> {
    let table = txn.open_table(CAP_USAGE)?;
    windows.iter().map(|w| read(&table, campaign, &w.key())).collect()
}

fn read(
    table: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
    campaign: CampaignId,
    key: &str,
) -> StoreResult<Usage> {
    Ok(match table.get((campaign.0, key))? {
        Some(v) => dec(v.value())?,
        None => Usage::default(),
    })
}
