//! Caps on CQL (see `migrations/cql/0007_caps.cql`): a campaign's windows
//! and claims share one partition, so a claim and the windows it counts
//! against change together in one conditional batch. Two nodes racing for
//! a window's last unit both read it, both try, and Paxos lets one apply;
//! the other reads again and finds the cap reached. Exact, at the price of
//! one Paxos round per capped conversion (uncapped campaigns pay nothing).

use std::collections::HashMap;
use std::time::Duration;

use scylla::statement::prepared::PreparedStatement;
use scylla::DeserializeRow;

use super::money::Write;
use super::statements::{prepare, Kind};
use super::{blob, parse, session::Profiles, ScyllaStore};
use crate::domain::caps::{Claim, Usage, Window};
use crate::domain::ids::CampaignId;
use crate::store::{DedupKey, StoreError, StoreResult};

/// Lost rounds tolerated before a claim gives up (the batch then fails
/// whole and its callers may retry); 64 conversions racing for one
/// campaign need at most 64.
const MAX_ROUNDS: usize = 256;

pub struct CapStatements {
    select: PreparedStatement,
    insert_usage: PreparedStatement,
    update_usage: PreparedStatement,
    insert_claim: PreparedStatement,
    delete_claim: PreparedStatement,
    pub(super) list_insert: PreparedStatement,
    pub(super) list_delete: PreparedStatement,
    pub(super) list_select: PreparedStatement,
    pub(super) update_conversion_if: PreparedStatement,
}

impl CapStatements {
    pub async fn prepare(
        session: &scylla::client::session::Session,
        profiles: &Profiles,
        ks: &str,
    ) -> StoreResult<Self> {
        use Kind::*;
        let p = |kind, cql: &'static str| prepare(session, profiles, ks, kind, cql);
        Ok(Self {
            select: p(SerialRead, "SELECT k, conversions, cents, body FROM {ks}.caps WHERE campaign_id = ? AND k IN ?")
                .await?,
            insert_usage: p(
                Conditional,
                "INSERT INTO {ks}.caps (campaign_id, k, conversions, cents) VALUES (?, ?, ?, ?) IF NOT EXISTS",
            )
            .await?,
            update_usage: p(
                Conditional,
                "UPDATE {ks}.caps SET conversions = ?, cents = ? WHERE campaign_id = ? AND k = ? \
                 IF conversions = ? AND cents = ?",
            )
            .await?,
            insert_claim: p(Conditional, "INSERT INTO {ks}.caps (campaign_id, k, body) VALUES (?, ?, ?) IF NOT EXISTS")
                .await?,
            delete_claim: p(Conditional, "DELETE FROM {ks}.caps WHERE campaign_id = ? AND k = ? IF EXISTS").await?,
            list_insert: p(
                Plain,
                "INSERT INTO {ks}.conversions_by_campaign (campaign_id, status, id, click_id) VALUES (?, ?, ?, ?)",
            )
            .await?,
            list_delete: p(
                Plain,
                "DELETE FROM {ks}.conversions_by_campaign WHERE campaign_id = ? AND status = ? AND id = ?",
            )
            .await?,
            list_select: p(
                Plain,
                "SELECT id, click_id FROM {ks}.conversions_by_campaign \
                 WHERE campaign_id = ? AND status = ? AND id < ? LIMIT ?",
            )
            .await?,
            update_conversion_if: p(
                Conditional,
                "UPDATE {ks}.conversions SET body = ? WHERE campaign_id = ? AND click_id = ? IF body = ?",
            )
            .await?,
        })
    }
}

#[derive(DeserializeRow)]
struct CapRow {
    k: String,
    conversions: Option<i64>,
    cents: Option<i64>,
    body: Option<String>,
}

/// What a claim found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Admit {
    /// Taken now, by this call.
    Fresh,
    /// The record's key already held a claim (a retry, or a twin request).
    Held,
    /// A window had no room: nothing was written.
    Refused,
}

fn usage_key(w: &Window) -> String {
    format!("u:{}", w.key())
}

fn claim_key(key: &DedupKey) -> String {
    format!("c:{}", key.text())
}

impl ScyllaStore {
    /// The rows under `keys` in a campaign's caps partition (a Paxos read).
    async fn cap_rows(&self, campaign: CampaignId, keys: Vec<String>) -> StoreResult<HashMap<String, CapRow>> {
        let rows = self.exec(&self.st.caps.select, (campaign.0 as i64, keys)).await?.into_rows_result()?;
        let mut out = HashMap::new();
        for row in rows.rows::<CapRow>()? {
            let row = row?;
            out.insert(row.k.clone(), row);
        }
        Ok(out)
    }

    pub(super) async fn admit_claim(&self, campaign: CampaignId, key: &DedupKey, claim: &Claim) -> StoreResult<Admit> {
        let c = campaign.0 as i64;
        let mine = claim_key(key);
        let windows: Vec<String> = claim.bounds.iter().map(|b| usage_key(&b.window)).collect();
        for round in 0..MAX_ROUNDS {
            let rows = self.cap_rows(campaign, windows.iter().cloned().chain([mine.clone()]).collect()).await?;
            if rows.contains_key(&mine) {
                return Ok(Admit::Held);
            }
            let used: Vec<Option<Usage>> = windows.iter().map(|k| rows.get(k).map(usage_of)).collect();
            if claim.check(&used.iter().map(|u| u.unwrap_or_default()).collect::<Vec<_>>()).is_err() {
                return Ok(Admit::Refused);
            }
            let mut writes: Vec<Write<'_>> = Vec::new();
            for (k, old) in windows.iter().zip(&used) {
                let new = old.unwrap_or_default().plus(claim.cents);
                writes.push(usage_write(&self.st.caps, c, k, *old, new));
            }
            writes.push((&self.st.caps.insert_claim, Box::new((c, mine.clone(), super::json(claim)))));
            if self.lwt_batch(writes).await? {
                return Ok(Admit::Fresh);
            }
            contended(round).await;
        }
        Err(StoreError::Failed(format!("campaign {campaign}'s caps stayed contended; retry")))
    }

    pub(super) async fn release_cap_claim(&self, campaign: CampaignId, key: &DedupKey) -> StoreResult<bool> {
        let c = campaign.0 as i64;
        let mine = claim_key(key);
        for round in 0..MAX_ROUNDS {
            let rows = self.cap_rows(campaign, vec![mine.clone()]).await?;
            let Some(body) = rows.get(&mine).and_then(|r| r.body.clone()) else { return Ok(false) };
            let claim: Claim = parse(&body)?;
            let windows: Vec<String> = claim.bounds.iter().map(|b| usage_key(&b.window)).collect();
            let rows = self.cap_rows(campaign, windows.clone()).await?;
            let mut writes: Vec<Write<'_>> = vec![(&self.st.caps.delete_claim, Box::new((c, mine.clone())))];
            for k in &windows {
                let old = rows.get(k).map(usage_of);
                writes.push(usage_write(&self.st.caps, c, k, old, old.unwrap_or_default().minus(claim.cents)));
            }
            if self.lwt_batch(writes).await? {
                return Ok(true);
            }
            contended(round).await;
        }
        Err(StoreError::Failed(format!("campaign {campaign}'s caps stayed contended; retry")))
    }

    pub(super) async fn usage_of_windows(&self, campaign: CampaignId, windows: &[Window]) -> StoreResult<Vec<Usage>> {
        let rows = self.cap_rows(campaign, windows.iter().map(usage_key).collect()).await?;
        Ok(windows.iter().map(|w| rows.get(&usage_key(w)).map(usage_of).unwrap_or_default()).collect())
    }

    /// A conversion's row in its campaign's status listing.
    pub(super) async fn list_conversion_row(&self, c: &crate::domain::model::Conversion) -> StoreResult<()> {
        let row = (c.campaign_id.0 as i64, c.status.as_str(), blob(c.id.0), blob(c.click_id.0));
        self.exec(&self.st.caps.list_insert, row).await.map(drop)
    }
}

fn usage_of(row: &CapRow) -> Usage {
    let n = |v: Option<i64>| v.map_or(0, |v| v.max(0) as u64);
    Usage { conversions: n(row.conversions), payout_cents: n(row.cents) }
}

/// Compare-and-set of one window's row: on what was read, or absent.
fn usage_write<'a>(st: &'a CapStatements, c: i64, k: &str, old: Option<Usage>, new: Usage) -> Write<'a> {
    let (n, cents) = (new.conversions as i64, new.payout_cents as i64);
    match old {
        None => (&st.insert_usage, Box::new((c, k.to_string(), n, cents))),
        Some(o) => {
            (&st.update_usage, Box::new((n, cents, c, k.to_string(), o.conversions as i64, o.payout_cents as i64)))
        }
    }
}

/// A short random wait after a lost round, growing with the rounds, so
/// racing claims spread out instead of colliding again at once.
async fn contended(round: usize) {
    let spread = 2 + (round.min(20) as u64) * 2;
    let jitter = u64::from(crate::domain::ids::random_bytes::<1>()[0]) % spread;
    tokio::time::sleep(Duration::from_millis(1 + jitter)).await;
}
