//! The click log's reads and expiry (its records are written by
//! `events::apply`, encoded by `store::clicklog`).

use super::*;

/// Deletes up to `limit` click records whose first click id is below
/// `before`. Each campaign's records are in id order, so its old ones are a
/// prefix of its range: the scan skips from one campaign to the next.
pub(super) fn expire_click_records(txn: &WriteTransaction, before: u128, limit: usize) -> StoreResult<usize> {
    let mut log = txn.open_table(CLICK_LOG).map_err(err)?;
    let mut removed = 0;
    let mut next_campaign = Some(0u64);
    while let (Some(from), true) = (next_campaign, removed < limit) {
        let first = log.range((from, 0u128)..).map_err(err)?.next().transpose().map_err(err)?;
        let Some(campaign) = first.map(|(key, _)| key.value().0) else { break };
        let old: Vec<(u64, u128)> = log
            .range((campaign, 0u128)..(campaign, before))
            .map_err(err)?
            .take(limit - removed)
            .map(|r| r.map(|(k, _)| k.value()))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        for key in &old {
            log.remove(key).map_err(err)?;
        }
        removed += old.len();
        next_campaign = campaign.checked_add(1);
    }
    Ok(removed)
}

/// A click by id, searching the campaign's log newest first (tests and
/// audits; nothing on the request path reads clicks back).
pub(super) fn find_click(txn: &redb::ReadTransaction, campaign: CampaignId, id: ClickId) -> StoreResult<Option<Click>> {
    let log = txn.open_table(CLICK_LOG).map_err(err)?;
    for record in log.range((campaign.0, 0u128)..=(campaign.0, u128::MAX)).map_err(err)?.rev() {
        let (_, bytes) = record.map_err(err)?;
        let clicks = clicklog::decode(campaign, bytes.value()).map_err(err)?;
        if let Some(found) = clicks.into_iter().find(|c| c.id == id) {
            return Ok(Some(found));
        }
    }
    Ok(None)
}
