//! Campaigns as their advertiser manages them: creating one (its test
//! tracking code, its publishable key, then the campaign), approving an
//! affiliate (a tracking code of their own) and reading the counters. The
//! HTTP handlers parse and validate; the records are made here.

use std::sync::Arc;

use super::Engine;
use crate::domain::ids::{new_tracking_code, AdvertiserId, AffiliateId, CampaignId};
use crate::domain::keys::new_campaign_publishable_key;
use crate::domain::model::*;
use crate::error::{Error, Result};

/// Archived campaigns are read-only.
pub fn editable(campaign: &Campaign) -> Result<()> {
    if campaign.status == CampaignStatus::Archived {
        return Err(Error::Conflict {
            code: "campaign_archived",
            message: format!("campaign '{}' is archived: it is read-only", campaign.id),
        });
    }
    Ok(())
}

/// What an advertiser chose for a new campaign, already validated.
pub struct Terms {
    pub name: String,
    pub landing_url: String,
    pub compensation_model: CompensationModel,
    pub payout_cents: Option<u64>,
    pub payout_bp: Option<u32>,
    pub promo_code: Option<String>,
    pub allowed_origins: Vec<String>,
    pub field_mapping: std::collections::BTreeMap<String, String>,
    pub attribution_window_days: u32,
    pub hold_days: u32,
    pub rules: crate::domain::rules::Rules,
    pub caps: crate::domain::caps::Caps,
    pub fallback_url: Option<String>,
}

impl Engine {
    /// A new draft campaign with its test code and publishable key. The
    /// campaign is written last: if a step fails, what was written before is
    /// a code and a key that no campaign uses, never a campaign without them.
    pub async fn create_campaign(&self, owner: AdvertiserId, terms: Terms) -> Result<Arc<Campaign>> {
        let campaign = Campaign {
            id: CampaignId::random(),
            advertiser_id: owner,
            name: terms.name,
            landing_url: terms.landing_url,
            compensation_model: terms.compensation_model,
            payout_cents: terms.payout_cents,
            payout_bp: terms.payout_bp,
            promo_code: terms.promo_code,
            allowed_origins: terms.allowed_origins,
            field_mapping: terms.field_mapping,
            attribution_window_days: terms.attribution_window_days,
            hold_days: terms.hold_days,
            status: CampaignStatus::Draft,
            test_tracking_code: new_tracking_code(),
            publishable_key: new_campaign_publishable_key(),
            tracking_confirmed_at: None,
            created_at: self.now(),
            version: 0,
            rules: terms.rules,
            caps: terms.caps,
            affiliate_caps: Default::default(),
            fallback_url: terms.fallback_url,
            removed_affiliates: Default::default(),
        };
        let test_code = TrackingCode {
            code: campaign.test_tracking_code.clone(),
            campaign_id: campaign.id,
            affiliate_id: None,
            created_at: campaign.created_at,
        };
        self.catalog.add_code(test_code).await?;
        self.add_campaign_key(owner, campaign.id, &campaign.publishable_key).await?;
        Ok(self.catalog.save_campaign(campaign).await?)
    }

    /// The affiliate's tracking code for `campaign`, made on first approval.
    /// `true` with it: this call made it.
    pub async fn approve_affiliate(
        &self,
        campaign: &Campaign,
        affiliate: AffiliateId,
    ) -> Result<(Arc<TrackingCode>, bool)> {
        editable(campaign)?;
        if self.affiliate(affiliate).await?.is_none() {
            return Err(Error::NotFound(format!("no affiliate '{affiliate}'")));
        }
        let proposed = TrackingCode {
            code: new_tracking_code(),
            campaign_id: campaign.id,
            affiliate_id: Some(affiliate),
            created_at: self.now(),
        };
        let stored = self.catalog.add_code(proposed.clone()).await?;
        let made = stored.code == proposed.code;
        if !campaign.admits(affiliate) {
            // Approving a removed affiliate again revives its code.
            self.edit_campaign(campaign.id, |c| {
                c.removed_affiliates.remove(&affiliate);
                Ok(())
            })
            .await?;
        }
        Ok((stored, made))
    }

    /// Un-approves an affiliate: its links stop redirecting and its new
    /// records are rejected (`affiliate_removed`); what it earned stays.
    /// Returns when it was removed. Not approved (or removed before): 404.
    pub async fn remove_affiliate(&self, campaign: &Campaign, affiliate: AffiliateId) -> Result<u64> {
        let missing =
            || Error::NotFound(format!("affiliate '{affiliate}' is not approved on campaign '{}'", campaign.id));
        if self.catalog.approval(campaign.id, affiliate).await?.is_none() {
            return Err(missing());
        }
        let now = self.now();
        let mut removed_before = false;
        self.edit_campaign(campaign.id, |c| {
            removed_before = c.removed_affiliates.contains_key(&affiliate);
            c.removed_affiliates.entry(affiliate).or_insert(now);
            Ok(())
        })
        .await?;
        if removed_before {
            return Err(missing());
        }
        Ok(now)
    }

    /// Archives a campaign for good (again is a no-op).
    pub async fn archive_campaign(&self, campaign: CampaignId) -> Result<Arc<Campaign>> {
        let saved = self.catalog.update_campaign(campaign, |c| {
            c.status = CampaignStatus::Archived;
            Ok::<_, Error>(())
        });
        saved.await?.ok_or_else(|| Error::NotFound(format!("no campaign '{campaign}'")))
    }

    /// Applies an advertiser's edit to the freshest stored campaign; an
    /// archived campaign refuses every edit (409 `campaign_archived`).
    pub async fn edit_campaign(
        &self,
        id: CampaignId,
        mut edit: impl FnMut(&mut Campaign) -> Result<()>,
    ) -> Result<Arc<Campaign>> {
        let saved = self.catalog.update_campaign(id, |c| {
            editable(c)?;
            edit(c)
        });
        saved.await?.ok_or_else(|| Error::NotFound(format!("no campaign '{id}'")))
    }

    /// A campaign's counters.
    pub async fn campaign_stats(&self, campaign: CampaignId) -> Result<CampaignStats> {
        Ok(self.store.get_stats(campaign).await?)
    }

    /// The change feed after `after`, up to the wall clock (never the test
    /// clock: on CQL the cursor is wall-clock time).
    pub async fn changes(&self, after: &crate::store::FeedCursor, limit: usize) -> Result<crate::store::FeedPage> {
        Ok(self.feed.changes(after, crate::domain::unix_now(), limit).await?)
    }
}
