//! The default store: redb, an embedded copy-on-write B-tree with fsync'ed
//! commits. One writer thread (`writer.rs`) owns every write and folds
//! whatever is waiting into one transaction, so N campaign actors flushing
//! and the money supervisors stepping at once cost one fsync, not N (group
//! commit at the store as well as the actor). Keyed events are applied in
//! `events.rs`, money in `money.rs`, keys in `keys.rs`; the `Store` impl is
//! here, the `Ledger` and `Keys` impls in `ledger.rs` and `tenants.rs`, the
//! change feed in `feed.rs`.
//! Clicks stay out of redb: they go to segment files with a writer thread
//! of their own (`clicks.rs`; the files in `clickfiles.rs`, their format in
//! `segment.rs`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

/// The chunks of a dedup key scan (the writer's queue is `std::sync::mpsc`).
type KeySender = tokio::sync::mpsc::Sender<Vec<DedupKey>>;

use super::*;

mod caps;
mod clickfiles;
mod clicks;
mod events;
mod feed;
mod file;
mod format;
mod hooks;
mod keys;
mod ledger;
mod listings;
mod money;
mod segment;
mod tenants;
mod writer;

pub use file::DiskFaults;

use clicks::ClickLog;
use events::{apply, lead_by_id, list_leads};
use writer::{Job, Typed};

const CAMPAIGNS: TableDefinition<u64, &[u8]> = TableDefinition::new("campaigns");
const CODES: TableDefinition<&str, &[u8]> = TableDefinition::new("tracking_codes");
/// (campaign, affiliate) → code: makes approval idempotent.
const APPROVALS: TableDefinition<(u64, u64), &str> = TableDefinition::new("approvals");
const CONVERSIONS: TableDefinition<(u64, u128), &[u8]> = TableDefinition::new("conversions");
const LEADS: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("leads");
const STATS: TableDefinition<u64, &[u8]> = TableDefinition::new("campaign_stats");
/// (campaign, lead id) → externalId: newest-first listing and lookup by id.
const LEAD_INDEX: TableDefinition<(u64, u128), &str> = TableDefinition::new("lead_index");
/// lead id → campaign.
const LEAD_CAMPAIGN: TableDefinition<u128, u64> = TableDefinition::new("lead_campaign");
/// conversion id → (campaign, click).
const CONVERSION_INDEX: TableDefinition<u128, (u64, u128)> = TableDefinition::new("conversion_index");
const REFERRALS: TableDefinition<u128, &[u8]> = TableDefinition::new("referrals");

/// How long a refused write keeps the store not ready unless a write
/// lands meanwhile: long enough for a load balancer to see it, short
/// enough that an idle node whose disk got room back is ready again soon.
const FAILED_RECENTLY: std::time::Duration = std::time::Duration::from_secs(5);

pub struct EmbeddedStore {
    db: Arc<file::Db>,
    writer: mpsc::SyncSender<Job>,
    /// Readiness asks whether the writer thread is still there.
    writer_thread: std::thread::JoinHandle<()>,
    clicks: ClickLog,
}

fn enc<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records always serialize")
}

fn dec<T: DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(StoreError::from)
}

impl EmbeddedStore {
    /// Opens (or creates) `dir/clickledger.redb`. redb holds a file lock, so a
    /// second process on the same directory fails here instead of corrupting it.
    pub fn open(dir: &Path, queue: usize) -> StoreResult<Self> {
        Self::open_with(dir, queue, false)
    }

    /// `quick_repair`: every commit saves what a crash recovery would
    /// otherwise rebuild by walking the whole file (`engine.store_quick_repair`).
    pub fn open_with(dir: &Path, queue: usize, quick_repair: bool) -> StoreResult<Self> {
        Self::open_inner(dir, queue, quick_repair, None)
    }

    /// Test seam: the store on a file whose writes fail while `faults` says
    /// the disk is full.
    pub fn open_with_faults(dir: &Path, queue: usize, faults: Arc<DiskFaults>) -> StoreResult<Self> {
        Self::open_inner(dir, queue, true, Some(faults))
    }

    fn open_inner(dir: &Path, queue: usize, quick_repair: bool, faults: Option<Arc<DiskFaults>>) -> StoreResult<Self> {
        crate::private_fs::create_dir(dir)?;
        let file = dir.join("clickledger.redb");
        crate::private_fs::prepare_file(&file)?;
        let db = Arc::new(file::Db::open(file, faults.clone())?);
        let mut txn = db.get()?.begin_write()?;
        txn.set_quick_repair(quick_repair);
        open_all_tables(&txn)?;
        let found = format::upgrade(&txn, dir)?;
        let next_segment = clicks::recover(dir, &txn)?;
        txn.commit()?;
        if found != format::CURRENT {
            tracing::info!(from = found, to = format::CURRENT, "upgraded the data file's format");
        }
        let (writer, jobs) = mpsc::sync_channel(queue.max(1));
        let thread_db = db.clone();
        let writer_thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer::write_loop(&thread_db, jobs, quick_repair))?;
        let clicks = ClickLog::start(dir, next_segment, queue, writer.clone(), db.clone(), faults)?;
        Ok(Self { db, writer, writer_thread, clicks })
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&redb::ReadTransaction) -> StoreResult<T> + Send + 'static,
    {
        let db = self.db.get()?;
        tokio::task::spawn_blocking(move || f(&db.begin_read()?)).await?
    }

    /// Runs `f` on the writer thread, folded with whatever else is waiting
    /// there, and answers once its transaction has committed. The queue is
    /// bounded: a full queue blocks this (blocking-pool) thread, which is the
    /// backpressure the actors' bounds sit in front of.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&WriteTransaction) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(Typed::new(f, reply));
        let stopped = || StoreError::Unavailable("store writer has stopped".into());
        match self.writer.try_send(job) {
            Ok(()) => {}
            // Only a full queue costs a blocking-pool thread.
            Err(mpsc::TrySendError::Full(job)) => {
                let writer = self.writer.clone();
                tokio::task::spawn_blocking(move || writer.send(job)).await?.map_err(|_| stopped())?
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(stopped()),
        }
        answer.await.map_err(|_| StoreError::Unavailable("store writer dropped the job".into()))?
    }
}

/// Every table this build creates, by name (readiness checks they are there).
fn table_names() -> Vec<String> {
    use redb::TableHandle;
    let names = [
        CAMPAIGNS.name(),
        CODES.name(),
        APPROVALS.name(),
        CONVERSIONS.name(),
        LEADS.name(),
        STATS.name(),
        LEAD_INDEX.name(),
        LEAD_CAMPAIGN.name(),
        CONVERSION_INDEX.name(),
        REFERRALS.name(),
        feed::CHANGES.name(),
        events::CONVERSION_LIST.name(),
    ]
    .map(str::to_string);
    names
        .into_iter()
        .chain(caps::table_names())
        .chain(money::table_names())
        .chain(keys::table_names())
        .chain(hooks::table_names())
        .chain(listings::table_names())
        .collect()
}

fn open_all_tables(txn: &WriteTransaction) -> StoreResult<()> {
    txn.open_table(CAMPAIGNS)?;
    txn.open_table(CODES)?;
    txn.open_table(APPROVALS)?;
    txn.open_table(CONVERSIONS)?;
    txn.open_table(LEADS)?;
    txn.open_table(STATS)?;
    txn.open_table(LEAD_INDEX)?;
    txn.open_table(LEAD_CAMPAIGN)?;
    txn.open_table(CONVERSION_INDEX)?;
    txn.open_table(REFERRALS)?;
    txn.open_table(feed::CHANGES)?;
    txn.open_table(events::CONVERSION_LIST)?;
    caps::open_tables(txn)?;
    money::open_tables(txn)?;
    keys::open_tables(txn)?;
    hooks::open_tables(txn)?;
    listings::open_tables(txn)?;
    Ok(())
}

/// Chunks keys for a blocking reader; `push` is `false` once the receiver
/// is gone.
struct ChunkSink {
    out: KeySender,
    chunk: Vec<DedupKey>,
    sent: u64,
}

impl ChunkSink {
    fn push(&mut self, key: DedupKey) -> bool {
        self.chunk.push(key);
        self.chunk.len() < DEDUP_CHUNK || self.flush()
    }

    fn flush(&mut self) -> bool {
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(DEDUP_CHUNK));
        let n = chunk.len() as u64;
        let delivered = self.out.blocking_send(chunk).is_ok();
        self.sent += if delivered { n } else { 0 };
        delivered
    }

    fn finish(mut self) -> u64 {
        if !self.chunk.is_empty() {
            self.flush();
        }
        self.sent
    }
}

fn get_json<K, T>(
    txn: &redb::ReadTransaction,
    def: TableDefinition<K, &[u8]>,
    key: K::SelfType<'_>,
) -> StoreResult<Option<T>>
where
    K: redb::Key + 'static,
    T: DeserializeOwned,
{
    let table = txn.open_table(def)?;
    let found = table.get(key)?;
    found.map(|v| dec(v.value())).transpose()
}

fn all_json<K, T>(txn: &redb::ReadTransaction, def: TableDefinition<K, &[u8]>) -> StoreResult<Vec<T>>
where
    K: redb::Key + 'static,
    T: DeserializeOwned,
{
    let table = txn.open_table(def)?;
    let mut out = Vec::new();
    for row in table.iter()? {
        let (_, v) = row?;
        out.push(dec(v.value())?);
    }
    Ok(out)
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn put_campaign(&self, campaign: &Campaign) -> StoreResult<()> {
        let (id, value, campaign) = (campaign.id.0, enc(campaign), campaign.clone());
        self.write(move |txn| {
            txn.open_table(CAMPAIGNS)?.insert(id, value.as_slice())?;
            listings::index_campaign(txn, &campaign)
        })
        .await
    }

    async fn replace_campaign(&self, campaign: &Campaign, expected_version: u64) -> StoreResult<bool> {
        let (id, value, next) = (campaign.id.0, enc(campaign), campaign.clone());
        self.write(move |txn| {
            let mut table = txn.open_table(CAMPAIGNS)?;
            let current: Option<Campaign> = table.get(id)?.map(|v| dec(v.value())).transpose()?;
            if current.as_ref().map(|c| c.version) != Some(expected_version) {
                return Ok(false);
            }
            table.insert(id, value.as_slice())?;
            drop(table);
            feed::append_changes(txn, Change::tracking(&next, current.as_ref()).as_slice())?;
            Ok(true)
        })
        .await
    }

    async fn get_campaign(&self, id: CampaignId) -> StoreResult<Option<Campaign>> {
        self.read(move |txn| get_json(txn, CAMPAIGNS, id.0)).await
    }

    async fn list_campaigns(&self) -> StoreResult<Vec<Campaign>> {
        self.read(|txn| all_json(txn, CAMPAIGNS)).await
    }

    async fn insert_tracking_code(&self, code: &TrackingCode) -> StoreResult<TrackingCode> {
        let code = code.clone();
        self.write(move |txn| {
            let mut codes = txn.open_table(CODES)?;
            let mut approvals = txn.open_table(APPROVALS)?;
            if let Some(aff) = code.affiliate_id {
                if let Some(existing) = approvals.get((code.campaign_id.0, aff.0))? {
                    let found = codes.get(existing.value())?;
                    let found = found.ok_or_else(|| StoreError::Failed("approval without its code".into()))?;
                    return dec(found.value());
                }
                approvals.insert((code.campaign_id.0, aff.0), code.code.as_str())?;
            }
            if codes.get(code.code.as_str())?.is_some() {
                return Err(StoreError::Failed("tracking code collision; retry".into()));
            }
            codes.insert(code.code.as_str(), enc(&code).as_slice())?;
            listings::index_code(txn, &code)?;
            Ok(code.clone())
        })
        .await
    }

    async fn get_tracking_code(&self, code: &str) -> StoreResult<Option<TrackingCode>> {
        let code = code.to_string();
        self.read(move |txn| get_json(txn, CODES, code.as_str())).await
    }

    async fn list_tracking_codes(&self) -> StoreResult<Vec<TrackingCode>> {
        self.read(|txn| all_json(txn, CODES)).await
    }

    async fn campaign_ids_of(&self, advertiser: AdvertiserId) -> StoreResult<Vec<CampaignId>> {
        self.read(move |txn| listings::campaign_ids_of(txn, advertiser)).await
    }

    async fn codes_of_campaign(&self, campaign: CampaignId) -> StoreResult<Vec<TrackingCode>> {
        self.read(move |txn| listings::codes_of_campaign(txn, campaign)).await
    }

    async fn codes_of_affiliate(&self, affiliate: AffiliateId) -> StoreResult<Vec<TrackingCode>> {
        self.read(move |txn| listings::codes_of_affiliate(txn, affiliate)).await
    }

    /// Clicks first, into the log: if the rest then fails, the actor's
    /// retry finds them marked as logged instead of logging them twice.
    async fn commit(&self, batch: Arc<Batch>) -> StoreResult<Vec<Outcome>> {
        if !batch.clicks.is_empty() {
            self.clicks.append(batch.clone()).await?;
        }
        if batch.keyed.is_empty() && batch.stats.iter().all(|(_, s)| s.is_empty()) {
            return Ok(Vec::new());
        }
        let keyed = batch.clone();
        let result = self.write(move |txn| apply(txn, &keyed)).await;
        if result.is_err() && !batch.clicks.is_empty() {
            self.clicks.mark_retried(&batch.clicks);
        }
        result
    }

    async fn get_conversion(&self, campaign: CampaignId, click: ClickId) -> StoreResult<Option<Conversion>> {
        self.read(move |txn| get_json(txn, CONVERSIONS, (campaign.0, click.0))).await
    }

    async fn get_lead(&self, campaign: CampaignId, external_id: &str) -> StoreResult<Option<Lead>> {
        let external_id = external_id.to_string();
        self.read(move |txn| get_json(txn, LEADS, (campaign.0, external_id.as_str()))).await
    }

    async fn get_click(&self, campaign: CampaignId, click: ClickId) -> StoreResult<Option<Click>> {
        let log = self.clicks.reader();
        tokio::task::spawn_blocking(move || log.find(campaign, click)).await?
    }

    /// One read transaction for the whole scan: a consistent snapshot, at the
    /// cost of redb keeping the pages it sees until the rebuild is done.
    async fn dedup_keys(&self, campaign: CampaignId, out: KeySender) -> StoreResult<u64> {
        self.read(move |txn| {
            let mut sink = ChunkSink { out, chunk: Vec::with_capacity(DEDUP_CHUNK), sent: 0 };
            let conversions = txn.open_table(CONVERSIONS)?;
            for row in conversions.range((campaign.0, 0u128)..=(campaign.0, u128::MAX))? {
                if !sink.push(DedupKey::Click(ClickId(row?.0.value().1))) {
                    return Ok(sink.sent);
                }
            }
            let leads = txn.open_table(LEADS)?;
            for row in leads.range((campaign.0, "")..)? {
                let (k, _) = row?;
                let (c, external) = k.value();
                if c != campaign.0 || !sink.push(DedupKey::External(external.to_string())) {
                    break;
                }
            }
            Ok(sink.finish())
        })
        .await
    }

    async fn get_stats(&self, campaign: CampaignId) -> StoreResult<CampaignStats> {
        let (db, log) = (self.db.get()?, self.clicks.reader());
        tokio::task::spawn_blocking(move || log.stats(&db, campaign)).await?
    }

    async fn expire_clicks(&self, keep_days: u32, now: u64, limit: usize) -> StoreResult<usize> {
        let before_day = now.saturating_sub(u64::from(keep_days) * 86_400) / 86_400;
        self.clicks.expire(before_day, limit).await
    }

    /// A read transaction listing the tables (a real read of the file), the
    /// writer threads, and whether writes are failing or failed within
    /// `FAILED_RECENTLY` with none landing since. (An empty probe write
    /// would prove nothing: redb commits one in place on a full disk.)
    async fn health(&self) -> StoreResult<SchemaState> {
        if self.writer_thread.is_finished() {
            return Err(StoreError::Unavailable("the embedded store's writer thread has stopped".into()));
        }
        if !self.clicks.is_running() {
            return Err(StoreError::Unavailable("the embedded store's click writer thread has stopped".into()));
        }
        if let Some(why) = self.db.failing() {
            return Err(StoreError::Unavailable(format!(
                "writes are failing ({why}); reopening the store until one lands"
            )));
        }
        if let Some(why) = self.db.failed_recently(FAILED_RECENTLY) {
            return Err(StoreError::Unavailable(format!("the last write failed ({why}) and none has landed since")));
        }
        let present: Vec<String> =
            self.read(|txn| Ok(txn.list_tables()?.map(|t| redb::TableHandle::name(&t).to_string()).collect())).await?;
        let missing: Vec<String> = table_names().into_iter().filter(|n| !present.contains(n)).collect();
        Ok(if missing.is_empty() {
            SchemaState { current: true, detail: format!("{} tables open", present.len()) }
        } else {
            SchemaState { current: false, detail: format!("missing tables: {}", missing.join(", ")) }
        })
    }
}

#[async_trait]
impl Feed for EmbeddedStore {
    async fn changes(&self, after: &FeedCursor, _now: u64, limit: usize) -> StoreResult<FeedPage> {
        let after = after.clone();
        self.read(move |txn| feed::read(txn, &after, limit)).await
    }

    async fn expire_changes(&self, keep_days: u32, now: u64, limit: usize) -> StoreResult<usize> {
        let cutoff = now.saturating_sub(u64::from(keep_days) * 86_400);
        self.write(move |txn| feed::expire(txn, cutoff, limit)).await
    }
}
