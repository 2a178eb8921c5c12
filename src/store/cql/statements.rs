//! Every CQL statement the store runs, prepared once at start-up and kept in
//! one struct, each with the execution profile it needs.

use scylla::client::execution_profile::ExecutionProfileHandle;
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
    pub index_campaign: PreparedStatement,
    pub select_campaign_ids_of: PreparedStatement,
    pub index_approval_by_campaign: PreparedStatement,
    pub index_approval_by_affiliate: PreparedStatement,
    pub select_approvals_of_campaign: PreparedStatement,
    pub select_approvals_of_affiliate: PreparedStatement,
    pub insert_click_batch: PreparedStatement,
    pub select_click_batches: PreparedStatement,
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
    /// Readiness: the keyspace's applied migrations (a handful of rows).
    pub select_schema_versions: PreparedStatement,
    pub ledger: LedgerStatements,
    /// Tenants' keys (migration 3).
    pub keys: super::keys::KeyStatements,
    /// Secrets the keyspace's nodes share (migration 3).
    pub cluster: super::cluster::ClusterStatements,
    pub feed: super::feed::FeedStatements,
    pub hooks: super::hooks::HookStatements,
    pub caps: super::caps::CapStatements,
}

/// The money path, the due-time index, referrals and the lookups by id
/// (migration 2). Statements marked `Batched` only ever run inside a
/// conditional batch, which carries its own (LWT) profile.
pub struct LedgerStatements {
    /// What conditional batches run under (a batch ignores its statements' profiles).
    pub lwt: ExecutionProfileHandle,
    pub select_money_payout: PreparedStatement,
    pub select_money_statics: PreparedStatement,
    pub select_money_rows: PreparedStatement,
    pub select_money_entry: PreparedStatement,
    pub insert_payout_if_absent: PreparedStatement,
    pub insert_awaiting: PreparedStatement,
    pub delete_awaiting: PreparedStatement,
    pub update_payout_if: PreparedStatement,
    pub insert_entry: PreparedStatement,
    pub update_balance_if: PreparedStatement,
    pub insert_payout_id: PreparedStatement,
    pub select_payout_id: PreparedStatement,
    pub select_wallet_totals: PreparedStatement,
    pub select_wallet_line: PreparedStatement,
    pub select_wallet_page: PreparedStatement,
    pub select_wallet_page_before: PreparedStatement,
    pub insert_wallet_line: PreparedStatement,
    pub update_wallet_totals_if: PreparedStatement,
    pub insert_due: PreparedStatement,
    pub delete_due: PreparedStatement,
    pub select_due: PreparedStatement,
    pub insert_due_bucket: PreparedStatement,
    pub select_due_buckets: PreparedStatement,
    pub select_watermark: PreparedStatement,
    pub insert_watermark_if_absent: PreparedStatement,
    pub update_watermark_if: PreparedStatement,
    pub insert_lead_id: PreparedStatement,
    pub select_lead_id: PreparedStatement,
    pub insert_conversion_id: PreparedStatement,
    pub select_conversion_id: PreparedStatement,
    pub insert_lead_index: PreparedStatement,
    pub delete_lead_index: PreparedStatement,
    pub select_lead_index: PreparedStatement,
    pub update_lead_if: PreparedStatement,
    pub insert_referral_if_absent: PreparedStatement,
    pub select_referral: PreparedStatement,
    pub update_referral_if: PreparedStatement,
}

#[derive(Clone, Copy)]
pub(super) enum Kind {
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
    /// Only run inside a batch, which brings its own profile.
    Batched,
}

/// Tables are named with their keyspace (`{ks}.table`): Cassandra warns that
/// prepared statements relying on `USE keyspace` are ambiguous.
pub(super) async fn prepare(
    session: &Session,
    profiles: &Profiles,
    ks: &str,
    kind: Kind,
    cql: &str,
) -> StoreResult<PreparedStatement> {
    let cql = cql.replace("{ks}", ks);
    let mut p =
        session.prepare(cql.as_str()).await.map_err(|e| StoreError::Failed(format!("preparing `{cql}`: {e}")))?;
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
        Kind::Batched => p.set_is_idempotent(true),
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
            index_campaign: p(Plain, "INSERT INTO {ks}.campaigns_by_advertiser (advertiser_id, campaign_id) VALUES (?, ?)")
                .await?,
            select_campaign_ids_of: p(Scan, "SELECT campaign_id FROM {ks}.campaigns_by_advertiser WHERE advertiser_id = ?")
                .await?,
            index_approval_by_campaign: p(
                Plain,
                "INSERT INTO {ks}.approvals_by_campaign (campaign_id, affiliate_id, code) VALUES (?, ?, ?)",
            )
            .await?,
            index_approval_by_affiliate: p(
                Plain,
                "INSERT INTO {ks}.approvals_by_affiliate (affiliate_id, campaign_id, code) VALUES (?, ?, ?)",
            )
            .await?,
            select_approvals_of_campaign: p(Scan, "SELECT code FROM {ks}.approvals_by_campaign WHERE campaign_id = ?")
                .await?,
            select_approvals_of_affiliate: p(Scan, "SELECT code FROM {ks}.approvals_by_affiliate WHERE affiliate_id = ?")
                .await?,
            insert_click_batch: p(
                Plain,
                "INSERT INTO {ks}.click_log (campaign_id, day, shard, batch_id, body) VALUES (?, ?, ?, ?, ?) USING TTL ?",
            )
            .await?,
            select_click_batches: p(
                Plain,
                "SELECT body FROM {ks}.click_log WHERE campaign_id = ? AND day = ? AND shard = ?",
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
                 conversions_bot = conversions_bot + :conversions_bot, \
                 postbacks_recorded = postbacks_recorded + :postbacks_recorded, \
                 postbacks_duplicate = postbacks_duplicate + :postbacks_duplicate, \
                 payout_cents = payout_cents + :payout_cents, payout_millions = payout_millions + :payout_millions \
                 WHERE campaign_id = :campaign_id",
            )
            .await?,
            add_ignored: p(Counter, "UPDATE {ks}.campaign_ignored SET n = n + ? WHERE campaign_id = ? AND reason = ?").await?,
            select_counters: p(
                Plain,
                "SELECT clicks, bot_clicks, conversions_recorded, conversions_duplicate, conversions_bot, postbacks_recorded, \
                 postbacks_duplicate, payout_cents, payout_millions FROM {ks}.campaign_counters WHERE campaign_id = ?",
            )
            .await?,
            select_ignored: p(Plain, "SELECT reason, n FROM {ks}.campaign_ignored WHERE campaign_id = ?").await?,
            select_schema_versions: p(Plain, "SELECT version FROM {ks}.schema_migrations").await?,
            ledger: LedgerStatements::prepare(session, profiles, ks).await?,
            keys: super::keys::KeyStatements::prepare(session, profiles, ks).await?,
            cluster: super::cluster::ClusterStatements::prepare(session, profiles, ks).await?,
            feed: super::feed::FeedStatements::prepare(session, profiles, ks).await?,
            hooks: super::hooks::HookStatements::prepare(session, profiles, ks).await?,
            caps: super::caps::CapStatements::prepare(session, profiles, ks).await?,
        })
    }
}

const MONEY_STATICS: &str = "funded, available, escrowed, clearing, version";

impl LedgerStatements {
    async fn prepare(session: &Session, profiles: &Profiles, ks: &str) -> StoreResult<Self> {
        use Kind::*;
        let p = |kind, cql: String| async move { prepare(session, profiles, ks, kind, &cql).await };
        let s = |cql: &str| cql.replace("{statics}", MONEY_STATICS);
        Ok(Self {
            lwt: profiles.lwt.clone(),
            // The payout row and the balance in one read: one consistent snapshot
            // for the move's checks.
            select_money_payout: p(
                SerialRead,
                s("SELECT status, body, {statics} FROM {ks}.campaign_money \
                   WHERE campaign_id = ? AND kind = 'payout' AND id = ?"),
            )
            .await?,
            select_money_statics: p(
                SerialRead,
                s("SELECT {statics} FROM {ks}.campaign_money WHERE campaign_id = ? LIMIT 1"),
            )
            .await?,
            select_money_rows: p(
                Plain,
                "SELECT id, body FROM {ks}.campaign_money WHERE campaign_id = ? AND kind = ? LIMIT ?".into(),
            )
            .await?,
            select_money_entry: p(
                SerialRead,
                "SELECT id FROM {ks}.campaign_money WHERE campaign_id = ? AND kind = 'entry' AND id = ?".into(),
            )
            .await?,
            insert_payout_if_absent: p(
                Batched,
                "INSERT INTO {ks}.campaign_money (campaign_id, kind, id, status, body) \
                 VALUES (?, 'payout', ?, ?, ?) IF NOT EXISTS"
                    .into(),
            )
            .await?,
            insert_awaiting: p(
                Batched,
                "INSERT INTO {ks}.campaign_money (campaign_id, kind, id) VALUES (?, 'awaiting', ?)".into(),
            )
            .await?,
            delete_awaiting: p(
                Batched,
                "DELETE FROM {ks}.campaign_money WHERE campaign_id = ? AND kind = 'awaiting' AND id = ?".into(),
            )
            .await?,
            update_payout_if: p(
                Batched,
                "UPDATE {ks}.campaign_money SET status = ?, body = ? \
                 WHERE campaign_id = ? AND kind = 'payout' AND id = ? IF status = ?"
                    .into(),
            )
            .await?,
            insert_entry: p(
                Batched,
                "INSERT INTO {ks}.campaign_money (campaign_id, kind, id, body) VALUES (?, 'entry', ?, ?)".into(),
            )
            .await?,
            update_balance_if: p(
                Batched,
                "UPDATE {ks}.campaign_money SET funded = ?, available = ?, escrowed = ?, clearing = ?, version = ? \
                 WHERE campaign_id = ? IF version = ?"
                    .into(),
            )
            .await?,
            insert_payout_id: p(Plain, "INSERT INTO {ks}.payouts_by_id (id, campaign_id) VALUES (?, ?)".into()).await?,
            select_payout_id: p(Plain, "SELECT campaign_id FROM {ks}.payouts_by_id WHERE id = ?".into()).await?,
            select_wallet_totals: p(
                SerialRead,
                "SELECT pending, available, reversed, totals, version FROM {ks}.wallets WHERE affiliate_id = ? LIMIT 1"
                    .into(),
            )
            .await?,
            select_wallet_line: p(
                SerialRead,
                "SELECT id FROM {ks}.wallets WHERE affiliate_id = ? AND at = ? AND id = ?".into(),
            )
            .await?,
            select_wallet_page: p(Plain, "SELECT body FROM {ks}.wallets WHERE affiliate_id = ? LIMIT ?".into()).await?,
            select_wallet_page_before: p(
                Plain,
                "SELECT body FROM {ks}.wallets WHERE affiliate_id = ? AND (at, id) < (?, ?) LIMIT ?".into(),
            )
            .await?,
            insert_wallet_line: p(
                Batched,
                "INSERT INTO {ks}.wallets (affiliate_id, at, id, body) VALUES (?, ?, ?, ?)".into(),
            )
            .await?,
            update_wallet_totals_if: p(
                Batched,
                "UPDATE {ks}.wallets SET totals = ?, version = ? WHERE affiliate_id = ? IF version = ?".into(),
            )
            .await?,
            insert_due: p(Plain, "INSERT INTO {ks}.due (queue, bucket, at, item) VALUES (?, ?, ?, ?)".into()).await?,
            delete_due: p(Plain, "DELETE FROM {ks}.due WHERE queue = ? AND bucket = ? AND at = ? AND item = ?".into())
                .await?,
            select_due: p(
                Plain,
                "SELECT at, item FROM {ks}.due WHERE queue = ? AND bucket = ? AND at <= ? LIMIT ?".into(),
            )
            .await?,
            insert_due_bucket: p(Plain, "INSERT INTO {ks}.due_buckets (queue, bucket) VALUES (?, ?)".into()).await?,
            select_due_buckets: p(
                Plain,
                "SELECT bucket FROM {ks}.due_buckets WHERE queue = ? AND bucket >= ? AND bucket <= ?".into(),
            )
            .await?,
            select_watermark: p(SerialRead, "SELECT bucket, version FROM {ks}.due_watermark WHERE queue = ?".into())
                .await?,
            insert_watermark_if_absent: p(
                Conditional,
                "INSERT INTO {ks}.due_watermark (queue, bucket, version) VALUES (?, ?, 1) IF NOT EXISTS".into(),
            )
            .await?,
            update_watermark_if: p(
                Conditional,
                "UPDATE {ks}.due_watermark SET bucket = ?, version = ? WHERE queue = ? IF version = ?".into(),
            )
            .await?,
            insert_lead_id: p(
                Plain,
                "INSERT INTO {ks}.leads_by_id (id, campaign_id, external_id) VALUES (?, ?, ?)".into(),
            )
            .await?,
            select_lead_id: p(Plain, "SELECT campaign_id, external_id FROM {ks}.leads_by_id WHERE id = ?".into())
                .await?,
            insert_conversion_id: p(
                Plain,
                "INSERT INTO {ks}.conversions_by_id (id, campaign_id, click_id) VALUES (?, ?, ?)".into(),
            )
            .await?,
            select_conversion_id: p(
                Plain,
                "SELECT campaign_id, click_id FROM {ks}.conversions_by_id WHERE id = ?".into(),
            )
            .await?,
            insert_lead_index: p(
                Plain,
                "INSERT INTO {ks}.leads_by_campaign (campaign_id, status, lead_id, external_id) VALUES (?, ?, ?, ?)"
                    .into(),
            )
            .await?,
            delete_lead_index: p(
                Plain,
                "DELETE FROM {ks}.leads_by_campaign WHERE campaign_id = ? AND status = ? AND lead_id = ?".into(),
            )
            .await?,
            select_lead_index: p(
                Plain,
                "SELECT lead_id, external_id FROM {ks}.leads_by_campaign \
                 WHERE campaign_id = ? AND status = ? AND lead_id < ? LIMIT ?"
                    .into(),
            )
            .await?,
            update_lead_if: p(
                Conditional,
                "UPDATE {ks}.leads SET body = ? WHERE campaign_id = ? AND external_id = ? IF body = ?".into(),
            )
            .await?,
            insert_referral_if_absent: p(
                Conditional,
                "INSERT INTO {ks}.referrals (id, status, body) VALUES (?, ?, ?) IF NOT EXISTS".into(),
            )
            .await?,
            select_referral: p(SerialRead, "SELECT body FROM {ks}.referrals WHERE id = ?".into()).await?,
            update_referral_if: p(
                Conditional,
                "UPDATE {ks}.referrals SET status = ?, body = ? WHERE id = ? IF status = ?".into(),
            )
            .await?,
        })
    }
}
