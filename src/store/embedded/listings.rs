//! The listing indexes: an advertiser's campaigns and an affiliate's
//! approvals, so the listing APIs read one key range instead of every
//! campaign. Written in the same transaction as the row they index; built
//! from the campaigns and approvals on the upgrade to format 5.

use redb::{ReadableTable, TableDefinition, TableHandle, WriteTransaction};

use super::{dec, APPROVALS, CAMPAIGNS, CODES};
use crate::domain::ids::*;
use crate::domain::model::{Campaign, TrackingCode};
use crate::store::StoreResult;

/// (advertiser, campaign) → ().
pub(super) const BY_ADVERTISER: TableDefinition<(u64, u64), ()> = TableDefinition::new("campaigns_by_advertiser");
/// (affiliate, campaign) → its code on that campaign.
pub(super) const BY_AFFILIATE: TableDefinition<(u64, u64), &str> = TableDefinition::new("approvals_by_affiliate");

pub(super) fn table_names() -> [String; 2] {
    [BY_ADVERTISER.name().to_string(), BY_AFFILIATE.name().to_string()]
}

pub(super) fn open_tables(txn: &WriteTransaction) -> StoreResult<()> {
    txn.open_table(BY_ADVERTISER)?;
    txn.open_table(BY_AFFILIATE)?;
    Ok(())
}

pub(super) fn index_campaign(txn: &WriteTransaction, c: &Campaign) -> StoreResult<()> {
    txn.open_table(BY_ADVERTISER)?.insert((c.advertiser_id.0, c.id.0), ())?;
    Ok(())
}

pub(super) fn index_code(txn: &WriteTransaction, code: &TrackingCode) -> StoreResult<()> {
    if let Some(aff) = code.affiliate_id {
        txn.open_table(BY_AFFILIATE)?.insert((aff.0, code.campaign_id.0), code.code.as_str())?;
    }
    Ok(())
}

/// Indexes every campaign and approval already stored (the format 5 upgrade).
pub(super) fn build(txn: &WriteTransaction) -> StoreResult<()> {
    let campaigns: Vec<Campaign> =
        txn.open_table(CAMPAIGNS)?.iter()?.map(|row| dec(row?.1.value())).collect::<StoreResult<_>>()?;
    for c in &campaigns {
        index_campaign(txn, c)?;
    }
    let codes: Vec<TrackingCode> =
        txn.open_table(CODES)?.iter()?.map(|row| dec(row?.1.value())).collect::<StoreResult<_>>()?;
    for code in &codes {
        index_code(txn, code)?;
    }
    Ok(())
}

pub(super) fn campaign_ids_of(txn: &redb::ReadTransaction, advertiser: AdvertiserId) -> StoreResult<Vec<CampaignId>> {
    let table = txn.open_table(BY_ADVERTISER)?;
    let rows = table.range((advertiser.0, 0)..=(advertiser.0, u64::MAX))?;
    rows.map(|row| Ok(CampaignId(row?.0.value().1))).collect()
}

/// A campaign's codes, through `approvals` (keyed (campaign, affiliate)).
pub(super) fn codes_of_campaign(txn: &redb::ReadTransaction, campaign: CampaignId) -> StoreResult<Vec<TrackingCode>> {
    codes_under(txn, APPROVALS, campaign.0)
}

/// An affiliate's codes, through its index.
pub(super) fn codes_of_affiliate(
    txn: &redb::ReadTransaction,
    affiliate: AffiliateId,
) -> StoreResult<Vec<TrackingCode>> {
    codes_under(txn, BY_AFFILIATE, affiliate.0)
}

/// The codes an index of (owner, other) → code names under `owner`.
fn codes_under(
    txn: &redb::ReadTransaction,
    index: TableDefinition<(u64, u64), &str>,
    owner: u64,
) -> StoreResult<Vec<TrackingCode>> {
    let index = txn.open_table(index)?;
    let codes = txn.open_table(CODES)?;
    let mut out = Vec::new();
    for row in index.range((owner, 0)..=(owner, u64::MAX))? {
        if let Some(found) = codes.get(row?.1.value())? {
            out.push(dec(found.value())?);
        }
    }
    Ok(out)
}
