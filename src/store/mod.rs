//! Storage behind one trait, shaped by the access patterns so that each method
//! maps onto one table and one statement of a CQL backend:
//!
//! | method                         | pattern                                  |
//! |--------------------------------|------------------------------------------|
//! | `put_*` / `get_*`              | point write / point read by id           |
//! | `replace_campaign`             | compare-and-set on the campaign version  |
//! | `insert_tracking_code`         | insert-if-absent on (campaign, affiliate)|
//! | `commit`                       | batched append + insert-if-absent keys   |
//! | `dedup_keys`                   | one campaign's keys (bloom rebuild)      |
//! | `list_*`                       | start-up load of the small catalog       |
//!
//! Scans by due time (escrow release, referral expiry) arrive with the money
//! path; nothing in the engine core needs them yet.

pub mod cql;
pub mod embedded;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::ids::*;
use crate::domain::keys::{KeyHash, Principal};
use crate::domain::model::*;

#[derive(Debug, thiserror::Error)]
#[error("storage failed: {0}")]
pub struct StoreError(pub String);

pub type StoreResult<T> = Result<T, StoreError>;

/// A write whose key must be recorded at most once per campaign.
#[derive(Clone, Debug)]
pub enum Keyed {
    /// Keyed by (campaign, click id): one conversion per click.
    Conversion(Conversion),
    /// Keyed by (campaign, externalId): the seed's postback idempotency.
    Lead(Lead),
}

impl Keyed {
    /// The key that may be recorded only once per campaign.
    pub fn dedup_key(&self) -> DedupKey {
        match self {
            Keyed::Conversion(c) => DedupKey::Click(c.click_id),
            Keyed::Lead(l) => DedupKey::External(l.external_id.clone()),
        }
    }

    pub fn campaign(&self) -> CampaignId {
        match self {
            Keyed::Conversion(c) => c.campaign_id,
            Keyed::Lead(l) => l.campaign_id,
        }
    }
}

/// What became of one keyed write.
#[derive(Clone, Debug)]
pub enum Outcome {
    Inserted,
    /// The key was already there; this is the record that won.
    Existing(Keyed),
}

/// One group commit: everything in it is durable together or not at all.
/// Stats deltas carry what the store cannot see (duplicates, ignored); the
/// store itself counts what it inserts (clicks, conversions, leads, payout),
/// so a replayed batch never counts twice.
#[derive(Debug, Default)]
pub struct Batch {
    pub clicks: Vec<Click>,
    pub keyed: Vec<Keyed>,
    pub stats: Vec<(CampaignId, CampaignStats)>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.clicks.len() + self.keyed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.stats.iter().all(|(_, s)| s.is_empty())
    }
}

/// A dedup key as the campaign actor's bloom filter sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DedupKey {
    Click(ClickId),
    External(String),
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores the advertiser and its secret key's hash in one write.
    async fn put_advertiser(&self, advertiser: &Advertiser, key: KeyHash) -> StoreResult<()>;
    async fn get_advertiser(&self, id: AdvertiserId) -> StoreResult<Option<Advertiser>>;
    async fn put_affiliate(&self, affiliate: &Affiliate, key: KeyHash) -> StoreResult<()>;
    async fn get_affiliate(&self, id: AffiliateId) -> StoreResult<Option<Affiliate>>;
    async fn get_principal(&self, key: &KeyHash) -> StoreResult<Option<Principal>>;
    /// Records another key (publishable keys are stored like secret ones).
    async fn put_principal(&self, key: KeyHash, principal: &Principal) -> StoreResult<()>;

    /// Stores a new campaign.
    async fn put_campaign(&self, campaign: &Campaign) -> StoreResult<()>;
    /// Replaces a campaign only if the stored one still has `expected_version`
    /// (compare-and-set); `false` means someone else edited it first.
    async fn replace_campaign(&self, campaign: &Campaign, expected_version: u64) -> StoreResult<bool>;
    async fn get_campaign(&self, id: CampaignId) -> StoreResult<Option<Campaign>>;
    async fn list_campaigns(&self) -> StoreResult<Vec<Campaign>>;

    /// Records `code` unless its (campaign, affiliate) pair already has one;
    /// returns whichever code is now on record, so approving twice is stable.
    async fn insert_tracking_code(&self, code: &TrackingCode) -> StoreResult<TrackingCode>;
    async fn get_tracking_code(&self, code: &str) -> StoreResult<Option<TrackingCode>>;
    async fn list_tracking_codes(&self) -> StoreResult<Vec<TrackingCode>>;

    /// Durably applies one group commit; one outcome per `batch.keyed` entry.
    async fn commit(&self, batch: Arc<Batch>) -> StoreResult<Vec<Outcome>>;
    async fn get_conversion(&self, campaign: CampaignId, click: ClickId) -> StoreResult<Option<Conversion>>;
    async fn get_lead(&self, campaign: CampaignId, external_id: &str) -> StoreResult<Option<Lead>>;
    async fn get_click(&self, campaign: CampaignId, click: ClickId) -> StoreResult<Option<Click>>;
    async fn dedup_keys(&self, campaign: CampaignId) -> StoreResult<Vec<DedupKey>>;
    async fn get_stats(&self, campaign: CampaignId) -> StoreResult<CampaignStats>;
}

/// What inserting `keyed` adds to its campaign's counters.
pub fn recorded_delta(keyed: &Keyed) -> CampaignStats {
    match keyed {
        Keyed::Conversion(_) => CampaignStats { conversions_recorded: 1, ..Default::default() },
        Keyed::Lead(l) => CampaignStats { postbacks_recorded: 1, payout_cents: l.payout_cents, ..Default::default() },
    }
}

/// What a newly stored click adds to its campaign's counters.
pub fn click_delta(click: &Click) -> CampaignStats {
    let (clicks, bot_clicks) = if click.flagged { (0, 1) } else { (1, 0) };
    CampaignStats { clicks, bot_clicks, ..Default::default() }
}
