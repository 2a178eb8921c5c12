//! Direct leads (the seed's section 4): an affiliate submits a lead with
//! evidence, it waits in `pending_review`, and the advertiser verifies it
//! (which creates its payout) or rejects it. Decisions are final and
//! repeating one is harmless; the store's compare-and-set on the status
//! decides between two reviewers racing.

use serde_json::Value;

use super::referrals::inactive;
use super::Engine;
use crate::domain::ids::*;
use crate::domain::model::*;
use crate::domain::money::Payout;
use crate::domain::review::{self, ReviewError};
use crate::domain::validate::invalid;
use crate::error::{Error, Result};
use crate::metrics;
use crate::store::{Due, DueItem, Keyed, LeadQuery, Queue};

/// Longest tracking code looked up (ours are 8 characters).
const MAX_CODE_LEN: usize = 64;
/// Lost compare-and-sets tolerated before a review answers 503.
const REVIEW_ATTEMPTS: usize = 4;

pub struct NewLead {
    pub campaign: CampaignId,
    pub tracking_code: String,
    pub evidence: Vec<Value>,
}

pub struct LeadPage {
    pub leads: Vec<Lead>,
    /// Pass back as `before` for the next page; `None` on the last one.
    pub next: Option<LeadId>,
}

/// The lead after a review decision, and its payout when it is verified.
pub struct Reviewed {
    pub lead: Lead,
    pub payout: Option<Payout>,
}

impl Engine {
    pub async fn submit_lead(&self, affiliate: AffiliateId, input: NewLead) -> Result<Lead> {
        let evidence = review::evidence(&input.evidence)?;
        let code = input.tracking_code.trim();
        if code.is_empty() || code.chars().count() > MAX_CODE_LEN {
            return Err(invalid(
                "trackingCode",
                format!("is required: your tracking code (1 to {MAX_CODE_LEN} characters)"),
            )
            .into());
        }
        let id = input.campaign;
        let campaign =
            self.catalog.campaign(id).await?.ok_or_else(|| Error::NotFound(format!("no campaign '{id}'")))?;
        if campaign.compensation_model == CompensationModel::RevShare {
            return Err(invalid(
                "campaignId",
                "is a REV_SHARE (percent-of-sale) campaign: direct leads are for FIXED campaigns; \
                 report sales with postbacks or referral confirmations with revenueCents",
            )
            .into());
        }
        let code = self.catalog.code(code).await?;
        let Some(code) = code.filter(|c| c.campaign_id == campaign.id && c.affiliate_id == Some(affiliate)) else {
            return Err(Error::Forbidden(format!("trackingCode is not your tracking code on campaign '{id}'")));
        };
        if !campaign.admits(affiliate) {
            return Err(removed(id));
        }
        if campaign.status != CampaignStatus::Active {
            return Err(inactive("leads can be submitted once the advertiser activates it"));
        }
        let verified = Lead::verified(campaign.id, affiliate, code.code.clone(), String::new(), self.now());
        let lead = Lead {
            external_id: Lead::direct_key(verified.id),
            event_type: EventType::Lead,
            payout_cents: campaign.payout_cents.unwrap_or(0),
            status: LeadStatus::PendingReview,
            source: LeadSource::Direct,
            evidence,
            ..verified
        };
        let (_, lead) = self.record_lead(lead, None).await?;
        metrics::lead("submitted");
        Ok(lead)
    }

    /// One page of a campaign's leads, newest first.
    pub async fn list_leads(&self, advertiser: AdvertiserId, mut query: LeadQuery) -> Result<LeadPage> {
        self.owned_campaign(advertiser, query.campaign).await?;
        let limit = query.limit;
        query.limit = limit + 1;
        let mut leads = self.ledger.list_leads(&query).await?;
        let next = (leads.len() > limit).then(|| {
            leads.truncate(limit);
            leads.last().expect("limit is at least one").id
        });
        Ok(LeadPage { leads, next })
    }

    /// Verifies (`to: Verified`) or rejects a lead. Repeating the decision it
    /// already has answers it again (and makes sure a verified lead's payout
    /// exists); the opposite decision is 409 `already_decided`.
    pub async fn review_lead(
        &self,
        advertiser: AdvertiserId,
        id: LeadId,
        to: LeadStatus,
        reason: Option<String>,
    ) -> Result<Reviewed> {
        for _ in 0..REVIEW_ATTEMPTS {
            let lead =
                self.ledger.get_lead_by_id(id).await?.ok_or_else(|| Error::NotFound(format!("no lead '{id}'")))?;
            self.owned_campaign(advertiser, lead.campaign_id).await?;
            let lead = match review::decide(&lead, to, reason.clone(), self.now()) {
                Ok(None) => lead,
                Ok(Some(next)) => {
                    if to == LeadStatus::Verified {
                        self.schedule_payout(&Keyed::Lead(next.clone())).await?;
                    }
                    if !self.ledger.replace_lead(&next, LeadStatus::PendingReview).await? {
                        continue;
                    }
                    metrics::lead(if to == LeadStatus::Verified { "verified" } else { "rejected" });
                    next
                }
                Err(ReviewError::AlreadyDecided(status)) => {
                    return Err(Error::Conflict {
                        code: "already_decided",
                        message: format!(
                            "lead '{id}' is already {status}; review decisions are final \
                             (to take back a verified lead's payout, reverse it: POST /api/v1/conversions/{id}/reverse)"
                        ),
                    })
                }
            };
            // A rejected lead pays nothing and gives back any cap capacity
            // it held (a postback or referral lead a rule held for review).
            let record = Keyed::Lead(lead.clone());
            let payout = match lead.status {
                LeadStatus::Verified => self.money.pay(&record).await?,
                LeadStatus::Rejected => {
                    self.ledger.release_claim(record.campaign(), &record.dedup_key()).await?;
                    None
                }
                LeadStatus::PendingReview => None,
            };
            return Ok(Reviewed { lead, payout });
        }
        Err(Error::Unavailable(format!("lead '{id}' kept changing while being reviewed; retry")))
    }

    /// The payout intent of a record about to be approved on review (a
    /// lead verified, a held conversion approved), due a grace period from
    /// now: if this request dies between deciding and paying, the escrow
    /// supervisor pays it; if it does not, paying twice is harmless.
    pub(crate) async fn schedule_payout(&self, record: &Keyed) -> Result<()> {
        let at = self.now() + self.config.money.record_grace_secs;
        let item = DueItem::Record(record.campaign(), record.dedup_key());
        Ok(self.ledger.put_due(&[Due::new(Queue::Escrow, at, item)]).await?)
    }
}

/// The advertiser un-approved the affiliate: it may not submit new records.
pub(crate) fn removed(id: CampaignId) -> Error {
    Error::Forbidden(format!("you are no longer approved on campaign '{id}': the advertiser removed you"))
}
