//! Agent referrals (the seed's section 3). An approved affiliate creates a
//! referral and gets its signed token; the campaign's advertiser may check a
//! token, and confirms by referral id. A confirmation records one verified
//! lead through the campaign's actor, keyed on `Lead::referral_key`, so two
//! confirmations racing (on one node or on two) still make exactly one lead;
//! the referral is then marked confirmed with a compare-and-set.

use serde_json::{Map, Value};

use super::Engine;
use crate::domain::ids::*;
use crate::domain::model::*;
use crate::domain::referral::{self, Referral, ReferralClaims, ReferralStatus};
use crate::domain::token::TokenError;
use crate::domain::validate::{self, invalid};
use crate::error::{Error, Result};
use crate::metrics;
use crate::store::Keyed;

pub struct NewReferral {
    pub campaign: CampaignId,
    pub metadata: Option<Map<String, Value>>,
    pub expires_in_hours: Option<i64>,
}

pub struct Confirmation {
    /// Whole cents, not yet checked for sign.
    pub revenue_cents: Option<i64>,
    pub metadata: Option<Map<String, Value>>,
}

/// What checking a token found. `valid` only for a token we signed whose
/// referral is stored and still active.
#[derive(Debug)]
pub struct TokenCheck {
    pub valid: bool,
    /// Why not: `malformed`, `bad_signature`, `unknown_referral`, `expired`,
    /// `already_confirmed`.
    pub reason: Option<&'static str>,
    /// The signed claims (absent when the token is not ours).
    pub claims: Option<ReferralClaims>,
    /// The stored referral's status as of now.
    pub status: Option<ReferralStatus>,
}

impl Engine {
    pub async fn create_referral(&self, affiliate: AffiliateId, input: NewReferral) -> Result<(Referral, String)> {
        let ttl = referral::expiry_seconds(input.expires_in_hours)?;
        let (_, metadata) = validate::split_fields(
            "metadata",
            &input.metadata.unwrap_or_default(),
            &Default::default(),
            self.config.field_limits(),
        )?;
        let id = input.campaign;
        let campaign =
            self.catalog.campaign(id).await?.ok_or_else(|| Error::NotFound(format!("no campaign '{id}'")))?;
        if self.catalog.approval(campaign.id, affiliate).await?.is_none() {
            return Err(Error::Forbidden(format!(
                "you are not approved on campaign '{id}'; referrals are for campaigns you have a tracking code for"
            )));
        }
        if !campaign.admits(affiliate) {
            return Err(super::leads::removed(id));
        }
        if campaign.status != CampaignStatus::Active {
            return Err(inactive("referrals can be created once the advertiser activates it"));
        }
        let now = self.now();
        let referral = Referral {
            id: ReferralId::new(),
            campaign_id: campaign.id,
            affiliate_id: affiliate,
            metadata,
            created_at: now,
            expires_at: now + ttl,
            status: ReferralStatus::Active,
            lead_id: None,
            confirmed_at: None,
        };
        self.ledger.put_referral(&referral).await?;
        let claims = ReferralClaims {
            id: referral.id,
            campaign: referral.campaign_id,
            affiliate: referral.affiliate_id,
            expires_at: referral.expires_at,
        };
        metrics::referral("created");
        Ok((referral, referral::sign(&self.tokens, &claims)))
    }

    /// Checks a token for the advertiser about to act on it. A token that is
    /// not ours is a 200 answer (`valid: false`), not an error; a genuine
    /// token of another advertiser's campaign is 403, so nothing about
    /// another advertiser's referrals is revealed.
    pub async fn check_referral_token(&self, advertiser: AdvertiserId, token: &str) -> Result<TokenCheck> {
        let token = token.trim();
        if token.is_empty() {
            return Err(invalid("token", "is required").into());
        }
        let claims = match referral::verify(&self.tokens, token) {
            Ok(claims) => claims,
            Err(e) => {
                let reason = if e == TokenError::Malformed { "malformed" } else { "bad_signature" };
                return Ok(TokenCheck { valid: false, reason: Some(reason), claims: None, status: None });
            }
        };
        self.owned_campaign(advertiser, claims.campaign).await?;
        let status = self.ledger.get_referral(claims.id).await?.map(|r| r.status_at(self.now()));
        let reason = match status {
            None => Some("unknown_referral"),
            Some(ReferralStatus::Active) => None,
            Some(ReferralStatus::Expired) => Some("expired"),
            Some(ReferralStatus::Confirmed) => Some("already_confirmed"),
        };
        Ok(TokenCheck { valid: reason.is_none(), reason, claims: Some(claims), status })
    }

    /// Records the referral's verified lead and marks the referral confirmed.
    pub async fn confirm_referral(
        &self,
        advertiser: AdvertiserId,
        id: ReferralId,
        input: Confirmation,
    ) -> Result<(Lead, Referral)> {
        let referral =
            self.ledger.get_referral(id).await?.ok_or_else(|| Error::NotFound(format!("no referral '{id}'")))?;
        let campaign = self.owned_campaign(advertiser, referral.campaign_id).await?;
        match referral.status_at(self.now()) {
            ReferralStatus::Confirmed => return Err(already_confirmed(id, referral.lead_id)),
            ReferralStatus::Expired => return Err(self.expired(&referral).await?),
            ReferralStatus::Active => {}
        }
        if campaign.status != CampaignStatus::Active {
            return Err(inactive("activate it first"));
        }
        let revenue = crate::domain::payout::revenue_cents(input.revenue_cents)?;
        let payout_cents = crate::domain::payout::payout_for(&campaign, revenue)?;
        let (fields, extra) = validate::split_fields(
            "metadata",
            &input.metadata.unwrap_or_default(),
            &campaign.field_mapping,
            self.config.field_limits(),
        )?;
        let code = self.catalog.approval(campaign.id, referral.affiliate_id).await?;
        let tracking_code = code.map(|c| c.code.clone()).unwrap_or_default();
        let lead = Lead {
            event_type: if revenue.is_some() { EventType::Purchase } else { EventType::Lead },
            revenue_cents: revenue,
            payout_cents,
            fields,
            extra,
            source: LeadSource::Referral,
            referral_id: Some(id),
            ..Lead::verified(campaign.id, referral.affiliate_id, tracking_code, Lead::referral_key(id), self.now())
        };
        let (fresh, lead) = self.record_lead(lead, Some(&campaign)).await?;
        // Whoever recorded the lead, the referral must end up naming it: a
        // request that lost the race, or a retry after a crash between the
        // two writes, repairs it before answering 409.
        let referral = self.mark_confirmed(&referral, &lead).await?;
        if !fresh {
            return Err(already_confirmed(id, Some(lead.id)));
        }
        metrics::referral("confirmed");
        // The supervisors pay every stored verified record; paying here only
        // makes the payout visible at once, so a failure is not the caller's.
        if let Err(e) = self.money.pay(&Keyed::Lead(lead.clone())).await {
            tracing::warn!(lead = %lead.id, error = %e, "immediate payout failed; the escrow supervisor will retry");
        }
        Ok((lead, referral))
    }

    /// Marks `referral` confirmed by `lead`, from whatever status it has now.
    /// An expired one is confirmed too: the lead was recorded, so the
    /// confirmation happened in time.
    async fn mark_confirmed(&self, referral: &Referral, lead: &Lead) -> Result<Referral> {
        let confirmed = Referral {
            status: ReferralStatus::Confirmed,
            lead_id: Some(lead.id),
            confirmed_at: Some(lead.created_at),
            ..referral.clone()
        };
        for expected in [ReferralStatus::Active, ReferralStatus::Expired] {
            if self.ledger.replace_referral(&confirmed, expected).await? {
                return Ok(confirmed);
            }
        }
        Ok(self.ledger.get_referral(referral.id).await?.unwrap_or(confirmed))
    }

    /// 410 for a referral past its expiry, unless its lead exists (recorded
    /// in time, then a crash before the referral was marked): then the
    /// referral is repaired and the answer is the 409 a confirmed one gets.
    async fn expired(&self, referral: &Referral) -> Result<Error> {
        if let Some(lead) = self.store.get_lead(referral.campaign_id, &Lead::referral_key(referral.id)).await? {
            self.mark_confirmed(referral, &lead).await?;
            return Ok(already_confirmed(referral.id, Some(lead.id)));
        }
        Ok(Error::Gone {
            code: "referral_expired",
            message: format!("referral '{}' expired; the affiliate can create a new one", referral.id),
        })
    }
}

fn already_confirmed(id: ReferralId, lead: Option<LeadId>) -> Error {
    let lead = lead.map(|l| l.to_string()).unwrap_or_default();
    Error::Exists {
        code: "already_confirmed",
        message: format!("referral '{id}' was already confirmed as lead '{lead}'; each referral is confirmed once"),
        id_field: "leadId",
        id: lead,
    }
}

pub(crate) fn inactive(then: &str) -> Error {
    Error::Conflict { code: "campaign_inactive", message: format!("the campaign is not active; {then}") }
}
