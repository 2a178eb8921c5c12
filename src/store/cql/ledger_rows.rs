//! Typed rows of the ledger tables (migration 2). Rows bound into
//! conditional batches are positional (`enforce_order`): their CQL repeats a
//! column name in the `IF`, which name matching cannot tell apart.

use scylla::{DeserializeRow, SerializeRow};

use crate::domain::money::{Balance, WalletTotals};
use crate::store::{StoreError, StoreResult};

/// A campaign's balance (static columns); a partition never funded reads as nulls.
#[derive(DeserializeRow, Default)]
pub struct StaticsRow {
    pub funded: Option<i64>,
    pub available: Option<i64>,
    pub escrowed: Option<i64>,
    pub clearing: Option<i64>,
    pub version: Option<i64>,
}

impl StaticsRow {
    pub fn balance(&self) -> Balance {
        Balance {
            funded_cents: self.funded.unwrap_or(0),
            available_cents: self.available.unwrap_or(0),
            escrowed_cents: self.escrowed.unwrap_or(0),
            clearing_cents: self.clearing.unwrap_or(0),
        }
    }
}

/// The payout row with the partition's statics beside it.
#[derive(DeserializeRow)]
pub struct PayoutMoneyRow {
    pub status: Option<String>,
    pub body: Option<String>,
    pub funded: Option<i64>,
    pub available: Option<i64>,
    pub escrowed: Option<i64>,
    pub clearing: Option<i64>,
    pub version: Option<i64>,
}

impl PayoutMoneyRow {
    pub fn statics(&self) -> StaticsRow {
        StaticsRow {
            funded: self.funded,
            available: self.available,
            escrowed: self.escrowed,
            clearing: self.clearing,
            version: self.version,
        }
    }
}

#[derive(DeserializeRow)]
pub struct IdBodyRow {
    pub id: String,
    pub body: Option<String>,
}

#[derive(DeserializeRow)]
pub struct IdRow {
    pub id: String,
}

/// A static-only partition answers a body query with one null row.
#[derive(DeserializeRow)]
pub struct MaybeBodyRow {
    pub body: Option<String>,
}

#[derive(DeserializeRow)]
pub struct CampaignOfRow {
    pub campaign_id: i64,
}

/// Schema version 3 keeps a wallet's totals as `WalletTotals` JSON in the
/// `totals` static (128-bit sums); the bigint statics are read only for
/// wallets no version-3 node has written yet.
#[derive(DeserializeRow, Default)]
pub struct WalletTotalsRow {
    pub pending: Option<i64>,
    pub available: Option<i64>,
    pub reversed: Option<i64>,
    pub totals: Option<String>,
    pub version: Option<i64>,
}

impl WalletTotalsRow {
    pub fn totals(&self) -> StoreResult<WalletTotals> {
        if let Some(text) = &self.totals {
            return serde_json::from_str(text).map_err(|e| StoreError::Failed(format!("wallet totals: {e}")));
        }
        Ok(WalletTotals {
            pending_cents: self.pending.unwrap_or(0).into(),
            available_cents: self.available.unwrap_or(0).into(),
            reversed_cents: self.reversed.unwrap_or(0).into(),
        })
    }
}

#[derive(DeserializeRow)]
pub struct DueRow {
    pub at: i64,
    pub item: String,
}

#[derive(DeserializeRow)]
pub struct BucketRow {
    pub bucket: i64,
}

#[derive(DeserializeRow)]
pub struct WatermarkRow {
    pub bucket: Option<i64>,
    pub version: Option<i64>,
}

#[derive(DeserializeRow)]
pub struct LeadKeyRow {
    pub campaign_id: i64,
    pub external_id: String,
}

#[derive(DeserializeRow)]
pub struct ConversionKeyRow {
    pub campaign_id: i64,
    pub click_id: Vec<u8>,
}

#[derive(DeserializeRow)]
pub struct LeadIndexRow {
    pub lead_id: Vec<u8>,
    pub external_id: String,
}

#[derive(SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
pub struct PayoutInsert {
    pub campaign_id: i64,
    pub id: String,
    pub status: String,
    pub body: String,
}

#[derive(SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
pub struct MoneyKey {
    pub campaign_id: i64,
    pub id: String,
}

#[derive(SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
pub struct PayoutUpdate {
    pub status: String,
    pub body: String,
    pub campaign_id: i64,
    pub id: String,
    pub expected: String,
}

#[derive(SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
pub struct EntryInsert {
    pub campaign_id: i64,
    pub id: String,
    pub body: String,
}

/// New balance, bumped version, and the version it must still have (null
/// for a partition never funded: `IF version = null` holds there).
#[derive(SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
pub struct BalanceUpdate {
    pub funded: i64,
    pub available: i64,
    pub escrowed: i64,
    pub clearing: i64,
    pub version: i64,
    pub campaign_id: i64,
    pub expected: Option<i64>,
}

impl BalanceUpdate {
    pub fn new(campaign_id: i64, b: &Balance, expected: Option<i64>) -> Self {
        Self {
            funded: b.funded_cents,
            available: b.available_cents,
            escrowed: b.escrowed_cents,
            clearing: b.clearing_cents,
            version: expected.unwrap_or(0) + 1,
            campaign_id,
            expected,
        }
    }
}

#[derive(SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
pub struct WalletLineInsert {
    pub affiliate_id: i64,
    pub at: i64,
    pub id: String,
    pub body: String,
}

#[derive(SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
pub struct WalletTotalsUpdate {
    pub totals: String,
    pub version: i64,
    pub affiliate_id: i64,
    pub expected: Option<i64>,
}

impl WalletTotalsUpdate {
    pub fn new(affiliate_id: i64, t: &WalletTotals, expected: Option<i64>) -> Self {
        Self {
            totals: serde_json::to_string(t).expect("totals always serialize"),
            version: expected.unwrap_or(0) + 1,
            affiliate_id,
            expected,
        }
    }
}
