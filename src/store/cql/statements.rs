//! Every CQL statement the store runs, prepared once at start-up and kept in
//! one struct, each with the execution profile it needs.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::Consistency;

use super::session::Profiles;
use crate::store::{StoreError, StoreResult};

pub struct Statements {
    pub insert_advertiser: PreparedStatement,
    pub select_advertiser: PreparedStatement,
    pub insert_affiliate: PreparedStatement,
    pub select_affiliate: PreparedStatement,
    pub insert_api_key: PreparedStatement,
    pub select_api_key: PreparedStatement,
    pub insert_campaign: PreparedStatement,
    pub update_campaign_if: PreparedStatement,
    pub select_campaign: PreparedStatement,
    pub scan_campaigns: PreparedStatement,
    pub insert_code_if_absent: PreparedStatement,
    pub select_code: PreparedStatement,
    pub scan_codes: PreparedStatement,
    pub insert_approval_if_absent: PreparedStatement,
    pub select_approval: PreparedStatement,
    pub insert_click: PreparedStatement,
    pub select_click: PreparedStatement,
    pub insert_conversion_if_absent: PreparedStatement,
    pub select_conversion: PreparedStatement,
    pub insert_lead_if_absent: PreparedStatement,
    pub select_lead: PreparedStatement,
    pub insert_dedup_key: PreparedStatement,
    pub select_dedup_keys: PreparedStatement,
    pub add_counters: PreparedStatement,
    pub add_ignored: PreparedStatement,
    pub select_counters: PreparedStatement,
    pub select_ignored: PreparedStatement,
}

#[derive(Clone, Copy)]
enum Kind {
    /// Plain read or idempotent write (retried on timeout).
    Plain,
    /// A read that must see the latest conditional write: a Paxos read.
    SerialRead,
    /// A conditional write. Retrying is safe: a retry that finds our own row
    /// is recognised by its id.
    Conditional,
    /// A counter update: not idempotent, never retried.
    Counter,
    /// A start-up scan: long timeout, large pages.
    Scan,
}

/// Tables are named with their keyspace (`{ks}.table`): Cassandra warns that
/// prepared statements relying on `USE keyspace` are ambiguous.
async fn prepare(
    session: &Session,
    profiles: &Profiles,
    ks: &str,
    kind: Kind,
    cql: &str,
) -> StoreResult<PreparedStatement> {
    let cql = cql.replace("{ks}", ks);
    let mut p = session.prepare(cql.as_str()).await.map_err(|e| StoreError(format!("preparing `{cql}`: {e}")))?;
    match kind {
        Kind::Plain => p.set_is_idempotent(true),
        Kind::SerialRead => {
            p.set_execution_profile_handle(Some(profiles.lwt.clone()));
            p.set_consistency(Consistency::LocalSerial);
            p.set_is_idempotent(true);
        }
        Kind::Conditional => {
            p.set_execution_profile_handle(Some(profiles.lwt.clone()));
            p.set_is_idempotent(true);
        }
        Kind::Counter => p.set_is_idempotent(false),
        Kind::Scan => {
            p.set_execution_profile_handle(Some(profiles.slow.clone()));
            p.set_page_size(5000);
            p.set_is_idempotent(true);
        }
    }
    Ok(p)
}

impl Statements {
    /// Prepares everything against keyspace `ks`.
    pub async fn prepare(session: &Session, profiles: &Profiles, ks: &str) -> StoreResult<Self> {
        use Kind::*;
        let p = |kind, cql| prepare(session, profiles, ks, kind, cql);
        Ok(Self {
            insert_advertiser: p(Plain, "INSERT INTO {ks}.advertisers (id, body) VALUES (?, ?)").await?,
            select_advertiser: p(Plain, "SELECT body FROM {ks}.advertisers WHERE id = ?").await?,
            insert_affiliate: p(Plain, "INSERT INTO {ks}.affiliates (id, body) VALUES (?, ?)").await?,
            select_affiliate: p(Plain, "SELECT body FROM {ks}.affiliates WHERE id = ?").await?,
            insert_api_key: p(Plain, "INSERT INTO {ks}.api_keys (key_hash, principal) VALUES (?, ?)").await?,
            select_api_key: p(Plain, "SELECT principal AS body FROM {ks}.api_keys WHERE key_hash = ?").await?,
            insert_campaign: p(Conditional, "INSERT INTO {ks}.campaigns (id, version, body) VALUES (?, ?, ?) IF NOT EXISTS")
                .await?,
            update_campaign_if: p(Conditional, "UPDATE {ks}.campaigns SET version = ?, body = ? WHERE id = ? IF version = ?")
                .await?,
            select_campaign: p(SerialRead, "SELECT body FROM {ks}.campaigns WHERE id = ?").await?,
            scan_campaigns: p(Scan, "SELECT body FROM {ks}.campaigns").await?,
            insert_code_if_absent: p(Conditional, "INSERT INTO {ks}.tracking_codes (code, body) VALUES (?, ?) IF NOT EXISTS")
                .await?,
            select_code: p(Plain, "SELECT body FROM {ks}.tracking_codes WHERE code = ?").await?,
            scan_codes: p(Scan, "SELECT body FROM {ks}.tracking_codes").await?,
            insert_approval_if_absent: p(
                Conditional,
                "INSERT INTO {ks}.approvals (campaign_id, affiliate_id, code) VALUES (?, ?, ?) IF NOT EXISTS",
            )
            .await?,
            select_approval: p(SerialRead, "SELECT code FROM {ks}.approvals WHERE campaign_id = ? AND affiliate_id = ?")
                .await?,
            insert_click: p(
                Plain,
                "INSERT INTO {ks}.clicks (campaign_id, day, shard, click_id, body) VALUES (:campaign_id, :day, :shard, :click_id, :body)",
            )
            .await?,
            select_click: p(
                Plain,
                "SELECT body FROM {ks}.clicks WHERE campaign_id = ? AND day = ? AND shard = ? AND click_id = ?",
            )
            .await?,
            insert_conversion_if_absent: p(
                Conditional,
                "INSERT INTO {ks}.conversions (campaign_id, click_id, id, body) VALUES (:campaign_id, :click_id, :id, :body) IF NOT EXISTS",
            )
            .await?,
            select_conversion: p(SerialRead, "SELECT body FROM {ks}.conversions WHERE campaign_id = ? AND click_id = ?")
                .await?,
            insert_lead_if_absent: p(
                Conditional,
                "INSERT INTO {ks}.leads (campaign_id, external_id, id, body) VALUES (:campaign_id, :external_id, :id, :body) IF NOT EXISTS",
            )
            .await?,
            select_lead: p(SerialRead, "SELECT body FROM {ks}.leads WHERE campaign_id = ? AND external_id = ?").await?,
            insert_dedup_key: p(
                Plain,
                "INSERT INTO {ks}.dedup_keys (campaign_id, day, key) VALUES (:campaign_id, :day, :key)",
            )
            .await?,
            select_dedup_keys: p(Scan, "SELECT key FROM {ks}.dedup_keys WHERE campaign_id = ? AND day = ?").await?,
            add_counters: p(
                Counter,
                "UPDATE {ks}.campaign_counters SET clicks = clicks + :clicks, bot_clicks = bot_clicks + :bot_clicks, \
                 conversions_recorded = conversions_recorded + :conversions_recorded, \
                 conversions_duplicate = conversions_duplicate + :conversions_duplicate, \
                 postbacks_recorded = postbacks_recorded + :postbacks_recorded, \
                 postbacks_duplicate = postbacks_duplicate + :postbacks_duplicate, \
                 payout_cents = payout_cents + :payout_cents WHERE campaign_id = :campaign_id",
            )
            .await?,
            add_ignored: p(Counter, "UPDATE {ks}.campaign_ignored SET n = n + ? WHERE campaign_id = ? AND reason = ?").await?,
            select_counters: p(
                Plain,
                "SELECT clicks, bot_clicks, conversions_recorded, conversions_duplicate, postbacks_recorded, \
                 postbacks_duplicate, payout_cents FROM {ks}.campaign_counters WHERE campaign_id = ?",
            )
            .await?,
            select_ignored: p(Plain, "SELECT reason, n FROM {ks}.campaign_ignored WHERE campaign_id = ?").await?,
        })
    }
}
