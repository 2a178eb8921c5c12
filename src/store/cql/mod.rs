//! The CQL backend (ScyllaDB, or Apache Cassandra in tests). Each `Store`
//! method is one statement on one table (see `migrations/cql/`); keyed writes
//! are conditional inserts, so two engine nodes receiving the same event at
//! once record it exactly once and both answer with the winner's id.
//!
//! `Ledger` (migration 2) lives beside it: `ledger.rs` (the trait, leads,
//! referrals), `money.rs` (a campaign's money as single-partition conditional
//! batches), `wallet.rs`, `due.rs` (the due-time index), `ledger_rows.rs`.

mod caps;
mod cluster;
mod due;
mod feed;
mod hooks;
mod keys;
mod ledger;
pub mod ledger_rows;
mod listed;
mod listings;
mod money;
mod review;
pub mod rows;
pub mod schema;
pub mod session;
pub mod statements;
mod wallet;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::join_all;
use futures::StreamExt;
use scylla::client::session::Session;
use scylla::response::query_result::QueryResult;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch as CqlBatch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{Counter, CqlValue};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use self::rows::*;
use self::statements::Statements;
use super::*;
use crate::config::ScyllaConfig;

pub struct ScyllaStore {
    session: Session,
    st: Statements,
    /// Caps requests in flight to the cluster; callers beyond it wait.
    permits: Arc<Semaphore>,
    shards: u32,
    /// TTL of click log rows written from now on (`expire_clicks` sets it).
    click_ttl_secs: std::sync::atomic::AtomicU32,
    rebuild_days: u32,
    keyspace: String,
    /// TTL of change feed rows written from now on (`expire_changes` sets it).
    change_ttl_secs: std::sync::atomic::AtomicU32,
    /// Change feed minutes this process has already listed.
    change_listed: listed::Listed<(i32, i64)>,
    /// Due-index hours this process has already listed in `due_buckets`.
    due_listed: listed::Listed<(Queue, i64)>,
    /// One conditional batch per campaign money partition in flight from
    /// this process (see `money::ScyllaStore::money_turn`).
    money_turns: dashmap::DashMap<CampaignId, Arc<tokio::sync::Mutex<()>>>,
    /// This process among the engine nodes (who holds a delivery's lease).
    node_name: String,
}

/// `campaign_ignored` rows that count statuses and rejection reasons.
use caps::Admit;

const STATUS_PREFIX: &str = "status:";
const REJECTED_PREFIX: &str = "rejected:";
const CLICKS_PREFIX: &str = "clicks:";
const WINDOW_PREFIX: &str = "window:";

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("records always serialize")
}

fn parse<T: DeserializeOwned>(body: &str) -> StoreResult<T> {
    serde_json::from_str(body).map_err(StoreError::from)
}

fn blob(id: u128) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

pub fn day_of_secs(secs: u64) -> i32 {
    (secs / 86_400) as i32
}

/// Event ids carry their creation millisecond in the top 48 bits.
fn day_of_id(id: u128) -> i32 {
    day_of_secs(((id >> 80) as u64) / 1000)
}

fn parse_dedup(text: &str) -> Option<DedupKey> {
    match text.split_at_checked(2)? {
        ("c:", hex) => u128::from_str_radix(hex, 16).ok().map(|v| DedupKey::Click(ClickId(v))),
        ("e:", ext) => Some(DedupKey::External(ext.to_string())),
        _ => None,
    }
}

/// Until the engine says otherwise: the default attribution window, 90 days.
const DEFAULT_CLICK_TTL_SECS: u32 = 90 * 86_400;
/// Until the engine says otherwise: `retention.change_days`' default, 7 days.
const DEFAULT_CHANGE_TTL_SECS: u32 = 7 * 86_400;

impl ScyllaStore {
    /// Connects, refuses a keyspace whose schema is not this build's, and
    /// prepares every statement.
    pub async fn connect(config: &ScyllaConfig) -> StoreResult<Self> {
        let profiles = session::profiles(config)?;
        let session = session::connect(config, &profiles).await?;
        schema::check(&session, &profiles, &config.keyspace).await?;
        let st = Statements::prepare(&session, &profiles, &config.keyspace).await?;
        Ok(Self {
            session,
            st,
            permits: Arc::new(Semaphore::new(config.max_in_flight)),
            shards: config.click_shards,
            click_ttl_secs: std::sync::atomic::AtomicU32::new(DEFAULT_CLICK_TTL_SECS),
            rebuild_days: config.bloom_rebuild_days,
            keyspace: config.keyspace.clone(),
            change_ttl_secs: std::sync::atomic::AtomicU32::new(DEFAULT_CHANGE_TTL_SECS),
            change_listed: Default::default(),
            due_listed: Default::default(),
            money_turns: Default::default(),
            node_name: format!(
                "pid{}-{:08x}",
                std::process::id(),
                u32::from_be_bytes(crate::domain::ids::random_bytes())
            ),
        })
    }

    /// `clickledger migrate`: creates or upgrades the keyspace's schema,
    /// then indexes keys stored before key records existed.
    pub async fn migrate(config: &ScyllaConfig) -> StoreResult<i32> {
        let profiles = session::profiles(config)?;
        let session = session::connect(config, &profiles).await?;
        let version = schema::migrate(&session, &profiles, config).await?;
        let indexed = Self::connect(config).await?.index_legacy_keys().await?;
        if indexed > 0 {
            tracing::info!(indexed, "indexed API keys from before key records");
        }
        Ok(version)
    }

    async fn exec(&self, st: &PreparedStatement, values: impl SerializeRow) -> StoreResult<QueryResult> {
        let _permit = self.permits.acquire().await?;
        self.session.execute_unpaged(st, values).await.map_err(StoreError::from)
    }

    async fn body<T: DeserializeOwned>(
        &self,
        st: &PreparedStatement,
        values: impl SerializeRow,
    ) -> StoreResult<Option<T>> {
        let rows = self.exec(st, values).await?.into_rows_result()?;
        let row: Option<BodyRow> = rows.maybe_first_row()?;
        row.map(|r| parse(&r.body)).transpose()
    }

    async fn scan<T: DeserializeOwned>(&self, st: &PreparedStatement) -> StoreResult<Vec<T>> {
        let pager = self.session.execute_iter(st.clone(), &[]).await?;
        let mut stream = pager.rows_stream::<BodyRow>()?;
        let mut out = Vec::new();
        while let Some(row) = stream.next().await {
            out.push(parse(&row?.body)?);
        }
        Ok(out)
    }

    /// Runs a conditional write: `None` if it applied, else the existing row's body.
    async fn conditional(&self, st: &PreparedStatement, values: impl SerializeRow) -> StoreResult<Option<String>> {
        let rows = self.exec(st, values).await?.into_rows_result()?;
        let (applied, row) = schema::applied_row(&rows)?;
        if applied {
            return Ok(None);
        }
        let body_at = rows.column_specs().iter().position(|c| c.name() == "body");
        match body_at.and_then(|i| row.columns.get(i).cloned().flatten()) {
            Some(CqlValue::Text(body)) => Ok(Some(body)),
            other => Err(StoreError::Failed(format!("a lost conditional insert returned no body: {other:?}"))),
        }
    }

    /// The record's escrow intent (if it pays) and its change feed row
    /// first, then the conditional insert, then (if it went in) its lookups
    /// by id.
    async fn insert_keyed(&self, keyed: &Keyed) -> StoreResult<Outcome> {
        tokio::try_join!(self.intend_payout(keyed), self.write_change(keyed))?;
        let existing = match keyed {
            Keyed::Conversion(c) => {
                let row = ConversionRow {
                    campaign_id: c.campaign_id.0 as i64,
                    click_id: blob(c.click_id.0),
                    id: blob(c.id.0),
                    body: json(c),
                };
                let found = self.conditional(&self.st.insert_conversion_if_absent, row).await?;
                found.map(|b| parse::<Conversion>(&b)).transpose()?.filter(|w| w.id != c.id).map(Keyed::Conversion)
            }
            Keyed::Lead(l) => {
                let row = LeadRow {
                    campaign_id: l.campaign_id.0 as i64,
                    external_id: l.external_id.clone(),
                    id: blob(l.id.0),
                    body: json(l),
                };
                let found = self.conditional(&self.st.insert_lead_if_absent, row).await?;
                // A retried write that finds its own row (same id) did apply.
                found.map(|b| parse::<Lead>(&b)).transpose()?.filter(|w| w.id != l.id).map(Keyed::Lead)
            }
        };
        if existing.is_none() {
            self.index_keyed(keyed).await?;
        }
        Ok(existing.map_or(Outcome::Inserted, Outcome::Existing))
    }

    /// A record's claim: its payout intent (which also reconciles a claim
    /// whose record never lands: see `Money::pay_records`) before it.
    async fn claim_for(&self, keyed: &Keyed, claim: &crate::domain::caps::Claim) -> StoreResult<Admit> {
        let item = DueItem::Record(keyed.campaign(), keyed.dedup_key());
        self.put_due_items(&[Due::new(Queue::Escrow, keyed.created_at(), item)]).await?;
        self.admit_claim(keyed.campaign(), &keyed.dedup_key(), claim).await
    }

    /// Inserts a record; one that took a fresh claim but lost its key to a
    /// record holding none (stored before caps) gives the claim back.
    async fn insert_claimed(&self, keyed: &Keyed, admit: Option<Admit>) -> StoreResult<Outcome> {
        let outcome = self.insert_keyed(keyed).await?;
        if let (Outcome::Existing(winner), Some(Admit::Fresh)) = (&outcome, admit) {
            if !winner.counted() {
                self.release_cap_claim(keyed.campaign(), &keyed.dedup_key()).await?;
            }
        }
        Ok(outcome)
    }

    /// Clicks as log records: one row per campaign in the batch (usually
    /// one), keyed by its first click, with the retention as TTL. Rewriting
    /// a record (a retried batch) writes the same row again.
    async fn write_clicks(&self, clicks: &[Click]) -> StoreResult<()> {
        let ttl = self.click_ttl_secs.load(std::sync::atomic::Ordering::Relaxed) as i32;
        let writes = clicklog::by_campaign(clicks).into_iter().map(|(campaign, group)| {
            let first = group[0].id.0;
            let row = (
                campaign.0 as i64,
                day_of_id(first),
                (first as u32 % self.shards) as i32,
                blob(first),
                clicklog::encode(&group),
                ttl,
            );
            async move { self.exec(&self.st.insert_click_batch, row).await.map(|_| ()) }
        });
        join_all(writes).await.into_iter().collect()
    }

    /// A click by id: the log records of its day and the day before (a
    /// batch is filed under its first click's day), every shard (tests and
    /// audits; nothing on the request path reads clicks back).
    async fn find_click(&self, campaign: CampaignId, id: ClickId) -> StoreResult<Option<Click>> {
        let day = day_of_id(id.0);
        for day in [day, day - 1] {
            for shard in 0..self.shards as i32 {
                let key = (campaign.0 as i64, day, shard);
                let rows = self.exec(&self.st.select_click_batches, key).await?.into_rows_result()?;
                for row in rows.rows::<(Vec<u8>,)>()? {
                    let clicks = clicklog::decode(campaign, &row?.0)?;
                    if let Some(found) = clicks.into_iter().find(|c| c.id == id) {
                        return Ok(Some(found));
                    }
                }
            }
        }
        Ok(None)
    }

    async fn unlogged<R: SerializeRow>(&self, st: &PreparedStatement, rows: Vec<R>) -> StoreResult<()> {
        let mut batch = CqlBatch::new(BatchType::Unlogged);
        for _ in &rows {
            batch.append_statement(st.clone());
        }
        batch.set_is_idempotent(true);
        let _permit = self.permits.acquire().await?;
        self.session.batch(&batch, rows).await.map(drop).map_err(StoreError::from)
    }

    async fn write_dedup_keys(&self, inserted: &[&Keyed]) -> StoreResult<()> {
        let mut partitions: HashMap<(i64, i32), Vec<DedupRow>> = HashMap::new();
        for keyed in inserted {
            let (campaign, at) = (keyed.campaign(), keyed.created_at());
            let key = keyed.dedup_key().text();
            let row = DedupRow { campaign_id: campaign.0 as i64, day: day_of_secs(at), key };
            partitions.entry((row.campaign_id, row.day)).or_default().push(row);
        }
        let writes = partitions.into_values().map(|rows| self.unlogged(&self.st.insert_dedup_key, rows));
        join_all(writes).await.into_iter().collect()
    }

    async fn add_counters(&self, deltas: HashMap<CampaignId, CampaignStats>) -> StoreResult<()> {
        let deltas: Vec<_> = deltas.into_iter().filter(|(_, d)| !d.is_empty()).collect();
        let counters = deltas.iter().map(|(c, d)| self.exec(&self.st.add_counters, CounterDelta::new(c.0 as i64, d)));
        let ignored = deltas.iter().flat_map(|(c, d)| {
            let named = d.conversions_ignored.iter().map(|(r, n)| (r.clone(), *n as i64));
            let statuses = d.statuses.iter().map(|(s, n)| (format!("{STATUS_PREFIX}{s}"), *n as i64));
            let rejected = d.rejected.iter().map(|(r, n)| (format!("{REJECTED_PREFIX}{r}"), *n as i64));
            let clicks = d.click_outcomes.iter().map(|(k, n)| (format!("{CLICKS_PREFIX}{k}"), *n as i64));
            let windows = d.click_windows.iter().map(|(w, n)| (format!("{WINDOW_PREFIX}{w}"), *n as i64));
            named
                .chain(statuses)
                .chain(rejected)
                .chain(clicks)
                .chain(windows)
                .map(|(name, n)| self.exec(&self.st.add_ignored, (Counter(n), c.0 as i64, name)))
        });
        let (a, b) = tokio::join!(join_all(counters), join_all(ignored));
        a.into_iter().chain(b).try_for_each(|r| r.map(drop))
    }
}

#[async_trait]
impl Keys for ScyllaStore {
    async fn put_advertiser(&self, advertiser: &Advertiser, keys: &[(ApiKey, KeyHash)]) -> StoreResult<()> {
        self.put_advertiser_row(advertiser, keys).await
    }

    async fn get_advertiser(&self, id: AdvertiserId) -> StoreResult<Option<Advertiser>> {
        self.body(&self.st.select_advertiser, (id.0 as i64,)).await
    }

    async fn put_affiliate(&self, affiliate: &Affiliate, keys: &[(ApiKey, KeyHash)]) -> StoreResult<()> {
        self.put_affiliate_row(affiliate, keys).await
    }

    async fn get_affiliate(&self, id: AffiliateId) -> StoreResult<Option<Affiliate>> {
        self.body(&self.st.select_affiliate, (id.0 as i64,)).await
    }

    async fn set_disabled(&self, owner: Owner, disabled_at: Option<u64>) -> StoreResult<bool> {
        self.disable(owner, disabled_at).await
    }

    async fn key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<ApiKey>> {
        self.key_record(hash).await
    }

    async fn key_by_id(&self, owner: Owner, id: KeyId) -> StoreResult<Option<ApiKey>> {
        self.key_of(owner, id).await
    }

    async fn replace_advertiser(&self, advertiser: &Advertiser) -> StoreResult<()> {
        self.exec(&self.st.insert_advertiser, (advertiser.id.0 as i64, json(advertiser))).await.map(drop)
    }

    async fn add_key(&self, key: &ApiKey, hash: KeyHash, max_secret: usize) -> StoreResult<AddKey> {
        self.insert_key(key, hash, max_secret).await
    }

    async fn list_keys(&self, owner: Owner, before: Option<KeyId>, limit: usize) -> StoreResult<Vec<Listed>> {
        self.owner_keys(owner, before, limit).await
    }

    async fn revoke_key(&self, owner: Owner, id: KeyId, at: u64) -> StoreResult<Revoke> {
        self.revoke(owner, id, at).await
    }

    async fn touch_key(&self, _owner: Owner, id: KeyId, at: u64) -> StoreResult<()> {
        self.touch(id, at).await
    }
}

#[async_trait]
impl Store for ScyllaStore {
    async fn put_campaign(&self, campaign: &Campaign) -> StoreResult<()> {
        self.index_campaign(campaign).await?;
        let values = (campaign.id.0 as i64, campaign.version as i64, json(campaign));
        match self.conditional(&self.st.insert_campaign, values).await? {
            None => Ok(()),
            Some(_) => Err(StoreError::Failed(format!("campaign {} already exists", campaign.id))),
        }
    }

    async fn replace_campaign(&self, campaign: &Campaign, expected_version: u64) -> StoreResult<bool> {
        // Confirming tracking is a change of its own (campaign edits are
        // rare, so the read that tells is cheap).
        if campaign.tracking_confirmed_at.is_some() {
            let before: Option<Campaign> = self.body(&self.st.select_campaign, (campaign.id.0 as i64,)).await?;
            if let Some(change) = Change::tracking(campaign, before.as_ref()) {
                self.write_change_row(&change).await?;
            }
        }
        let values = (campaign.version as i64, json(campaign), campaign.id.0 as i64, expected_version as i64);
        let result = self.exec(&self.st.update_campaign_if, values).await?;
        schema::applied(result)
    }

    async fn get_campaign(&self, id: CampaignId) -> StoreResult<Option<Campaign>> {
        self.body(&self.st.select_campaign, (id.0 as i64,)).await
    }

    async fn list_campaigns(&self) -> StoreResult<Vec<Campaign>> {
        self.scan(&self.st.scan_campaigns).await
    }

    async fn insert_tracking_code(&self, code: &TrackingCode) -> StoreResult<TrackingCode> {
        let stored = self.decide_code(code).await?;
        self.index_code(&stored).await?;
        Ok(stored)
    }

    async fn get_tracking_code(&self, code: &str) -> StoreResult<Option<TrackingCode>> {
        self.body(&self.st.select_code, (code.to_string(),)).await
    }

    async fn list_tracking_codes(&self) -> StoreResult<Vec<TrackingCode>> {
        self.scan(&self.st.scan_codes).await
    }

    async fn campaign_ids_of(&self, advertiser: AdvertiserId) -> StoreResult<Vec<CampaignId>> {
        self.listed_campaign_ids(advertiser).await
    }

    async fn codes_of_campaign(&self, campaign: CampaignId) -> StoreResult<Vec<TrackingCode>> {
        self.listed_codes(&self.st.select_approvals_of_campaign, campaign.0).await
    }

    async fn codes_of_affiliate(&self, affiliate: AffiliateId) -> StoreResult<Vec<TrackingCode>> {
        self.listed_codes(&self.st.select_approvals_of_affiliate, affiliate.0).await
    }

    async fn commit(&self, batch: Arc<Batch>) -> StoreResult<Vec<Outcome>> {
        // Cap claims first, one at a time (they share their campaign's
        // partition: run together they would only contend with each other).
        let mut records: Vec<(Keyed, Option<Admit>)> = Vec::with_capacity(batch.keyed.len());
        for (i, k) in batch.keyed.iter().enumerate() {
            records.push(match batch.claim(i) {
                None => (k.clone(), None),
                Some(claim) => {
                    let admit = self.claim_for(k, claim).await?;
                    (k.claimed(admit != Admit::Refused), Some(admit))
                }
            });
        }
        let keyed = join_all(records.iter().map(|(k, admit)| self.insert_claimed(k, *admit)));
        let (keyed, clicks) = tokio::join!(keyed, self.write_clicks(&batch.clicks));
        let mut first_error = clicks.as_ref().err().cloned();
        let mut deltas: HashMap<CampaignId, CampaignStats> = HashMap::new();
        let mut outcomes = Vec::with_capacity(keyed.len());
        let mut inserted = Vec::new();
        for ((k, admit), result) in records.iter().zip(keyed) {
            match result {
                Ok(outcome) => {
                    if matches!(outcome, Outcome::Inserted) {
                        deltas.entry(k.campaign()).or_default().add(&recorded_delta(k));
                        inserted.push(k);
                    }
                    outcomes.push(match (outcome, admit) {
                        (Outcome::Inserted, Some(_)) => Outcome::InsertedAs(k.clone()),
                        (other, _) => other,
                    });
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        // Clicks and the caller's counters are counted only when the whole
        // batch landed: a failed batch is retried whole by its actor.
        if first_error.is_none() {
            // A click id repeated within one batch (a requeued retry) counts once.
            let mut seen = std::collections::HashSet::new();
            for click in batch.clicks.iter().filter(|c| seen.insert(c.id)) {
                deltas.entry(click.campaign_id).or_default().add(&click_delta(click));
            }
            for (campaign, delta) in &batch.stats {
                deltas.entry(*campaign).or_default().add(delta);
            }
        }
        let (keys, counters) = tokio::join!(self.write_dedup_keys(&inserted), self.add_counters(deltas));
        if let Err(e) = keys.and(counters) {
            first_error.get_or_insert(e);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(outcomes),
        }
    }

    async fn get_conversion(&self, campaign: CampaignId, click: ClickId) -> StoreResult<Option<Conversion>> {
        self.body(&self.st.select_conversion, (campaign.0 as i64, blob(click.0))).await
    }

    async fn get_lead(&self, campaign: CampaignId, external_id: &str) -> StoreResult<Option<Lead>> {
        self.body(&self.st.select_lead, (campaign.0 as i64, external_id.to_string())).await
    }

    async fn get_click(&self, campaign: CampaignId, click: ClickId) -> StoreResult<Option<Click>> {
        self.find_click(campaign, click).await
    }

    async fn expire_clicks(&self, keep_days: u32, _now: u64, _limit: usize) -> StoreResult<usize> {
        let secs = (u64::from(keep_days) * 86_400).min(i32::MAX as u64) as u32;
        self.click_ttl_secs.store(secs, std::sync::atomic::Ordering::Relaxed);
        Ok(0)
    }

    /// Only the last `scylla.bloom_rebuild_days` days of keys: older ones are
    /// left to the conditional insert, which decides every key anyway.
    async fn dedup_keys(&self, campaign: CampaignId, out: mpsc::Sender<Vec<DedupKey>>) -> StoreResult<u64> {
        let today = day_of_secs(crate::domain::unix_now());
        let (mut chunk, mut sent) = (Vec::with_capacity(DEDUP_CHUNK), 0u64);
        for day in (today - self.rebuild_days as i32)..=today {
            let pager = self.session.execute_iter(self.st.select_dedup_keys.clone(), (campaign.0 as i64, day)).await;
            let mut rows = pager?.rows_stream::<KeyRow>()?;
            while let Some(row) = rows.next().await {
                chunk.extend(parse_dedup(&row?.key));
                if chunk.len() >= DEDUP_CHUNK {
                    let n = chunk.len() as u64;
                    if out.send(std::mem::take(&mut chunk)).await.is_err() {
                        return Ok(sent);
                    }
                    sent += n;
                }
            }
        }
        if !chunk.is_empty() {
            let n = chunk.len() as u64;
            sent += if out.send(chunk).await.is_ok() { n } else { 0 };
        }
        Ok(sent)
    }

    async fn get_stats(&self, campaign: CampaignId) -> StoreResult<CampaignStats> {
        let id = (campaign.0 as i64,);
        let rows = self.exec(&self.st.select_counters, id).await?.into_rows_result()?;
        let counters: Option<CounterRow> = rows.maybe_first_row()?;
        let mut stats = counters.map(CounterRow::into_stats).unwrap_or_default();
        let rows = self.exec(&self.st.select_ignored, id).await?.into_rows_result()?;
        for row in rows.rows::<IgnoredRow>()? {
            let row = row?;
            let n = row.n.map_or(0, |n| n.0.max(0) as u64);
            // One counter table holds three maps, told apart by prefix.
            if let Some(status) = row.reason.strip_prefix(STATUS_PREFIX) {
                stats.statuses.insert(status.to_string(), n);
            } else if let Some(reason) = row.reason.strip_prefix(REJECTED_PREFIX) {
                stats.rejected.insert(reason.to_string(), n);
            } else if let Some(kind) = row.reason.strip_prefix(CLICKS_PREFIX) {
                stats.click_outcomes.insert(kind.to_string(), n);
            } else if let Some(window) = row.reason.strip_prefix(WINDOW_PREFIX) {
                stats.click_windows.insert(window.to_string(), n);
            } else {
                stats.conversions_ignored.insert(row.reason, n);
            }
        }
        Ok(stats)
    }

    /// The applied-migrations table: a real read on the keyspace that also
    /// says whether its schema is this build's.
    async fn health(&self) -> StoreResult<SchemaState> {
        let rows = self.exec(&self.st.select_schema_versions, ()).await?.into_rows_result()?;
        let mut newest = None;
        for row in rows.rows::<(i32,)>()? {
            newest = newest.max(Some(row?.0));
        }
        Ok(match schema::judge(&self.keyspace, newest) {
            Ok(()) => SchemaState {
                current: true,
                detail: format!("schema version {} of {}", newest.unwrap_or(0), schema::latest()),
            },
            Err(e) => SchemaState { current: false, detail: e.message().to_string() },
        })
    }
}

impl ScyllaStore {
    /// A party row and its secret key in one logged batch: both appear or neither.
    /// The code on record for `code`'s (campaign, affiliate) pair: `code`
    /// itself if it wins the pair, else the one there before.
    async fn decide_code(&self, code: &TrackingCode) -> StoreResult<TrackingCode> {
        if let Some(affiliate) = code.affiliate_id {
            let pair = (code.campaign_id.0 as i64, affiliate.0 as i64);
            let claim = (pair.0, pair.1, code.code.clone());
            if !schema::applied(self.exec(&self.st.insert_approval_if_absent, claim).await?)? {
                return self.existing_approval(code, pair).await;
            }
        }
        match self.conditional(&self.st.insert_code_if_absent, (code.code.clone(), json(code))).await? {
            None => Ok(code.clone()),
            Some(body) if parse::<TrackingCode>(&body)? == *code => Ok(code.clone()),
            Some(_) => Err(StoreError::Failed("tracking code collision; retry".into())),
        }
    }

    /// The pair already had a code: return it, and repair the code row if an
    /// earlier approval died between its two writes.
    async fn existing_approval(&self, proposed: &TrackingCode, pair: (i64, i64)) -> StoreResult<TrackingCode> {
        let rows = self.exec(&self.st.select_approval, pair).await?.into_rows_result()?;
        let code: CodeRow = rows.first_row()?;
        if let Some(found) = self.get_tracking_code(&code.code).await? {
            return Ok(found);
        }
        let repaired = TrackingCode { code: code.code, ..proposed.clone() };
        self.conditional(&self.st.insert_code_if_absent, (repaired.code.clone(), json(&repaired))).await?;
        Ok(repaired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_keys_round_trip_through_their_text_form() {
        for key in [DedupKey::Click(ClickId(0xabc)), DedupKey::External("order:12".into())] {
            assert_eq!(parse_dedup(&key.text()), Some(key));
        }
    }

    #[test]
    fn a_click_id_names_the_day_it_was_made() {
        let id = ClickId::new();
        assert_eq!(day_of_id(id.0), day_of_secs(crate::domain::unix_now()));
    }
}
