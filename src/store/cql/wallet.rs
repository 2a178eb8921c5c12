//! Affiliate wallets on CQL: one partition per affiliate, lines newest
//! first, totals in static columns moved by the same conditional batch that
//! inserts the lines they count. Lines are inserted if absent, which is what
//! makes a repeated credit or clawback harmless.

use std::collections::BTreeMap;

use futures::future::join_all;

use super::due::MAX_ROUNDS;
use super::ledger_rows::*;
use super::{json, parse, ScyllaStore};
use crate::domain::ids::AffiliateId;
use crate::domain::money::{WalletEntry, WalletTotals};
use crate::store::{StoreError, StoreResult, WalletPage};

impl ScyllaStore {
    pub(super) async fn post_lines(&self, lines: &[WalletEntry]) -> StoreResult<()> {
        let mut by_wallet: BTreeMap<AffiliateId, Vec<&WalletEntry>> = BTreeMap::new();
        for line in lines {
            let mine = by_wallet.entry(line.affiliate_id).or_default();
            if mine.iter().all(|l| l.id != line.id) {
                mine.push(line);
            }
        }
        let posts = by_wallet.into_iter().map(|(aff, lines)| self.post_wallet_lines(aff, lines));
        join_all(posts).await.into_iter().collect()
    }

    async fn wallet_totals(&self, aff: AffiliateId) -> StoreResult<WalletTotalsRow> {
        let rows = self.exec(&self.st.ledger.select_wallet_totals, (aff.0 as i64,)).await?;
        let row: Option<WalletTotalsRow> = rows.into_rows_result()?.maybe_first_row()?;
        Ok(row.unwrap_or_default())
    }

    async fn has_line(&self, aff: AffiliateId, line: &WalletEntry) -> StoreResult<bool> {
        let key = (aff.0 as i64, line.at as i64, line.id.clone());
        let rows = self.exec(&self.st.ledger.select_wallet_line, key).await?.into_rows_result()?;
        Ok(rows.rows_num() > 0)
    }

    /// A line's key is (at, id): both derive from the payout's own fixed
    /// timestamps, so a repeated line always lands on the same row.
    async fn post_wallet_lines(&self, aff: AffiliateId, lines: Vec<&WalletEntry>) -> StoreResult<()> {
        let st = &self.st.ledger;
        for _ in 0..MAX_ROUNDS {
            // The totals' version before the lines: a line inserted between
            // the reads comes with a new version, so the batch below fails
            // and the next round sees the line.
            let current = self.wallet_totals(aff).await?;
            let present = join_all(lines.iter().map(|l| self.has_line(aff, l))).await;
            let mut missing = Vec::new();
            for (line, present) in lines.iter().zip(present) {
                if !present? {
                    missing.push(*line);
                }
            }
            if missing.is_empty() {
                return Ok(());
            }
            let mut totals = current.totals()?;
            let mut writes: Vec<super::money::Write> = Vec::new();
            for line in &missing {
                totals.add(line);
                let row = WalletLineInsert {
                    affiliate_id: aff.0 as i64,
                    at: line.at as i64,
                    id: line.id.clone(),
                    body: json(*line),
                };
                writes.push((&st.insert_wallet_line, Box::new(row)));
            }
            let update = WalletTotalsUpdate::new(aff.0 as i64, &totals, current.version);
            writes.push((&st.update_wallet_totals_if, Box::new(update)));
            if self.lwt_batch(writes).await? {
                return Ok(());
            }
        }
        Err(StoreError::Failed(format!("wallet {aff} stayed contended for {MAX_ROUNDS} rounds; retry")))
    }

    /// `before` is the previous page's cursor: `{at}:{line id}` of its last line.
    pub(super) async fn wallet_page(
        &self,
        aff: AffiliateId,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<WalletPage> {
        let st = &self.st.ledger;
        let limit = limit.max(1);
        let totals: WalletTotals = self.wallet_totals(aff).await?.totals()?;
        let cursor = before.and_then(crate::domain::money::wallet_cursor).map(|(at, id)| (at as i64, id));
        let want = i32::try_from(limit + 1).unwrap_or(i32::MAX);
        let result = match cursor {
            Some((at, id)) => {
                self.exec(&st.select_wallet_page_before, (aff.0 as i64, at, id.to_string(), want)).await?
            }
            None => self.exec(&st.select_wallet_page, (aff.0 as i64, want)).await?,
        };
        let rows = result.into_rows_result()?;
        let mut entries: Vec<WalletEntry> = Vec::new();
        for row in rows.rows::<MaybeBodyRow>()? {
            // A wallet with totals but no lines answers one row without a body.
            if let Some(body) = row?.body {
                entries.push(parse(&body)?);
            }
        }
        let next = (entries.len() > limit).then(|| {
            entries.truncate(limit);
            let last = entries.last().expect("limit is at least one");
            format!("{}:{}", last.at, last.id)
        });
        Ok(WalletPage { totals, entries, next })
    }
}
