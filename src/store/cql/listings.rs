//! The listing indexes (migration 8): an advertiser's campaigns and the
//! approvals of a campaign or an affiliate, one partition read each.

use futures::StreamExt;
use scylla::statement::prepared::PreparedStatement;

use super::rows::CodeRow;
use super::ScyllaStore;
use crate::domain::ids::*;
use crate::domain::model::{Campaign, TrackingCode};
use crate::store::{Store, StoreResult};

impl ScyllaStore {
    /// Before the campaign row: a listed id whose campaign is missing is skipped.
    pub(super) async fn index_campaign(&self, c: &Campaign) -> StoreResult<()> {
        self.exec(&self.st.index_campaign, (c.advertiser_id.0 as i64, c.id.0 as i64)).await.map(drop)
    }

    /// After the code is decided (so a lost race indexes the winner), on
    /// every approval, so a retry repairs an index an earlier call missed.
    pub(super) async fn index_code(&self, code: &TrackingCode) -> StoreResult<()> {
        let Some(affiliate) = code.affiliate_id else { return Ok(()) };
        let (cmp, aff) = (code.campaign_id.0 as i64, affiliate.0 as i64);
        let by_campaign = self.exec(&self.st.index_approval_by_campaign, (cmp, aff, code.code.clone()));
        let by_affiliate = self.exec(&self.st.index_approval_by_affiliate, (aff, cmp, code.code.clone()));
        let (a, b) = tokio::join!(by_campaign, by_affiliate);
        a.and(b).map(drop)
    }

    pub(super) async fn listed_campaign_ids(&self, advertiser: AdvertiserId) -> StoreResult<Vec<CampaignId>> {
        let pager = self.session.execute_iter(self.st.select_campaign_ids_of.clone(), (advertiser.0 as i64,)).await?;
        let mut rows = pager.rows_stream::<(i64,)>()?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().await {
            out.push(CampaignId(row?.0 as u64));
        }
        Ok(out)
    }

    /// The codes an approval index names, each read from `tracking_codes`.
    pub(super) async fn listed_codes(&self, st: &PreparedStatement, owner: u64) -> StoreResult<Vec<TrackingCode>> {
        let pager = self.session.execute_iter(st.clone(), (owner as i64,)).await?;
        let mut rows = pager.rows_stream::<CodeRow>()?;
        let mut names = Vec::new();
        while let Some(row) = rows.next().await {
            names.push(row?.code);
        }
        let found = futures::future::join_all(names.iter().map(|n| self.get_tracking_code(n))).await;
        Ok(found.into_iter().collect::<StoreResult<Vec<_>>>()?.into_iter().flatten().collect())
    }
}
