//! A campaign's money on CQL: payouts, ledger entries and the balance live
//! in one `campaign_money` partition, so each movement is one conditional
//! batch (`IF status = before` on the payout, `IF version = v` on the
//! balance). What sits in other partitions is ordered around it: due items
//! before (a crash leaves an intent the supervisors resolve), wallet lines
//! after (inserted if absent, so repeating them is harmless).

use futures::future::join_all;
use futures::StreamExt;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch as CqlBatch, BatchType};
use scylla::statement::prepared::PreparedStatement;

use super::due::MAX_ROUNDS;
use super::ledger_rows::*;
use super::{json, parse, schema, ScyllaStore};
use crate::domain::ids::*;
use crate::domain::money::*;
use crate::store::due::scheduled_by;
use crate::store::Change;
use crate::store::{Due, DueItem, FundOutcome, MoveOutcome, Queue, StoreError, StoreResult};

pub(super) type Write<'a> = (&'a PreparedStatement, Box<dyn SerializeRow + Send + Sync>);

fn cents(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

fn contended(what: &str) -> StoreError {
    StoreError::Failed(format!("{what} stayed contended for {MAX_ROUNDS} rounds; retry"))
}

/// The due items to write before a movement: what it schedules, and for a
/// step that changes the wallet, a wallet-crediting item, so a crash between
/// the campaign-side batch and the wallet lines is repaired by that
/// supervisor (it re-posts `wallet_entries(payout)`).
fn intents(mv: &Move) -> Vec<Due> {
    let p = &mv.after;
    let mut out = scheduled_by(mv);
    let settled = match mv.step {
        Step::Credit => p.credited_at,
        Step::Cancel | Step::Clawback => p.reversed_at,
        Step::Escrow | Step::Release => return out,
    };
    out.push(Due::new(Queue::Credit, settled.unwrap_or(p.created_at), DueItem::Payout(p.id)));
    out
}

impl ScyllaStore {
    /// One single-partition conditional batch; `true` if it applied.
    pub(super) async fn lwt_batch(&self, writes: Vec<Write<'_>>) -> StoreResult<bool> {
        let mut batch = CqlBatch::new(BatchType::Logged);
        batch.set_execution_profile_handle(Some(self.st.ledger.lwt.clone()));
        batch.set_is_idempotent(true);
        let mut values = Vec::with_capacity(writes.len());
        for (st, v) in writes {
            batch.append_statement(st.clone());
            values.push(v);
        }
        let _permit = self.permits.acquire().await?;
        schema::applied(self.session.batch(&batch, values).await?)
    }

    async fn payout_campaign(&self, id: PayoutId) -> StoreResult<Option<CampaignId>> {
        let rows = self.exec(&self.st.ledger.select_payout_id, (id.to_string(),)).await?;
        let row: Option<CampaignOfRow> = rows.into_rows_result()?.maybe_first_row()?;
        Ok(row.map(|r| CampaignId(r.campaign_id as u64)))
    }

    /// The payout and its campaign's balance, read together.
    async fn payout_money(&self, campaign: CampaignId, id: PayoutId) -> StoreResult<Option<(Payout, StaticsRow)>> {
        let key = (campaign.0 as i64, id.to_string());
        let rows = self.exec(&self.st.ledger.select_money_payout, key).await?;
        let row: Option<PayoutMoneyRow> = rows.into_rows_result()?.maybe_first_row()?;
        let Some(row) = row else { return Ok(None) };
        let body = row.body.as_deref().ok_or_else(|| StoreError::Failed(format!("payout {id} has no body")))?;
        Ok(Some((parse(body)?, row.statics())))
    }

    async fn statics(&self, campaign: CampaignId) -> StoreResult<StaticsRow> {
        let rows = self.exec(&self.st.ledger.select_money_statics, (campaign.0 as i64,)).await?;
        let row: Option<StaticsRow> = rows.into_rows_result()?.maybe_first_row()?;
        Ok(row.unwrap_or_default())
    }

    pub(super) async fn read_payout(&self, id: PayoutId) -> StoreResult<Option<Payout>> {
        let Some(campaign) = self.payout_campaign(id).await? else { return Ok(None) };
        Ok(self.payout_money(campaign, id).await?.map(|(p, _)| p))
    }

    pub(super) async fn read_balance(&self, campaign: CampaignId) -> StoreResult<Balance> {
        Ok(self.statics(campaign).await?.balance())
    }

    /// Index first, then the escrow intent, then the payout and its awaiting
    /// row in one conditional batch, then the pending wallet line (also when
    /// the payout existed: that repairs a create that died half way).
    pub(super) async fn insert_payout(&self, p: &Payout) -> StoreResult<Payout> {
        let st = &self.st.ledger;
        let (campaign, id) = (p.campaign_id.0 as i64, p.id.to_string());
        self.exec(&st.insert_payout_id, (id.clone(), campaign)).await?;
        self.put_due_items(&[Due::new(Queue::Escrow, p.created_at, DueItem::Payout(p.id))]).await?;
        let row =
            PayoutInsert { campaign_id: campaign, id: id.clone(), status: p.status.as_str().into(), body: json(p) };
        let mut writes: Vec<Write> = vec![(&st.insert_payout_if_absent, Box::new(row))];
        if p.status == PayoutStatus::AwaitingFunds {
            writes.push((&st.insert_awaiting, Box::new(MoneyKey { campaign_id: campaign, id })));
        }
        let applied = {
            let _turn = self.money_turn(p.campaign_id).await;
            self.lwt_batch(writes).await?
        };
        let stored = if applied {
            p.clone()
        } else {
            let found = self.payout_money(p.campaign_id, p.id).await?;
            found.map(|(p, _)| p).ok_or_else(|| StoreError::Failed(format!("payout {} vanished", p.id)))?
        };
        self.post_lines(&wallet_entries(&stored)).await?;
        Ok(stored)
    }

    pub(super) async fn awaiting(&self, campaign: CampaignId, limit: usize) -> StoreResult<Vec<Payout>> {
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let rows = self.exec(&self.st.ledger.select_money_rows, (campaign.0 as i64, "awaiting", limit)).await?;
        let rows = rows.into_rows_result()?;
        let ids: Vec<PayoutId> =
            rows.rows::<IdBodyRow>()?.filter_map(|r| r.ok().and_then(|r| r.id.parse().ok())).collect();
        let found = join_all(ids.into_iter().map(|id| self.payout_money(campaign, id))).await;
        let mut out = Vec::new();
        for p in found {
            out.extend(p?.map(|(p, _)| p));
        }
        Ok(out)
    }

    pub(super) async fn entries(&self, campaign: CampaignId) -> StoreResult<Vec<Entry>> {
        let values = (campaign.0 as i64, "entry", i32::MAX);
        let pager = self.session.execute_iter(self.st.ledger.select_money_rows.clone(), values).await?;
        let mut rows = pager.rows_stream::<IdBodyRow>()?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().await {
            if let Some(body) = row?.body {
                out.push(parse(&body)?);
            }
        }
        Ok(out)
    }

    /// Waits for this process's turn at the campaign's money partition. The
    /// supervisors step many payouts at once; conditional batches racing on
    /// one partition would mostly lose their balance-version check and retry
    /// (and Paxos contention times out), so within a process they queue here
    /// and only other nodes' steps make a round fail.
    async fn money_turn(&self, campaign: CampaignId) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self.money_turns.entry(campaign).or_default().clone();
        lock.lock_owned().await
    }

    pub(super) async fn move_payout(&self, mv: &Move) -> StoreResult<MoveOutcome> {
        let _turn = self.money_turn(mv.after.campaign_id).await;
        let st = &self.st.ledger;
        let p = &mv.after;
        let (campaign, id) = (p.campaign_id.0 as i64, p.id.to_string());
        let mut intents_written = false;
        for _ in 0..MAX_ROUNDS {
            let found = self.payout_money(p.campaign_id, p.id).await?;
            let (stored, statics) = found.ok_or_else(|| StoreError::Failed("no such payout".into()))?;
            if stored.status != mv.before {
                return Ok(MoveOutcome::Moved(stored));
            }
            let balance = statics.balance();
            if mv.needs_available > 0 && balance.available_cents < cents(mv.needs_available) {
                return Ok(MoveOutcome::InsufficientFunds);
            }
            if !intents_written {
                let (due, change) = (intents(mv), Change::moved(mv));
                tokio::try_join!(self.put_due_items(&due), self.write_change_row(&change))?;
                intents_written = true;
            }
            let update = PayoutUpdate {
                status: p.status.as_str().into(),
                body: json(p),
                campaign_id: campaign,
                id: id.clone(),
                expected: mv.before.as_str().into(),
            };
            let mut writes: Vec<Write> = vec![(&st.update_payout_if, Box::new(update))];
            if !mv.campaign_entries.is_empty() {
                // Bounded deposits bound every account; this refusal is for
                // data from before the bounds, and leaves the payout as it was.
                let after =
                    balance.after(&mv.campaign_entries).map_err(|e| StoreError::Failed(format!("payout {id}: {e}")))?;
                writes.push((&st.update_balance_if, Box::new(BalanceUpdate::new(campaign, &after, statics.version))));
                for e in &mv.campaign_entries {
                    let row = EntryInsert { campaign_id: campaign, id: e.id.clone(), body: json(e) };
                    writes.push((&st.insert_entry, Box::new(row)));
                }
            }
            if mv.before == PayoutStatus::AwaitingFunds {
                writes.push((&st.delete_awaiting, Box::new(MoneyKey { campaign_id: campaign, id: id.clone() })));
            }
            // Not applied: the payout moved (answered next round) or another
            // movement of this campaign changed the balance (try again).
            if self.lwt_batch(writes).await? {
                // Again, after the step: a supervisor may have taken (and, the
                // step not having landed, removed) an intent in between.
                self.put_due_items(&intents(mv)).await?;
                self.post_lines(&mv.wallet).await?;
                return Ok(MoveOutcome::Applied);
            }
        }
        Err(contended("the campaign's balance"))
    }

    pub(super) async fn deposit(&self, f: &Funding) -> StoreResult<FundOutcome> {
        let _turn = self.money_turn(f.campaign).await;
        let st = &self.st.ledger;
        let entries = f.entries();
        let campaign = f.campaign.0 as i64;
        let mut intent_written = false;
        for _ in 0..MAX_ROUNDS {
            // The version before the replay check: a deposit landing between
            // the two reads bumps the version, so the batch below fails.
            let statics = self.statics(f.campaign).await?;
            let probe = (campaign, entries[0].id.clone());
            let seen = self.exec(&st.select_money_entry, probe).await?.into_rows_result()?;
            if seen.rows_num() > 0 {
                return Ok(FundOutcome::Replayed);
            }
            let Ok(balance) = statics.balance().after(&entries) else { return Ok(FundOutcome::OverLimit) };
            if !intent_written {
                self.put_due_items(&[Due::new(Queue::Escrow, f.at, DueItem::Campaign(f.campaign))]).await?;
                intent_written = true;
            }
            let mut writes: Vec<Write> =
                vec![(&st.update_balance_if, Box::new(BalanceUpdate::new(campaign, &balance, statics.version)))];
            for e in &entries {
                writes.push((
                    &st.insert_entry,
                    Box::new(EntryInsert { campaign_id: campaign, id: e.id.clone(), body: json(e) }),
                ));
            }
            if self.lwt_batch(writes).await? {
                // Again, after the deposit: an escrow pass that ran between the
                // intent and the batch saw no new funds and removed the item.
                self.put_due_items(&[Due::new(Queue::Escrow, f.at, DueItem::Campaign(f.campaign))]).await?;
                return Ok(FundOutcome::Deposited);
            }
        }
        Err(contended("the campaign's balance"))
    }
}
