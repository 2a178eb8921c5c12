//! `Ledger` on CQL: the lookups by id and the review listing, referrals, and
//! the trait itself (the money path is in `money.rs`, wallets in `wallet.rs`,
//! the due-time index in `due.rs`). Also the two things `commit` now does
//! for the ledger: the escrow intent before a paying record's insert, and
//! the by-id index rows after it.

use async_trait::async_trait;
use futures::future::join_all;
use scylla::statement::batch::{Batch as CqlBatch, BatchType};

use super::due::MAX_ROUNDS;
use super::ledger_rows::*;
use super::rows::BodyRow;
use super::{blob, json, parse, schema, ScyllaStore};
use crate::domain::ids::*;
use crate::domain::keyed::lead_status;
use crate::domain::model::*;
use crate::domain::money::{Balance, Entry, Funding, Move, Payout, WalletEntry};
use crate::domain::referral::{Referral, ReferralStatus};
use crate::store::*;

pub(super) fn id_of(bytes: &[u8]) -> Option<u128> {
    bytes.try_into().ok().map(u128::from_be_bytes)
}

fn referral_status(s: ReferralStatus) -> String {
    serde_json::to_value(s).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

const LEAD_STATUSES: [LeadStatus; 3] = [LeadStatus::PendingReview, LeadStatus::Verified, LeadStatus::Rejected];

impl ScyllaStore {
    /// Before a paying record's conditional insert: its escrow intent. A
    /// blind write; the intent of a record that turns out a duplicate is
    /// dropped by the supervisor.
    pub(super) async fn intend_payout(&self, keyed: &Keyed) -> StoreResult<()> {
        if keyed.payout(0).is_none() {
            return Ok(());
        }
        let item = DueItem::Record(keyed.campaign(), keyed.dedup_key());
        self.put_due_items(&[Due::new(Queue::Escrow, keyed.created_at(), item)]).await
    }

    /// After an insert: the lookups by id and the campaign's lead listing.
    pub(super) async fn index_keyed(&self, keyed: &Keyed) -> StoreResult<()> {
        let st = &self.st.ledger;
        let campaign = keyed.campaign().0 as i64;
        match keyed {
            Keyed::Conversion(c) => {
                let by_id = self.exec(&st.insert_conversion_id, (blob(c.id.0), campaign, blob(c.click_id.0)));
                let (a, b) = tokio::join!(by_id, self.list_conversion_row(c));
                a.map(drop).and(b)?;
            }
            Keyed::Lead(l) => {
                let by_id = self.exec(&st.insert_lead_id, (blob(l.id.0), campaign, l.external_id.clone()));
                let listed = (campaign, l.status.as_str(), blob(l.id.0), l.external_id.clone());
                let (a, b) = tokio::join!(by_id, self.exec(&st.insert_lead_index, listed));
                a.and(b)?;
            }
        }
        Ok(())
    }

    /// Moves a lead's listing row to its new status: insert and delete in one
    /// logged batch, so the lead is never listed under both or neither.
    async fn relist(&self, lead: &Lead, from: LeadStatus) -> StoreResult<()> {
        let st = &self.st.ledger;
        let campaign = lead.campaign_id.0 as i64;
        let mut batch = CqlBatch::new(BatchType::Logged);
        batch.append_statement(st.insert_lead_index.clone());
        batch.append_statement(st.delete_lead_index.clone());
        batch.set_is_idempotent(true);
        let add = (campaign, lead.status.as_str(), blob(lead.id.0), lead.external_id.clone());
        let gone = (campaign, from.as_str(), blob(lead.id.0));
        let _permit = self.permits.acquire().await?;
        self.session.batch(&batch, (add, gone)).await.map(|_| ()).map_err(StoreError::from)
    }

    /// The lead row's body as stored (the compare-and-set compares it whole).
    async fn lead_body(&self, campaign: CampaignId, external_id: &str) -> StoreResult<Option<String>> {
        let rows = self.exec(&self.st.select_lead, (campaign.0 as i64, external_id.to_string())).await?;
        let row: Option<BodyRow> = rows.into_rows_result()?.maybe_first_row()?;
        Ok(row.map(|r| r.body))
    }

    async fn replace_lead_if(&self, lead: &Lead, expected: LeadStatus) -> StoreResult<bool> {
        // The review's change row before the write (see `store::feed`).
        let mut change = Change::review(lead, expected);
        for _ in 0..MAX_ROUNDS {
            let Some(body) = self.lead_body(lead.campaign_id, &lead.external_id).await? else { return Ok(false) };
            let current: Lead = parse(&body)?;
            if current.status != expected || current.id != lead.id {
                return Ok(false);
            }
            if let Some(change) = change.take() {
                self.write_change_row(&change).await?;
            }
            let values = (json(lead), lead.campaign_id.0 as i64, lead.external_id.clone(), body);
            // Not applied: the body changed since the read; the next round
            // tells a status change (false) from another edit (try again).
            if schema::applied(self.exec(&self.st.ledger.update_lead_if, values).await?)? {
                if current.status != lead.status {
                    self.relist(lead, current.status).await?;
                    let (from, to) = (lead_status(current.status), lead_status(lead.status));
                    self.count_status_move(lead.campaign_id, from, to, lead.rejection_reason.as_deref()).await?;
                }
                return Ok(true);
            }
        }
        Err(StoreError::Failed(format!("lead {} stayed contended; retry", lead.id)))
    }

    /// One page of listing rows below `before` across `statuses`, newest first.
    async fn listing(
        &self,
        campaign: CampaignId,
        statuses: &[LeadStatus],
        before: u128,
        want: usize,
    ) -> StoreResult<Vec<(u128, String, LeadStatus)>> {
        let limit = i32::try_from(want).unwrap_or(i32::MAX);
        let reads = statuses.iter().map(|s| {
            self.exec(&self.st.ledger.select_lead_index, (campaign.0 as i64, s.as_str(), blob(before), limit))
        });
        let mut rows = Vec::new();
        for (status, result) in statuses.iter().zip(join_all(reads).await) {
            let result = result?.into_rows_result()?;
            for row in result.rows::<LeadIndexRow>()? {
                let row = row?;
                rows.extend(id_of(&row.lead_id).map(|id| (id, row.external_id, *status)));
            }
        }
        rows.sort_by_key(|r| std::cmp::Reverse(r.0));
        rows.dedup_by_key(|r| r.0);
        rows.truncate(want);
        Ok(rows)
    }

    /// The listing filters on its own status column, then checks each lead's
    /// own row (the truth) and repairs a listing row a crash left stale.
    async fn leads_page(&self, q: &LeadQuery) -> StoreResult<Vec<Lead>> {
        let statuses: Vec<LeadStatus> = q.status.map_or(LEAD_STATUSES.to_vec(), |s| vec![s]);
        let mut before = q.before.map_or(u128::MAX, |b| b.0);
        let mut out = Vec::new();
        while out.len() < q.limit {
            let rows = self.listing(q.campaign, &statuses, before, q.limit - out.len()).await?;
            let Some(last) = rows.last() else { break };
            before = last.0;
            let leads = join_all(rows.iter().map(|(_, ext, _)| self.get_lead(q.campaign, ext))).await;
            for ((id, _, listed_as), lead) in rows.iter().zip(leads) {
                let Some(lead) = lead?.filter(|l| l.id.0 == *id) else { continue };
                if lead.status != *listed_as {
                    self.relist(&lead, *listed_as).await?;
                }
                if q.status.is_none_or(|s| s == lead.status) {
                    out.push(lead);
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Ledger for ScyllaStore {
    async fn get_lead_by_id(&self, id: LeadId) -> StoreResult<Option<Lead>> {
        let rows = self.exec(&self.st.ledger.select_lead_id, (blob(id.0),)).await?;
        let key: Option<LeadKeyRow> = rows.into_rows_result()?.maybe_first_row()?;
        let Some(key) = key else { return Ok(None) };
        let lead = self.get_lead(CampaignId(key.campaign_id as u64), &key.external_id).await?;
        Ok(lead.filter(|l| l.id == id))
    }

    async fn get_conversion_by_id(&self, id: ConversionId) -> StoreResult<Option<Conversion>> {
        let rows = self.exec(&self.st.ledger.select_conversion_id, (blob(id.0),)).await?;
        let key: Option<ConversionKeyRow> = rows.into_rows_result()?.maybe_first_row()?;
        let Some((campaign, click)) = key.and_then(|k| Some((k.campaign_id, id_of(&k.click_id)?))) else {
            return Ok(None);
        };
        let conversion = self.get_conversion(CampaignId(campaign as u64), ClickId(click)).await?;
        Ok(conversion.filter(|c| c.id == id))
    }

    async fn replace_lead(&self, lead: &Lead, expected: LeadStatus) -> StoreResult<bool> {
        self.replace_lead_if(lead, expected).await
    }

    async fn list_leads(&self, query: &LeadQuery) -> StoreResult<Vec<Lead>> {
        self.leads_page(query).await
    }

    async fn replace_conversion(&self, conversion: &Conversion, expected: ConversionStatus) -> StoreResult<bool> {
        self.replace_conversion_if(conversion, expected).await
    }

    async fn list_conversions(&self, query: &ConversionQuery) -> StoreResult<Vec<Conversion>> {
        self.conversions_page(query).await
    }

    async fn release_claim(&self, campaign: CampaignId, key: &DedupKey) -> StoreResult<bool> {
        self.release_cap_claim(campaign, key).await
    }

    async fn cap_usage(&self, campaign: CampaignId, windows: &[Window]) -> StoreResult<Vec<Usage>> {
        self.usage_of_windows(campaign, windows).await
    }

    async fn put_referral(&self, referral: &Referral) -> StoreResult<()> {
        let expiry = Due::new(Queue::Expire, referral.expires_at, DueItem::Referral(referral.id));
        self.put_due_items(&[expiry]).await?;
        let row = (blob(referral.id.0), referral_status(referral.status), json(referral));
        // Not applied means a retry found its own row: nothing to do.
        self.exec(&self.st.ledger.insert_referral_if_absent, row).await.map(|_| ())
    }

    async fn get_referral(&self, id: ReferralId) -> StoreResult<Option<Referral>> {
        self.body(&self.st.ledger.select_referral, (blob(id.0),)).await
    }

    async fn replace_referral(&self, referral: &Referral, expected: ReferralStatus) -> StoreResult<bool> {
        if let Some(change) = Change::expiry(referral).filter(|_| expected != ReferralStatus::Expired) {
            self.write_change_row(&change).await?;
        }
        let values = (referral_status(referral.status), json(referral), blob(referral.id.0), referral_status(expected));
        schema::applied(self.exec(&self.st.ledger.update_referral_if, values).await?)
    }

    async fn put_due(&self, items: &[Due]) -> StoreResult<()> {
        self.put_due_items(items).await
    }

    async fn due(&self, queue: Queue, up_to: u64, limit: usize) -> StoreResult<Vec<Due>> {
        self.due_items(queue, up_to, limit).await
    }

    async fn remove_due(&self, item: &Due) -> StoreResult<()> {
        self.remove_due_item(item).await
    }

    async fn create_payout(&self, payout: &Payout) -> StoreResult<Payout> {
        self.insert_payout(payout).await
    }

    async fn get_payout(&self, id: PayoutId) -> StoreResult<Option<Payout>> {
        self.read_payout(id).await
    }

    async fn awaiting_payouts(&self, campaign: CampaignId, limit: usize) -> StoreResult<Vec<Payout>> {
        self.awaiting(campaign, limit).await
    }

    async fn apply_move(&self, mv: &Move) -> StoreResult<MoveOutcome> {
        self.move_payout(mv).await
    }

    async fn fund(&self, funding: &Funding) -> StoreResult<FundOutcome> {
        self.deposit(funding).await
    }

    async fn get_balance(&self, campaign: CampaignId) -> StoreResult<Balance> {
        self.read_balance(campaign).await
    }

    async fn campaign_entries(&self, campaign: CampaignId) -> StoreResult<Vec<Entry>> {
        self.entries(campaign).await
    }

    async fn post_wallet(&self, lines: &[WalletEntry]) -> StoreResult<()> {
        self.post_lines(lines).await
    }

    async fn get_wallet(&self, affiliate: AffiliateId, before: Option<&str>, limit: usize) -> StoreResult<WalletPage> {
        self.wallet_page(affiliate, before, limit).await
    }
}
