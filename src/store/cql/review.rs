//! Held conversions on CQL: the review decision (a compare-and-set on the
//! conversion's body, its change row first), its listing row moved, its
//! counters moved; and the listing by status, checked against the rows.

use futures::future::join_all;
use scylla::DeserializeRow;

use super::ledger::id_of;
use super::rows::BodyRow;
use super::{blob, json, parse, schema, ScyllaStore, REJECTED_PREFIX, STATUS_PREFIX};
use crate::domain::ids::*;
use crate::domain::model::*;
use crate::store::{Change, ConversionQuery, Store, StoreError, StoreResult};
use scylla::value::Counter;

const STATUSES: [ConversionStatus; 3] =
    [ConversionStatus::Approved, ConversionStatus::PendingReview, ConversionStatus::Rejected];
const ROUNDS: usize = 8;

#[derive(DeserializeRow)]
struct ListRow {
    id: Vec<u8>,
    click_id: Vec<u8>,
}

impl ScyllaStore {
    pub(super) async fn replace_conversion_if(&self, c: &Conversion, expected: ConversionStatus) -> StoreResult<bool> {
        let mut change = Change::conversion_review(c, expected);
        let key = (c.campaign_id.0 as i64, blob(c.click_id.0));
        for _ in 0..ROUNDS {
            let rows = self.exec(&self.st.select_conversion, key.clone()).await?;
            let row: Option<BodyRow> = rows.into_rows_result()?.maybe_first_row()?;
            let Some(body) = row.map(|r| r.body) else { return Ok(false) };
            let current: Conversion = parse(&body)?;
            if current.status != expected || current.id != c.id {
                return Ok(false);
            }
            if let Some(change) = change.take() {
                self.write_change_row(&change).await?;
            }
            let values = (json(c), key.0, key.1.clone(), body);
            if schema::applied(self.exec(&self.st.caps.update_conversion_if, values).await?)? {
                if current.status != c.status {
                    self.relist_conversion(c, current.status).await?;
                    let (from, to) = (current.status.as_str(), c.status.as_str());
                    self.count_status_move(c.campaign_id, from, to, c.reason.as_deref()).await?;
                }
                return Ok(true);
            }
        }
        Err(StoreError::Failed(format!("conversion {} stayed contended; retry", c.id)))
    }

    async fn relist_conversion(&self, c: &Conversion, from: ConversionStatus) -> StoreResult<()> {
        self.list_conversion_row(c).await?;
        let gone = (c.campaign_id.0 as i64, from.as_str(), blob(c.id.0));
        self.exec(&self.st.caps.list_delete, gone).await.map(drop)
    }

    /// A review decision's counters. Counters are not idempotent: a crash
    /// between the decision and this leaves the status counts one off (the
    /// records themselves are right).
    pub(super) async fn count_status_move(
        &self,
        campaign: CampaignId,
        from: &str,
        to: &str,
        reason: Option<&str>,
    ) -> StoreResult<()> {
        let mut moves = vec![(format!("{STATUS_PREFIX}{from}"), -1), (format!("{STATUS_PREFIX}{to}"), 1)];
        if let Some(reason) = reason.filter(|_| to == "rejected") {
            moves.push((format!("{REJECTED_PREFIX}{reason}"), 1));
        }
        for (name, n) in moves {
            self.exec(&self.st.add_ignored, (Counter(n), campaign.0 as i64, name)).await?;
        }
        Ok(())
    }

    /// Newest first across the statuses asked for; each listed row is
    /// checked against the conversion itself (the truth) and repaired if a
    /// crash left it stale.
    pub(super) async fn conversions_page(&self, q: &ConversionQuery) -> StoreResult<Vec<Conversion>> {
        let statuses: Vec<ConversionStatus> = q.status.map_or(STATUSES.to_vec(), |s| vec![s]);
        let mut before = q.before.map_or(u128::MAX, |b| b.0);
        let mut out = Vec::new();
        while out.len() < q.limit {
            let want = q.limit - out.len();
            let limit = i32::try_from(want).unwrap_or(i32::MAX);
            let reads = statuses
                .iter()
                .map(|s| self.exec(&self.st.caps.list_select, (q.campaign.0 as i64, s.as_str(), blob(before), limit)));
            let mut rows: Vec<(u128, u128, ConversionStatus)> = Vec::new();
            for (status, result) in statuses.iter().zip(join_all(reads).await) {
                for row in result?.into_rows_result()?.rows::<ListRow>()? {
                    let row = row?;
                    if let (Some(id), Some(click)) = (id_of(&row.id), id_of(&row.click_id)) {
                        rows.push((id, click, *status));
                    }
                }
            }
            rows.sort_by_key(|r| std::cmp::Reverse(r.0));
            rows.truncate(want);
            let Some(last) = rows.last() else { break };
            before = last.0;
            let found =
                join_all(rows.iter().map(|(_, click, _)| self.get_conversion(q.campaign, ClickId(*click)))).await;
            for ((id, _, listed_as), c) in rows.iter().zip(found) {
                let Some(c) = c?.filter(|c| c.id.0 == *id) else { continue };
                if c.status != *listed_as {
                    self.relist_conversion(&c, *listed_as).await?;
                }
                if q.status.is_none_or(|s| s == c.status) {
                    out.push(c);
                }
            }
        }
        Ok(out)
    }
}
