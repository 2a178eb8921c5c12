//! The money endpoints' service: who may fund, read or reverse what, before
//! `money::Money` does the movement. Funding is idempotent on the caller's
//! key; reversal is idempotent by the payout's status.

use super::Engine;
use crate::domain::ids::*;
use crate::domain::money::{Balance, Payout};
use crate::domain::payout::{bounded_cents, MAX_CAMPAIGN_FUNDS_CENTS};
use crate::domain::review;
use crate::domain::validate::invalid;
use crate::error::{Error, Result};
use crate::store::{FundOutcome, Keyed, WalletPage};

pub struct Deposit {
    pub campaign: CampaignId,
    /// The caller's `Idempotency-Key`; `None` makes every call a new deposit.
    pub key: Option<String>,
    pub cents: u64,
}

impl Engine {
    /// Deposits into the advertiser's campaign. `true`: a new deposit;
    /// `false`: the key was used before and nothing moved. A deposit that
    /// would take the campaign past its bound is a 400 and moves nothing.
    pub async fn fund(&self, advertiser: AdvertiserId, deposit: Deposit) -> Result<(bool, Balance)> {
        let cents = bounded_cents("amountCents", deposit.cents, 1)?;
        let campaign = self.owned_campaign(advertiser, deposit.campaign).await?;
        let key = deposit.key.unwrap_or_else(|| random_base62(24));
        match self.money.fund(campaign.id, &key, cents).await? {
            (FundOutcome::OverLimit, balance) => Err(invalid(
                "amountCents",
                format!(
                    "would take this campaign's deposits past {MAX_CAMPAIGN_FUNDS_CENTS} cents (deposited so far: {})",
                    balance.funded_cents
                ),
            )
            .into()),
            (outcome, balance) => Ok((outcome == FundOutcome::Deposited, balance)),
        }
    }

    pub async fn balance(&self, advertiser: AdvertiserId, campaign: CampaignId) -> Result<Balance> {
        let campaign = self.owned_campaign(advertiser, campaign).await?;
        Ok(self.ledger.get_balance(campaign.id).await?)
    }

    pub async fn wallet(&self, affiliate: AffiliateId, before: Option<&str>, limit: usize) -> Result<WalletPage> {
        if before.is_some_and(|b| crate::domain::money::wallet_cursor(b).is_none()) {
            return Err(crate::domain::validate::invalid("before", "must be a page's nextBefore").into());
        }
        Ok(self.ledger.get_wallet(affiliate, before, limit).await?)
    }

    /// Reverses the payout of a conversion (`cnv_…`) or lead (`lead_…`):
    /// cancelled before it reached the wallet, clawed back after.
    pub async fn reverse(&self, advertiser: AdvertiserId, id: &str, reason: Option<&str>) -> Result<(Keyed, Payout)> {
        let reason = review::reason(reason)?;
        let record = if let Ok(id) = id.parse::<ConversionId>() {
            self.ledger.get_conversion_by_id(id).await?.map(Keyed::Conversion)
        } else if let Ok(id) = id.parse::<LeadId>() {
            self.ledger.get_lead_by_id(id).await?.map(Keyed::Lead)
        } else {
            None
        };
        let record = record.ok_or_else(|| {
            Error::NotFound(format!("no conversion or lead '{}'", crate::domain::validate::excerpt(id)))
        })?;
        self.owned_campaign(advertiser, record.campaign()).await?;
        let payout = self.money.reverse(&record, &reason).await?;
        Ok((record, payout))
    }
}
