//! The review queue: conversions and postback or referral leads that a
//! fraud rule held (`pending_review`), listed for the advertiser, who
//! approves them (the normal escrow path starts) or rejects them (nothing
//! is paid and their cap capacity goes back). Decisions are one-way;
//! repeating one is harmless, the opposite one is 409.

use super::Engine;
use crate::domain::caps::{Usage, Window};
use crate::domain::ids::*;
use crate::domain::model::*;
use crate::domain::money::Payout;
use crate::error::{Error, Result};
use crate::metrics;
use crate::store::{ConversionQuery, Keyed, LeadQuery};

const ATTEMPTS: usize = 4;

/// Where a page of the review listing starts.
pub struct ReviewQuery {
    pub campaign: CampaignId,
    pub status: Option<ConversionStatus>,
    /// The raw 128 bits of the previous page's last id (either kind).
    pub before: Option<u128>,
    pub limit: usize,
}

pub struct ReviewPage {
    /// Each record, and whether its payout was reversed since.
    pub items: Vec<(Keyed, bool)>,
    /// The last item's id, to pass back as `before`; `None` on the last page.
    pub next: Option<String>,
}

/// A review decision on a conversion or a lead.
pub struct Decided {
    pub record: Keyed,
    pub payout: Option<Payout>,
}

/// A window of a campaign's caps with its limits and what it has taken.
pub struct CapView {
    pub window: Window,
    pub limit_conversions: Option<u64>,
    pub limit_cents: Option<u64>,
    pub used: Usage,
    pub limit_clicks: Option<u64>,
    /// Counted clicks as stored (a node's unflushed ones are not in yet).
    pub used_clicks: u64,
}

impl Engine {
    /// One page of a campaign's review listing, newest first: its click
    /// conversions and its postback and referral leads (direct leads have
    /// their own listing, `GET /api/v1/leads`), merged by id (both are
    /// time-ordered). `before` is the previous page's last id of either kind.
    pub async fn review_page(&self, advertiser: AdvertiserId, q: ReviewQuery) -> Result<ReviewPage> {
        self.owned_campaign(advertiser, q.campaign).await?;
        let want = q.limit + 1;
        let conversions =
            ConversionQuery { campaign: q.campaign, status: q.status, before: q.before.map(ConversionId), limit: want };
        let lead_status = q.status.map(|s| match s {
            ConversionStatus::Approved => LeadStatus::Verified,
            ConversionStatus::PendingReview => LeadStatus::PendingReview,
            ConversionStatus::Rejected => LeadStatus::Rejected,
        });
        let mut items: Vec<Keyed> =
            self.ledger.list_conversions(&conversions).await?.into_iter().map(Keyed::Conversion).collect();
        let mut leads_before = q.before.map(LeadId);
        // Direct leads are skipped, so a page may need more than one read.
        let mut found = 0;
        while found < want {
            let query = LeadQuery { campaign: q.campaign, status: lead_status, before: leads_before, limit: want };
            let page = self.ledger.list_leads(&query).await?;
            let Some(last) = page.last() else { break };
            leads_before = Some(last.id);
            let full = page.len() >= want;
            for lead in page.into_iter().filter(|l| l.source != LeadSource::Direct) {
                found += 1;
                items.push(Keyed::Lead(lead));
            }
            if !full {
                break;
            }
        }
        items.sort_by_key(|k| std::cmp::Reverse(k.id_bits()));
        let next = (items.len() > q.limit).then(|| {
            items.truncate(q.limit);
            items.last().map(Keyed::id_text).unwrap_or_default()
        });
        let mut marked = Vec::with_capacity(items.len());
        for item in items {
            let reversed = self.reversed(&item).await?;
            marked.push((item, reversed));
        }
        Ok(ReviewPage { items: marked, next })
    }

    /// Whether an approved record's payout was cancelled or clawed back.
    async fn reversed(&self, record: &Keyed) -> Result<bool> {
        if record.status() != "approved" {
            return Ok(false);
        }
        let payout = self.ledger.get_payout(PayoutId(record.id_bits())).await?;
        Ok(payout.is_some_and(|p| p.status == crate::domain::money::PayoutStatus::Reversed))
    }

    /// Approves (`approve`) or rejects a held conversion or lead by id.
    pub async fn decide(
        &self,
        advertiser: AdvertiserId,
        id: &str,
        approve: bool,
        reason: Option<String>,
    ) -> Result<Decided> {
        if let Ok(lead) = id.parse::<LeadId>() {
            let to = if approve { LeadStatus::Verified } else { LeadStatus::Rejected };
            let reviewed = self.review_lead(advertiser, lead, to, reason).await?;
            return Ok(Decided { record: Keyed::Lead(reviewed.lead), payout: reviewed.payout });
        }
        let Ok(id) = id.parse::<ConversionId>() else {
            return Err(Error::NotFound(format!("no conversion or lead '{}'", crate::domain::validate::excerpt(id))));
        };
        self.decide_conversion(advertiser, id, approve, reason).await
    }

    async fn decide_conversion(
        &self,
        advertiser: AdvertiserId,
        id: ConversionId,
        approve: bool,
        reason: Option<String>,
    ) -> Result<Decided> {
        let to = if approve { ConversionStatus::Approved } else { ConversionStatus::Rejected };
        for _ in 0..ATTEMPTS {
            let c = self
                .ledger
                .get_conversion_by_id(id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("no conversion '{id}'")))?;
            self.owned_campaign(advertiser, c.campaign_id).await?;
            let c = if c.status == to {
                c
            } else if c.status != ConversionStatus::PendingReview {
                return Err(Error::Conflict {
                    code: "already_decided",
                    message: format!("conversion '{id}' is already {}; review decisions are final", c.status.as_str()),
                });
            } else {
                let next = Conversion {
                    status: to,
                    reviewed_at: Some(self.now()),
                    reason: if approve { None } else { reason.clone() },
                    ..c
                };
                if approve {
                    self.schedule_payout(&Keyed::Conversion(next.clone())).await?;
                }
                if !self.ledger.replace_conversion(&next, ConversionStatus::PendingReview).await? {
                    continue;
                }
                metrics::lead(if approve { "conversion_approved" } else { "conversion_rejected" });
                next
            };
            let record = Keyed::Conversion(c);
            let payout = match approve {
                true => self.money.pay(&record).await?,
                false => {
                    self.ledger.release_claim(record.campaign(), &record.dedup_key()).await?;
                    None
                }
            };
            return Ok(Decided { record, payout });
        }
        Err(Error::Unavailable(format!("conversion '{id}' kept changing while being reviewed; retry")))
    }

    /// Replaces one affiliate's caps on a campaign (empty removes them).
    pub async fn set_affiliate_caps(
        &self,
        campaign: CampaignId,
        affiliate: AffiliateId,
        caps: crate::domain::caps::Caps,
    ) -> Result<std::sync::Arc<Campaign>> {
        if self.affiliate(affiliate).await?.is_none() {
            return Err(Error::NotFound(format!("no affiliate '{affiliate}'")));
        }
        let max = crate::domain::caps::MAX_AFFILIATE_CAPS;
        self.catalog
            .update_campaign(campaign, |c| {
                super::campaigns::editable(c)?;
                if caps.is_empty() {
                    c.affiliate_caps.remove(&affiliate);
                } else if c.affiliate_caps.len() >= max && !c.affiliate_caps.contains_key(&affiliate) {
                    return Err(crate::domain::validate::invalid(
                        "affiliateId",
                        format!("a campaign may cap at most {max} affiliates"),
                    )
                    .into());
                } else {
                    c.affiliate_caps.insert(affiliate, caps.clone());
                }
                Ok::<_, Error>(())
            })
            .await?
            .ok_or_else(|| Error::NotFound(format!("no campaign '{campaign}'")))
    }

    /// Each capped window of the campaign (and its affiliates) for today
    /// and in total, with what it has taken.
    pub async fn cap_views(&self, campaign: &Campaign) -> Result<Vec<CapView>> {
        use crate::domain::caps::{Caps, Scope};
        let now = self.now();
        let mut wanted: Vec<(Window, crate::domain::caps::Limits)> = Vec::new();
        let mut add = |scope: Scope, caps: &Caps| {
            wanted.push((Window { scope, day: Some(caps.day(now)) }, caps.daily));
            wanted.push((Window { scope, day: None }, caps.total));
        };
        add(Scope::Campaign, &campaign.caps);
        for (aff, caps) in &campaign.affiliate_caps {
            add(Scope::Affiliate(*aff), caps);
        }
        wanted.retain(|(_, limits)| !limits.is_empty());
        let windows: Vec<Window> = wanted.iter().map(|(w, _)| *w).collect();
        let used = self.ledger.cap_usage(campaign.id, &windows).await?;
        let clicks = self.store.get_stats(campaign.id).await?.click_windows;
        Ok(wanted
            .into_iter()
            .zip(used)
            .map(|((window, l), used)| CapView {
                window,
                limit_conversions: l.conversions,
                limit_cents: l.payout_cents,
                used,
                limit_clicks: l.clicks,
                used_clicks: clicks.get(&window.key()).copied().unwrap_or(0),
            })
            .collect())
    }
}
