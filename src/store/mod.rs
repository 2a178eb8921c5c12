//! Storage behind one trait, shaped by the access patterns so that each method
//! maps onto one table and one statement of a CQL backend:
//!
//! | method                         | pattern                                  |
//! |--------------------------------|------------------------------------------|
//! | `put_*` / `get_*`              | point write / point read by id           |
//! | `Keys::*`                      | key by hash; an owner's keys, compare-and-set |
//! | `replace_campaign`             | compare-and-set on the campaign version  |
//! | `insert_tracking_code`         | insert-if-absent on (campaign, affiliate)|
//! | `campaign_ids_of` / `codes_of_*` | one owner's partition of a listing index |
//! | `commit`                       | batched append + insert-if-absent keys   |
//! | `expire_clicks`                | range delete of old click batches (TTL on CQL) |
//! | `dedup_keys`                   | one campaign's keys, streamed in chunks  |
//! | `list_*`                       | start-up load of the small catalog       |
//! | `due` / `put_due` / `remove_due` | due-time index, oldest first per queue |
//! | `apply_move` / `fund`          | one campaign's money, compare-and-set    |
//! | `post_wallet`                  | insert-if-absent wallet lines            |
//! | `Feed::changes`                | what committed, in order, from a cursor  |
//! | `Hooks::*`                     | webhook endpoints; the outbox's deliveries and cursor |
//!
//! Money writes follow one rule on every backend: the campaign side of a
//! movement (payout status, its ledger entries, the balance row) commits as
//! one conditional write; the wallet side is a set of lines with
//! deterministic ids, inserted if absent, so repeating it is harmless. Due
//! items a movement schedules are written before it (CQL) or with it
//! (embedded), so a crash never strands a payout.

pub mod clicklog;
pub mod cql;
pub mod due;
pub mod embedded;
pub mod error;
pub mod feed;
pub mod hooks;
pub mod keys;

pub use crate::domain::keyed::{click_delta, clicks_delta, recorded_delta, DedupKey, Keyed};
pub use due::{Due, DueItem, Queue};
pub use error::StoreError;
pub use feed::{Change, ChangeEvent, Feed, FeedCursor, FeedPage};
pub use hooks::Hooks;
pub use keys::{AddKey, Keys, Listed, Revoke};

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::domain::caps::{Claim, Usage, Window};
use crate::domain::ids::*;
use crate::domain::keys::{ApiKey, KeyHash, Owner};
use crate::domain::model::*;
use crate::domain::money::{Balance, Entry, Funding, Move, Payout, WalletEntry, WalletTotals};
use crate::domain::referral::{Referral, ReferralStatus};

pub type StoreResult<T> = Result<T, StoreError>;

/// What became of a money movement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MoveOutcome {
    Applied,
    /// The stored payout no longer had the expected status; this is it now.
    Moved(Payout),
    /// Escrow only: `available` does not cover the payout.
    InsufficientFunds,
}

/// A record's payout intent taken from the escrow queue: pay `payout`
/// (`None`: the record pays nothing, or is gone) and remove `due`.
#[derive(Clone, Debug)]
pub struct PayDue {
    pub due: Due,
    pub payout: Option<Payout>,
    /// The campaign's hold, for the escrow's release time.
    pub hold_days: u32,
}

/// What paying one `PayDue` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Paid {
    /// The payout did not exist before.
    pub created: bool,
    /// The escrow applied, if the payout was awaiting funds and they covered it.
    pub escrowed: Option<Move>,
}

/// What became of a deposit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FundOutcome {
    Deposited,
    /// Its idempotency key was used before; nothing moved.
    Replayed,
    /// The campaign's deposits would pass `MAX_CAMPAIGN_FUNDS_CENTS`.
    OverLimit,
}

/// A page of an affiliate's wallet, newest lines first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalletPage {
    pub totals: WalletTotals,
    pub entries: Vec<WalletEntry>,
    /// Pass back as `before` for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Where a page of leads starts and how long it is.
#[derive(Clone, Debug)]
pub struct LeadQuery {
    pub campaign: CampaignId,
    pub status: Option<LeadStatus>,
    /// Only leads older than this one (the previous page's last id).
    pub before: Option<LeadId>,
    pub limit: usize,
}

/// Where a page of conversions starts and how long it is.
#[derive(Clone, Debug)]
pub struct ConversionQuery {
    pub campaign: CampaignId,
    pub status: Option<ConversionStatus>,
    /// Only conversions older than this one (the previous page's last id).
    pub before: Option<ConversionId>,
    pub limit: usize,
}

/// What became of one keyed write.
// Short-lived (one per keyed write, consumed by the actor that sent it), so
// boxing the record would cost an allocation per duplicate and save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Outcome {
    Inserted,
    /// Inserted as this: its cap claim changed it (counted, or rejected
    /// with `cap_reached`).
    InsertedAs(Keyed),
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
    /// Cap claims of some of `keyed` (by index): the store admits each in
    /// the record's own commit, or stores the record rejected.
    pub claims: Vec<(usize, Claim)>,
    pub stats: Vec<(CampaignId, CampaignStats)>,
}

impl Batch {
    /// The claim of `keyed[i]`, if it makes one.
    pub fn claim(&self, i: usize) -> Option<&Claim> {
        self.claims.iter().find(|(j, _)| *j == i).map(|(_, c)| c)
    }

    pub fn len(&self) -> usize {
        self.clicks.len() + self.keyed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.stats.iter().all(|(_, s)| s.is_empty())
    }
}

/// Keys per chunk of [`Store::dedup_keys`]: large enough that the channel
/// costs nothing per key, small enough (~0.5 MB) not to matter in memory.
pub const DEDUP_CHUNK: usize = 8192;

/// All of a campaign's dedup keys in one `Vec` (tests and tools; the
/// campaign actor streams them instead).
pub async fn collect_dedup_keys(store: &dyn Store, campaign: CampaignId) -> StoreResult<Vec<DedupKey>> {
    let (tx, mut rx) = mpsc::channel(4);
    let collect = async {
        let mut keys = Vec::new();
        while let Some(chunk) = rx.recv().await {
            keys.extend(chunk);
        }
        keys
    };
    let (sent, keys) = tokio::join!(store.dedup_keys(campaign, tx), collect);
    sent.map(|_| keys)
}

/// The record stored under a campaign's dedup key, if any.
pub async fn get_keyed(store: &dyn Store, campaign: CampaignId, key: &DedupKey) -> StoreResult<Option<Keyed>> {
    Ok(match key {
        DedupKey::Click(click) => store.get_conversion(campaign, *click).await?.map(Keyed::Conversion),
        DedupKey::External(ext) => store.get_lead(campaign, ext).await?.map(Keyed::Lead),
    })
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
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
    /// An advertiser's campaigns (the listing API; campaigns are few per
    /// advertiser, so one read returns them all).
    async fn campaign_ids_of(&self, advertiser: AdvertiserId) -> StoreResult<Vec<CampaignId>>;
    /// The codes of every affiliate ever approved on a campaign.
    async fn codes_of_campaign(&self, campaign: CampaignId) -> StoreResult<Vec<TrackingCode>>;
    /// An affiliate's codes: one per campaign it was ever approved on.
    async fn codes_of_affiliate(&self, affiliate: AffiliateId) -> StoreResult<Vec<TrackingCode>>;

    /// Durably applies one group commit; one outcome per `batch.keyed` entry.
    async fn commit(&self, batch: Arc<Batch>) -> StoreResult<Vec<Outcome>>;
    async fn get_conversion(&self, campaign: CampaignId, click: ClickId) -> StoreResult<Option<Conversion>>;
    async fn get_lead(&self, campaign: CampaignId, external_id: &str) -> StoreResult<Option<Lead>>;
    async fn get_click(&self, campaign: CampaignId, click: ClickId) -> StoreResult<Option<Click>>;
    /// Sends one campaign's dedup keys to `out` in chunks of at most
    /// [`DEDUP_CHUNK`] as they are read, so a bloom rebuild never holds them
    /// all at once. Stops early, without error, if the receiver is dropped.
    /// Returns how many keys it sent.
    async fn dedup_keys(&self, campaign: CampaignId, out: mpsc::Sender<Vec<DedupKey>>) -> StoreResult<u64>;
    async fn get_stats(&self, campaign: CampaignId) -> StoreResult<CampaignStats>;
    /// Raw clicks older than `keep_days` before `now` go, whole batch records
    /// at a time; counters stay. The embedded store deletes up to `limit`
    /// records per call and returns how many (call again while it returns
    /// `limit`); CQL keeps `keep_days` as the TTL of the batches it writes
    /// from now on, and the cluster drops expired ones itself (returns 0).
    async fn expire_clicks(&self, keep_days: u32, now: u64, limit: usize) -> StoreResult<usize>;

    /// Readiness: one cheap real read. `Err` means the store cannot be
    /// reached; `Ok` says whether its schema is the one this build expects.
    async fn health(&self) -> StoreResult<SchemaState>;
}

/// Whether the store's schema is the one this build expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaState {
    pub current: bool,
    /// e.g. "schema version 2 of 2", or what is wrong.
    pub detail: String,
}

/// A whole backend: all five traits on one connection or one database file.
pub trait Backend: Store + Ledger + Keys + Feed + Hooks {}

impl<T: Store + Ledger + Keys + Feed + Hooks> Backend for T {}

/// Everything after attribution: review, referrals, the due-time index and
/// the money. A trait of its own so the supervisors' tests can wrap it and
/// fail its Nth call, and so the event path's trait stays small.
#[async_trait]
pub trait Ledger: Send + Sync + 'static {
    /// A lead by id (any campaign), for review and reversal by id.
    async fn get_lead_by_id(&self, id: LeadId) -> StoreResult<Option<Lead>>;
    /// A conversion by id, for reversal by id.
    async fn get_conversion_by_id(&self, id: ConversionId) -> StoreResult<Option<Conversion>>;
    /// Replaces a lead only if the stored one still has `expected` status.
    async fn replace_lead(&self, lead: &Lead, expected: LeadStatus) -> StoreResult<bool>;
    /// Replaces a conversion only if the stored one still has `expected`
    /// status (a review decision), moving its listing row and counters.
    async fn replace_conversion(&self, conversion: &Conversion, expected: ConversionStatus) -> StoreResult<bool>;
    /// One campaign's conversions, newest first, optionally of one status.
    async fn list_conversions(&self, query: &ConversionQuery) -> StoreResult<Vec<Conversion>>;
    /// Gives back the cap capacity the record under `key` claimed, once:
    /// `false` if it holds no claim (never made, or already given back).
    async fn release_claim(&self, campaign: CampaignId, key: &DedupKey) -> StoreResult<bool>;
    /// What each window has taken (zero for one never used).
    async fn cap_usage(&self, campaign: CampaignId, windows: &[Window]) -> StoreResult<Vec<Usage>>;
    /// One campaign's leads, newest first, optionally of one status.
    async fn list_leads(&self, query: &LeadQuery) -> StoreResult<Vec<Lead>>;

    /// Stores a new referral and schedules its expiry.
    async fn put_referral(&self, referral: &Referral) -> StoreResult<()>;
    async fn get_referral(&self, id: ReferralId) -> StoreResult<Option<Referral>>;
    /// Replaces a referral only if the stored one still has `expected` status.
    async fn replace_referral(&self, referral: &Referral, expected: ReferralStatus) -> StoreResult<bool>;

    /// Schedules work; an item already there is left as it is.
    async fn put_due(&self, items: &[Due]) -> StoreResult<()>;
    /// Up to `limit` items of `queue` due at or before `up_to`, oldest first.
    async fn due(&self, queue: Queue, up_to: u64, limit: usize) -> StoreResult<Vec<Due>>;
    async fn remove_due(&self, item: &Due) -> StoreResult<()>;

    /// Records a payout unless its id exists (then returns the stored one),
    /// indexes it as awaiting funds, writes its wallet's pending line and
    /// schedules its escrow.
    async fn create_payout(&self, payout: &Payout) -> StoreResult<Payout>;
    async fn get_payout(&self, id: PayoutId) -> StoreResult<Option<Payout>>;
    /// A campaign's payouts still awaiting funds, oldest first.
    async fn awaiting_payouts(&self, campaign: CampaignId, limit: usize) -> StoreResult<Vec<Payout>>;
    /// Applies one transition if the payout still has `mv.before` (and, for
    /// escrow, `available` covers it): payout, entries and balance together;
    /// then the wallet lines; and schedules what comes next (release at
    /// `release_at` after escrow, wallet crediting after release or reversal).
    async fn apply_move(&self, mv: &Move) -> StoreResult<MoveOutcome>;
    /// Pays a pass's record intents: per item, `create_payout`, the escrow
    /// at `now` if the stored payout awaits funds, then `remove_due`. Each
    /// step is idempotent, so a failed call is simply repeated. This default
    /// runs the items `concurrency` at a time; the embedded store commits
    /// them all in one transaction.
    async fn pay_due(&self, items: Vec<PayDue>, now: u64, concurrency: usize) -> StoreResult<Vec<Paid>> {
        pay_each(self, items, now, concurrency).await
    }
    /// Deposits funds unless `funding.txn` was applied before (`Replayed`)
    /// or the deposit would take the campaign past its bound (`OverLimit`,
    /// nothing written); schedules the campaign's awaiting payouts for escrow.
    async fn fund(&self, funding: &Funding) -> StoreResult<FundOutcome>;
    async fn get_balance(&self, campaign: CampaignId) -> StoreResult<Balance>;
    /// Every ledger entry on a campaign's accounts (audits and invariant checks).
    async fn campaign_entries(&self, campaign: CampaignId) -> StoreResult<Vec<Entry>>;
    /// Inserts the wallet lines whose ids are not there yet.
    async fn post_wallet(&self, lines: &[WalletEntry]) -> StoreResult<()>;
    async fn get_wallet(&self, affiliate: AffiliateId, before: Option<&str>, limit: usize) -> StoreResult<WalletPage>;
}

/// `Ledger::pay_due` through the single-step methods, `concurrency` items at a time.
pub async fn pay_each<L: Ledger + ?Sized>(
    ledger: &L,
    items: Vec<PayDue>,
    now: u64,
    concurrency: usize,
) -> StoreResult<Vec<Paid>> {
    use futures::{StreamExt, TryStreamExt};
    // Two intents for one payout in a call (on CQL a retried postback writes
    // its intent again) would race each other's create and both look new:
    // the later one only removes its item, as the embedded store's single
    // transaction, which sees the first one's payout, does.
    let mut seen = std::collections::HashSet::new();
    let items = items.into_iter().map(|mut item| {
        if item.payout.as_ref().is_some_and(|p| !seen.insert(p.id)) {
            item.payout = None;
        }
        item
    });
    futures::stream::iter(items)
        .map(|item| async move { pay_one(ledger, &item, now).await })
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}

/// `Ledger::pay_due` for one item, through the single-step methods.
async fn pay_one<L: Ledger + ?Sized>(ledger: &L, item: &PayDue, now: u64) -> StoreResult<Paid> {
    let mut paid = Paid::default();
    if let Some(wanted) = &item.payout {
        let stored = ledger.create_payout(wanted).await?;
        paid.created = stored == *wanted;
        if let Ok(mv) = crate::domain::money::escrow(&stored, now, item.hold_days) {
            if ledger.apply_move(&mv).await? == MoveOutcome::Applied {
                paid.escrowed = Some(mv);
            }
        }
    }
    ledger.remove_due(&item.due).await?;
    Ok(paid)
}
