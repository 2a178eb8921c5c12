//! `Ledger` on the embedded store: review, referrals, the due-time index and
//! the money, each call one read or one write job over the table functions
//! in `money.rs` and `events.rs`.

use super::*;
use crate::domain::keyed::lead_status;

#[async_trait]
impl Ledger for EmbeddedStore {
    async fn get_lead_by_id(&self, id: LeadId) -> StoreResult<Option<Lead>> {
        self.read(move |txn| lead_by_id(txn, id)).await
    }

    async fn get_conversion_by_id(&self, id: ConversionId) -> StoreResult<Option<Conversion>> {
        self.read(move |txn| {
            let found = txn.open_table(CONVERSION_INDEX)?.get(id.0)?.map(|v| v.value());
            match found {
                Some(key) => get_json(txn, CONVERSIONS, key),
                None => Ok(None),
            }
        })
        .await
    }

    async fn replace_lead(&self, lead: &Lead, expected: LeadStatus) -> StoreResult<bool> {
        let lead = lead.clone();
        self.write(move |txn| {
            let mut leads = txn.open_table(LEADS)?;
            let key = (lead.campaign_id.0, lead.external_id.as_str());
            let current: Option<Lead> = leads.get(key)?.map(|v| dec(v.value())).transpose()?;
            if current.map(|l| l.status) != Some(expected) {
                return Ok(false);
            }
            leads.insert(key, enc(&lead).as_slice())?;
            drop(leads);
            if expected != lead.status {
                let mut stats = txn.open_table(STATS)?;
                let delta = review_delta(lead_status(lead.status), lead.rejection_reason.as_deref());
                events::move_status(&mut stats, lead.campaign_id, lead_status(expected), &delta)?;
            }
            super::feed::append_changes(txn, &Change::review(&lead, expected).into_iter().collect::<Vec<_>>())?;
            Ok(true)
        })
        .await
    }

    async fn replace_conversion(&self, conversion: &Conversion, expected: ConversionStatus) -> StoreResult<bool> {
        let conversion = conversion.clone();
        self.write(move |txn| {
            let mut table = txn.open_table(CONVERSIONS)?;
            let key = (conversion.campaign_id.0, conversion.click_id.0);
            let current: Option<Conversion> = table.get(key)?.map(|v| dec(v.value())).transpose()?;
            let Some(current) = current.filter(|c| c.status == expected && c.id == conversion.id) else {
                return Ok(false);
            };
            table.insert(key, enc(&conversion).as_slice())?;
            drop(table);
            if current.status != conversion.status {
                events::unlist_conversion(txn, &current, current.status)?;
                events::list_conversion(txn, &conversion)?;
                let mut stats = txn.open_table(STATS)?;
                let delta = review_delta(conversion.status.as_str(), conversion.reason.as_deref());
                events::move_status(&mut stats, conversion.campaign_id, current.status.as_str(), &delta)?;
            }
            super::feed::append_changes(
                txn,
                &Change::conversion_review(&conversion, expected).into_iter().collect::<Vec<_>>(),
            )?;
            Ok(true)
        })
        .await
    }

    async fn list_conversions(&self, query: &ConversionQuery) -> StoreResult<Vec<Conversion>> {
        let query = query.clone();
        self.read(move |txn| events::list_conversions(txn, &query)).await
    }

    async fn release_claim(&self, campaign: CampaignId, key: &DedupKey) -> StoreResult<bool> {
        let key = key.clone();
        self.write(move |txn| caps::release(txn, campaign, &key)).await
    }

    async fn cap_usage(&self, campaign: CampaignId, windows: &[Window]) -> StoreResult<Vec<Usage>> {
        let windows = windows.to_vec();
        self.read(move |txn| caps::usage(txn, campaign, &windows)).await
    }

    async fn list_leads(&self, query: &LeadQuery) -> StoreResult<Vec<Lead>> {
        let query = query.clone();
        self.read(move |txn| list_leads(txn, &query)).await
    }

    async fn put_referral(&self, referral: &Referral) -> StoreResult<()> {
        let (id, value, expires) = (referral.id, enc(referral), referral.expires_at);
        self.write(move |txn| {
            txn.open_table(REFERRALS)?.insert(id.0, value.as_slice())?;
            money::put_due(txn, &[Due::new(Queue::Expire, expires, DueItem::Referral(id))])
        })
        .await
    }

    async fn get_referral(&self, id: ReferralId) -> StoreResult<Option<Referral>> {
        self.read(move |txn| get_json(txn, REFERRALS, id.0)).await
    }

    async fn replace_referral(&self, referral: &Referral, expected: ReferralStatus) -> StoreResult<bool> {
        let (id, value) = (referral.id, enc(referral));
        let change = Change::expiry(referral).filter(|_| expected != ReferralStatus::Expired);
        self.write(move |txn| {
            let mut table = txn.open_table(REFERRALS)?;
            let current: Option<Referral> = table.get(id.0)?.map(|v| dec(v.value())).transpose()?;
            if current.map(|r| r.status) != Some(expected) {
                return Ok(false);
            }
            table.insert(id.0, value.as_slice())?;
            drop(table);
            super::feed::append_changes(txn, change.as_slice())?;
            Ok(true)
        })
        .await
    }

    async fn put_due(&self, items: &[Due]) -> StoreResult<()> {
        let items = items.to_vec();
        self.write(move |txn| money::put_due(txn, &items)).await
    }

    async fn due(&self, queue: Queue, up_to: u64, limit: usize) -> StoreResult<Vec<Due>> {
        self.read(move |txn| money::due(txn, queue, up_to, limit)).await
    }

    async fn remove_due(&self, item: &Due) -> StoreResult<()> {
        let item = item.clone();
        self.write(move |txn| money::remove_due(txn, &item)).await
    }

    async fn create_payout(&self, payout: &Payout) -> StoreResult<Payout> {
        let payout = payout.clone();
        self.write(move |txn| money::create_payout(txn, &payout)).await
    }

    async fn get_payout(&self, id: PayoutId) -> StoreResult<Option<Payout>> {
        self.read(move |txn| money::get_payout(txn, id)).await
    }

    async fn awaiting_payouts(&self, campaign: CampaignId, limit: usize) -> StoreResult<Vec<Payout>> {
        self.read(move |txn| money::awaiting(txn, campaign, limit)).await
    }

    /// One write job for the whole pass. If it fails (a payout over its
    /// bounds, say), the items go one call each, so one item that cannot be
    /// paid does not hold back the others.
    async fn pay_due(&self, items: Vec<PayDue>, now: u64, concurrency: usize) -> StoreResult<Vec<Paid>> {
        let together = items.clone();
        match self.write(move |txn| money::pay_due(txn, &together, now)).await {
            Ok(paid) => Ok(paid),
            Err(e) if self.db.failing().is_some() => Err(e),
            Err(_) => pay_each(self, items, now, concurrency).await,
        }
    }

    async fn apply_move(&self, mv: &Move) -> StoreResult<MoveOutcome> {
        let mv = mv.clone();
        self.write(move |txn| money::apply_move(txn, &mv)).await
    }

    async fn fund(&self, funding: &Funding) -> StoreResult<FundOutcome> {
        let funding = funding.clone();
        self.write(move |txn| money::fund(txn, &funding)).await
    }

    async fn get_balance(&self, campaign: CampaignId) -> StoreResult<Balance> {
        self.read(move |txn| money::balance(txn, campaign)).await
    }

    async fn campaign_entries(&self, campaign: CampaignId) -> StoreResult<Vec<Entry>> {
        self.read(move |txn| money::entries(txn, campaign)).await
    }

    async fn post_wallet(&self, lines: &[WalletEntry]) -> StoreResult<()> {
        let lines = lines.to_vec();
        self.write(move |txn| money::post_wallet(txn, &lines)).await
    }

    async fn get_wallet(&self, affiliate: AffiliateId, before: Option<&str>, limit: usize) -> StoreResult<WalletPage> {
        let before = before.map(str::to_string);
        self.read(move |txn| money::wallet(txn, affiliate, before.as_deref(), limit)).await
    }
}

/// What a review decision adds: one of the new status (and of its reason,
/// if it is a rejection); the status it leaves is taken off in place.
fn review_delta(to: &str, reason: Option<&str>) -> CampaignStats {
    let mut delta = CampaignStats::default();
    delta.statuses.insert(to.to_string(), 1);
    if let Some(reason) = reason.filter(|_| to == "rejected") {
        delta.rejected.insert(reason.to_string(), 1);
    }
    delta
}
