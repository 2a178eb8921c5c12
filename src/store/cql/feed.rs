//! The change feed on CQL (see `store::feed` for the contract): a row per
//! change written before its cause, read back per shard and confirmed
//! against the stored record.

use futures::StreamExt;
use scylla::statement::prepared::PreparedStatement;
use scylla::DeserializeRow;

use super::statements::{prepare, Kind};
use super::{blob, json, parse, session::Profiles, ScyllaStore};
use crate::domain::referral::ReferralStatus;
use crate::store::feed::{GRACE_SECS, LAG_SECS, SHARDS};
use crate::store::{get_keyed, Change, ChangeEvent, Feed, FeedCursor, FeedPage, Keyed, Ledger, Store, StoreResult};

pub struct FeedStatements {
    insert: PreparedStatement,
    insert_bucket: PreparedStatement,
    select_buckets: PreparedStatement,
    select: PreparedStatement,
}

impl FeedStatements {
    pub async fn prepare(
        session: &scylla::client::session::Session,
        profiles: &Profiles,
        ks: &str,
    ) -> StoreResult<Self> {
        use Kind::*;
        let p = |kind, cql: &'static str| prepare(session, profiles, ks, kind, cql);
        Ok(Self {
            insert: p(Plain, "INSERT INTO {ks}.changes (shard, minute, id, body) VALUES (?, ?, ?, ?) USING TTL ?")
                .await?,
            insert_bucket: p(Plain, "INSERT INTO {ks}.change_buckets (shard, minute) VALUES (?, ?) USING TTL ?")
                .await?,
            select_buckets: p(
                Plain,
                "SELECT minute FROM {ks}.change_buckets WHERE shard = ? AND minute >= ? AND minute <= ?",
            )
            .await?,
            select: p(
                Plain,
                "SELECT id, body FROM {ks}.changes WHERE shard = ? AND minute = ? AND id > ? AND id <= ? LIMIT ?",
            )
            .await?,
        })
    }
}

#[derive(DeserializeRow)]
struct MinuteRow {
    minute: i64,
}

#[derive(DeserializeRow)]
struct ChangeRow {
    id: Vec<u8>,
    body: String,
}

/// Ids carry their millisecond in the top 48 bits.
fn millis(id: u128) -> u64 {
    (id >> 80) as u64
}

fn minute(id: u128) -> i64 {
    (millis(id) / 60_000) as i64
}

fn shard(id: u128) -> u32 {
    (id as u32) % SHARDS
}

/// The highest id minted at or before `ms`.
fn last_id_at(ms: u64) -> u128 {
    (u128::from(ms) << 80) | ((1u128 << 80) - 1)
}

/// What a change row's cause turned out to be.
enum Cause {
    Stored,
    /// Lost its race, or was never stored and is past its grace.
    Gone,
    /// Not stored yet, still within its grace: the shard waits here.
    Pending,
}

impl ScyllaStore {
    /// Writes the change row of `record` (before its insert). Retrying
    /// the insert rewrites the same row.
    pub(super) async fn write_change(&self, record: &Keyed) -> StoreResult<()> {
        self.write_change_row(&Change::recorded(record)).await
    }

    /// Writes a change row (before the write that makes the change).
    pub(super) async fn write_change_row(&self, change: &Change) -> StoreResult<()> {
        let (shard, minute) = (shard(change.id) as i32, minute(change.id));
        let ttl = self.change_ttl_secs.load(std::sync::atomic::Ordering::Relaxed) as i32;
        // The directory row before the change: never a row in an unlisted minute.
        let unseen = self.change_listed.unlisted([(shard, minute)]);
        if !unseen.is_empty() {
            self.exec(&self.st.feed.insert_bucket, (shard, minute, ttl)).await?;
            self.change_listed.mark(&unseen);
        }
        self.exec(&self.st.feed.insert, (shard, minute, blob(change.id), json(change), ttl)).await?;
        Ok(())
    }

    /// One shard's changes after `from`, up to `horizon`: stored ones go to
    /// `out`; returns where the shard's cursor goes.
    async fn shard_changes(
        &self,
        shard: u32,
        from: u128,
        horizon: u128,
        now: u64,
        limit: usize,
        out: &mut Vec<Change>,
    ) -> StoreResult<u128> {
        let st = &self.st.feed;
        let s = shard as i32;
        let buckets = self.session.execute_iter(st.select_buckets.clone(), (s, minute(from), minute(horizon))).await?;
        let mut minutes = buckets.rows_stream::<MinuteRow>()?;
        let mut at = from;
        while let Some(m) = minutes.next().await {
            let m = m?.minute;
            // A minute is read in pages: rows of changes whose cause is
            // gone do not count towards `limit`.
            loop {
                let want = limit.saturating_sub(out.len()).clamp(1, 1000);
                let rows =
                    self.exec(&st.select, (s, m, blob(at), blob(horizon), want as i32)).await?.into_rows_result()?;
                let mut read = 0;
                for row in rows.rows::<ChangeRow>()? {
                    let row = row?;
                    read += 1;
                    let change: Change = parse(&row.body)?;
                    match self.cause(&change, now).await? {
                        Cause::Stored => out.push(change),
                        Cause::Gone => {}
                        Cause::Pending => return Ok(at),
                    }
                    at = u128::from_be_bytes(row.id.as_slice().try_into()?);
                    if out.len() >= limit {
                        return Ok(at);
                    }
                }
                if read < want {
                    break;
                }
            }
        }
        Ok(at.max(horizon))
    }

    /// Whether the change's cause is stored: the stored object shows it.
    /// `None` from `found` is "not there (yet)".
    async fn cause(&self, change: &Change, now: u64) -> StoreResult<Cause> {
        let found: Option<bool> = match &change.event {
            ChangeEvent::Recorded { record } => {
                let stored = get_keyed(self, record.campaign(), &record.dedup_key()).await?;
                stored.map(|s| Change::recorded(&s).id == change.id)
            }
            ChangeEvent::Reviewed { lead } => {
                let stored = Ledger::get_lead_by_id(self, lead.id).await?;
                stored.map(|l| l.status == lead.status && l.reviewed_at == lead.reviewed_at)
            }
            ChangeEvent::ConversionReviewed { conversion: c } => {
                let stored = Store::get_conversion(self, c.campaign_id, c.click_id).await?;
                stored.filter(|s| s.id == c.id).map(|s| s.status == c.status && s.reviewed_at == c.reviewed_at)
            }
            ChangeEvent::Moved { payout, step } => {
                let stored = Ledger::get_payout(self, payout.id).await?;
                // Not stepped yet reads as not there, so the grace applies.
                let at = stored.and_then(|p| p.step_at(*step));
                at.map(|at| Some(at) == payout.step_at(*step))
            }
            ChangeEvent::Expired { referral } => {
                let stored = Ledger::get_referral(self, referral.id).await?;
                stored.filter(|r| r.status != ReferralStatus::Active).map(|r| r.status == ReferralStatus::Expired)
            }
            ChangeEvent::TrackingConfirmed { campaign } => {
                let stored = Store::get_campaign(self, campaign.id).await?;
                let at = stored.and_then(|c| c.tracking_confirmed_at);
                at.map(|at| Some(at) == campaign.tracking_confirmed_at)
            }
        };
        // The row's own id says when it was written (`at` is the engine's
        // time of the change, which a test clock may have moved).
        let written = millis(change.id) / 1000;
        Ok(match found {
            Some(true) => Cause::Stored,
            Some(false) => Cause::Gone,
            None if now.saturating_sub(written) <= GRACE_SECS => Cause::Pending,
            None => Cause::Gone,
        })
    }
}

#[async_trait::async_trait]
impl Feed for ScyllaStore {
    async fn changes(&self, after: &FeedCursor, now: u64, limit: usize) -> StoreResult<FeedPage> {
        // Through the end of the second `LAG_SECS` before `now`.
        let horizon = last_id_at(now.saturating_sub(LAG_SECS).saturating_mul(1000).saturating_add(999));
        let mut page = FeedPage { changes: Vec::new(), next: after.clone() };
        for shard in 0..SHARDS {
            if page.changes.len() >= limit {
                break;
            }
            let from = after.at(shard);
            if from >= horizon {
                continue;
            }
            let to = self.shard_changes(shard, from, horizon, now, limit, &mut page.changes).await?;
            page.next.0.insert(shard, to);
        }
        Ok(page)
    }

    async fn expire_changes(&self, keep_days: u32, _now: u64, _limit: usize) -> StoreResult<usize> {
        let secs = (u64::from(keep_days) * 86_400).min(i32::MAX as u64) as u32;
        self.change_ttl_secs.store(secs, std::sync::atomic::Ordering::Relaxed);
        Ok(0)
    }
}
