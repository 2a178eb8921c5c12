//! The listing APIs' reads: an advertiser's campaigns, a campaign's
//! approved affiliates, an affiliate's campaigns. Each reads one listing
//! index (`Store::campaign_ids_of`, `codes_of_*`) and the campaigns through
//! the catalog's cache, then pages newest first with an opaque cursor.

use std::sync::Arc;

use futures::future::join_all;

use super::Engine;
use crate::domain::cursor::{self, Position};
use crate::domain::ids::*;
use crate::domain::model::*;
use crate::error::Result;

/// One page and the cursor of the next.
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// An affiliate approved on a campaign, with its name when it has a record.
pub struct Approved {
    pub code: TrackingCode,
    pub affiliate: Option<Affiliate>,
}

fn campaign_position(c: &Arc<Campaign>) -> Position {
    Position { at: c.created_at, id: u128::from(c.id.0) }
}

impl Engine {
    /// An advertiser's campaigns of `status`, or every one but the
    /// archived when `status` is `None`.
    pub async fn campaigns_of(
        &self,
        owner: AdvertiserId,
        status: Option<CampaignStatus>,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Page<Arc<Campaign>>> {
        let ids = self.store.campaign_ids_of(owner).await?;
        let mut found = Vec::with_capacity(ids.len());
        for c in join_all(ids.into_iter().map(|id| self.catalog.campaign(id))).await {
            found.extend(c?);
        }
        found.retain(|c| {
            c.advertiser_id == owner && status.map_or(c.status != CampaignStatus::Archived, |s| c.status == s)
        });
        let (items, next) = cursor::page("campaigns", found, campaign_position, after, limit);
        Ok(Page { items, next })
    }

    /// The affiliates approved on `campaign` now (removed ones left out),
    /// each with its record (for its name).
    pub async fn approved_affiliates(
        &self,
        campaign: &Campaign,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Page<Approved>> {
        let codes = self.store.codes_of_campaign(campaign.id).await?;
        let approved: Vec<(AffiliateId, TrackingCode)> = codes
            .into_iter()
            .filter(|c| c.campaign_id == campaign.id)
            .filter_map(|c| c.affiliate_id.filter(|a| campaign.admits(*a)).map(|a| (a, c)))
            .collect();
        let position = |(a, c): &(AffiliateId, TrackingCode)| Position { at: c.created_at, id: u128::from(a.0) };
        let (page, next) = cursor::page("campaign-affiliates", approved, position, after, limit);
        let records = join_all(page.iter().map(|(a, _)| self.affiliate(*a))).await;
        let mut items = Vec::with_capacity(page.len());
        for ((_, code), affiliate) in page.into_iter().zip(records) {
            items.push(Approved { code, affiliate: affiliate? });
        }
        Ok(Page { items, next })
    }

    /// The campaigns `affiliate` is approved on now, with its code on each;
    /// archived campaigns and those it was removed from are left out.
    pub async fn affiliate_campaigns(
        &self,
        affiliate: AffiliateId,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Page<(Arc<Campaign>, TrackingCode)>> {
        let codes = self.store.codes_of_affiliate(affiliate).await?;
        let campaigns = join_all(codes.iter().map(|c| self.catalog.campaign(c.campaign_id))).await;
        let mut found = Vec::with_capacity(codes.len());
        for (code, campaign) in codes.into_iter().zip(campaigns) {
            let Some(campaign) = campaign? else { continue };
            if code.affiliate_id == Some(affiliate)
                && campaign.admits(affiliate)
                && campaign.status != CampaignStatus::Archived
            {
                found.push((campaign, code));
            }
        }
        let position = |(c, _): &(Arc<Campaign>, TrackingCode)| campaign_position(c);
        let (items, next) = cursor::page("affiliate-campaigns", found, position, after, limit);
        Ok(Page { items, next })
    }
}
