//! What each due item means, done so that running it twice, or crashing
//! half-way and running it again, gives the same final state. The
//! supervisors call `work` on a timer; the HTTP handlers call `fund`,
//! `pay` and `reverse`; tests call all of them with a clock they move.

use std::collections::HashMap;
use std::sync::Arc;

use futures::{stream, StreamExt, TryStreamExt};

use super::clock::Clock;
use crate::config::MoneyConfig;
use crate::domain::ids::*;
use crate::domain::money::{self, Balance, Funding, Move, Payout, PayoutStatus, Step, TransitionError};
use crate::domain::referral::{Referral, ReferralStatus};
use crate::error::{Error, Result};
use crate::metrics;
use crate::store::{Due, DueItem, FundOutcome, Keyed, Ledger, MoveOutcome, PayDue, Queue, Store, StoreResult};

pub struct Money {
    pub ledger: Arc<dyn Ledger>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub config: MoneyConfig,
}

/// What one pass over a queue did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub done: usize,
    /// Age in seconds of the oldest due item found (0: none was due).
    pub lag: u64,
    /// The pass took as many items as it may: more are probably due.
    pub full: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escrow {
    Escrowed,
    NoFunds,
    NotAwaiting,
}

impl Money {
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Does up to `money.batch` due items of `queue`, `money.concurrency` at
    /// a time; an item is removed only once its work is done. Items of one
    /// pass may finish in any order: every step is a compare-and-set, so two
    /// items touching one payout or one balance decide it once between them.
    pub async fn work(&self, queue: Queue) -> StoreResult<Pass> {
        let now = self.now();
        let items = self.ledger.due(queue, now, self.config.batch).await?;
        let lag = items.iter().map(|d| now.saturating_sub(d.at)).max().unwrap_or(0);
        let full = !items.is_empty() && items.len() >= self.config.batch;
        let (records, items): (Vec<Due>, Vec<Due>) =
            items.into_iter().partition(|d| matches!((d.queue, &d.item), (Queue::Escrow, DueItem::Record(..))));
        let paid = self.pay_records(records, now).await?;
        // Owned items: a stream of borrowed ones trips the compiler's
        // higher-ranked lifetime check inside the actor's Send future.
        let done = stream::iter(items)
            .map(|due| async move { self.finish(&due, now).await })
            .buffer_unordered(self.config.concurrency.max(1))
            .try_fold(0, |n, finished| async move { Ok(n + usize::from(finished)) })
            .await?;
        Ok(Pass { done: done + paid, lag, full })
    }

    /// Stored records' payout intents, paid together (`Ledger::pay_due`:
    /// one commit on the embedded store instead of three per record). On
    /// CQL the intent is written before the record, so a missing record is
    /// waited for until the grace ends, then dropped.
    async fn pay_records(&self, items: Vec<Due>, now: u64) -> StoreResult<usize> {
        let concurrency = self.config.concurrency.max(1);
        let found: Vec<(Due, Option<Keyed>)> = stream::iter(items)
            .map(|due| async move {
                let record = self.record(&due).await?;
                Ok::<_, crate::store::StoreError>((due, record))
            })
            .buffered(concurrency)
            .try_collect()
            .await?;
        let mut holds: HashMap<CampaignId, u32> = HashMap::new();
        let mut pay = Vec::with_capacity(found.len());
        for (due, record) in found {
            let payout = match record {
                Some(record) => record.payout(now),
                None if self.in_grace(due.at, now) => continue,
                None => {
                    // Its record never landed (CQL: the node died between
                    // the claim and the insert): give any claim back.
                    if let DueItem::Record(campaign, key) = &due.item {
                        self.ledger.release_claim(*campaign, key).await?;
                    }
                    None
                }
            };
            let hold_days = match &payout {
                Some(p) => self.hold_days(&mut holds, p.campaign_id).await?,
                None => 0,
            };
            pay.push(PayDue { due, payout, hold_days });
        }
        let count = pay.len();
        for paid in self.ledger.pay_due(pay, now, concurrency).await? {
            if paid.created {
                metrics::payout_created();
            }
            if let Some(mv) = &paid.escrowed {
                Self::moved(mv);
            }
        }
        Ok(count)
    }

    async fn record(&self, due: &Due) -> StoreResult<Option<Keyed>> {
        let DueItem::Record(campaign, key) = &due.item else { return Ok(None) };
        crate::store::get_keyed(&*self.store, *campaign, key).await
    }

    /// A campaign's hold, read once per pass.
    async fn hold_days(&self, holds: &mut HashMap<CampaignId, u32>, campaign: CampaignId) -> StoreResult<u32> {
        if let Some(days) = holds.get(&campaign) {
            return Ok(*days);
        }
        let days = self.store.get_campaign(campaign).await?.map_or(0, |c| c.hold_days);
        holds.insert(campaign, days);
        Ok(days)
    }

    async fn finish(&self, due: &Due, now: u64) -> StoreResult<bool> {
        if !self.handle(due, now).await? {
            return Ok(false);
        }
        self.ledger.remove_due(due).await?;
        Ok(true)
    }

    /// `Ok(false)`: not yet (keep the item for a later pass).
    async fn handle(&self, due: &Due, now: u64) -> StoreResult<bool> {
        match (due.queue, &due.item) {
            (Queue::Escrow, DueItem::Payout(id)) => self.escrow(*id, now).await.map(|_| true),
            (Queue::Escrow, DueItem::Campaign(id)) => self.escrow_awaiting(*id, now).await.map(|_| true),
            (Queue::Release, DueItem::Payout(id)) => self.release(*id, due.at, now).await,
            (Queue::Credit, DueItem::Payout(id)) => self.credit(*id, due.at, now).await,
            (Queue::Expire, DueItem::Referral(id)) => self.expire(*id, now).await,
            (queue, item) => {
                tracing::warn!(queue = queue.as_str(), item = %item.key(), "due item in the wrong queue; dropped");
                Ok(true)
            }
        }
    }

    /// Ensures the record's payout exists and tries to escrow it at once.
    /// `None`: the record pays nothing (zero payout, or a lead not verified).
    pub async fn pay(&self, record: &Keyed) -> StoreResult<Option<Payout>> {
        let now = self.now();
        let Some(wanted) = record.payout(now) else { return Ok(None) };
        let stored = self.ledger.create_payout(&wanted).await?;
        if stored == wanted {
            metrics::payout_created();
        }
        if stored.status == PayoutStatus::AwaitingFunds {
            self.escrow_payout(&stored, now).await?;
        }
        Ok(self.ledger.get_payout(stored.id).await?.or(Some(stored)))
    }

    async fn escrow(&self, id: PayoutId, now: u64) -> StoreResult<Escrow> {
        match self.ledger.get_payout(id).await? {
            Some(p) => self.escrow_payout(&p, now).await,
            None => Ok(Escrow::NotAwaiting),
        }
    }

    /// Escrows `p` as read; if it moved since, the store's compare-and-set
    /// on its status refuses the step.
    async fn escrow_payout(&self, p: &Payout, now: u64) -> StoreResult<Escrow> {
        if p.status != PayoutStatus::AwaitingFunds {
            return Ok(Escrow::NotAwaiting);
        }
        let hold = self.store.get_campaign(p.campaign_id).await?.map_or(0, |c| c.hold_days);
        let Ok(mv) = money::escrow(p, now, hold) else { return Ok(Escrow::NotAwaiting) };
        Ok(match self.apply(&mv).await? {
            MoveOutcome::Applied => Escrow::Escrowed,
            MoveOutcome::InsufficientFunds => Escrow::NoFunds,
            MoveOutcome::Moved(_) => Escrow::NotAwaiting,
        })
    }

    /// Funds arrived: escrow what now fits, oldest first. A payout that does
    /// not fit waits in the awaiting index for the next deposit.
    async fn escrow_awaiting(&self, campaign: CampaignId, now: u64) -> StoreResult<()> {
        for p in self.ledger.awaiting_payouts(campaign, self.config.batch).await? {
            self.escrow_payout(&p, now).await?;
        }
        Ok(())
    }

    async fn release(&self, id: PayoutId, due_at: u64, now: u64) -> StoreResult<bool> {
        let Some(p) = self.ledger.get_payout(id).await? else { return Ok(true) };
        match money::release(&p, now) {
            Ok(mv) => self.apply(&mv).await.map(|_| true),
            // Another node's clock is ahead of ours: try again later.
            Err(TransitionError::NotDue) => Ok(false),
            // The escrow that wrote this item has not landed yet (CQL writes
            // a step's due items first; see `credit`).
            Err(_) if p.status == PayoutStatus::AwaitingFunds && self.in_grace(due_at, now) => Ok(false),
            // Reversed meanwhile, or already released: nothing to do.
            Err(_) => Ok(true),
        }
    }

    /// Credits a released payout; for any other status re-posts the wallet
    /// lines its status implies (repairs a crash between the two writes).
    /// `Ok(false)`: the step that wrote this item has not landed yet.
    async fn credit(&self, id: PayoutId, at: u64, now: u64) -> StoreResult<bool> {
        let Some(p) = self.ledger.get_payout(id).await? else { return Ok(true) };
        match money::credit(&p, now) {
            Ok(mv) => self.apply(&mv).await.map(|_| true),
            // On CQL a step's due items are written before the step itself, so
            // a fast supervisor can find this item while the release (or the
            // reversal) that wrote it is still in flight: wait for it rather
            // than drop the item and leave the payout released but never
            // credited. A step that never lands (its node crashed, its client
            // gave up) leaves the payout to its own queue; after the grace
            // this item just repairs the wallet and goes.
            Err(_) if Self::before_release(p.status) && self.in_grace(at, now) => Ok(false),
            Err(_) => self.ledger.post_wallet(&money::wallet_entries(&p)).await.map(|_| true),
        }
    }

    /// How long an item may wait for the step that wrote it.
    fn in_grace(&self, at: u64, now: u64) -> bool {
        now.saturating_sub(at) <= self.config.record_grace_secs
    }

    fn before_release(status: PayoutStatus) -> bool {
        matches!(status, PayoutStatus::AwaitingFunds | PayoutStatus::Escrowed)
    }

    async fn expire(&self, id: ReferralId, now: u64) -> StoreResult<bool> {
        let Some(r) = self.ledger.get_referral(id).await? else { return Ok(true) };
        if r.status != ReferralStatus::Active {
            return Ok(true);
        }
        if now < r.expires_at {
            return Ok(false);
        }
        let expired = Referral { status: ReferralStatus::Expired, ..r };
        if self.ledger.replace_referral(&expired, ReferralStatus::Active).await? {
            metrics::referral("expired");
        }
        Ok(true)
    }

    async fn apply(&self, mv: &Move) -> StoreResult<MoveOutcome> {
        let outcome = self.ledger.apply_move(mv).await?;
        if outcome == MoveOutcome::Applied {
            Self::moved(mv);
        }
        Ok(outcome)
    }

    /// Metrics and a log line for a movement that applied.
    fn moved(mv: &Move) {
        let step = match mv.step {
            Step::Escrow => "escrow",
            Step::Release => "release",
            Step::Credit => "credit",
            Step::Cancel => "cancel",
            Step::Clawback => "clawback",
        };
        metrics::money_moved(step, mv.after.amount_cents);
        tracing::info!(payout = %mv.after.id, step, cents = mv.after.amount_cents, "money moved");
    }

    /// Deposits funds (idempotent on `key`), escrows what they now cover
    /// (up to `money.batch` payouts; the deposit's due item finishes the
    /// rest), and returns the balance after: a caller that funds and then
    /// moves on sees its payouts escrowed, their hold already running.
    pub async fn fund(&self, campaign: CampaignId, key: &str, cents: u64) -> StoreResult<(FundOutcome, Balance)> {
        let now = self.now();
        let funding = Funding::new(campaign, key, cents, now);
        let outcome = self.ledger.fund(&funding).await?;
        if outcome == FundOutcome::Deposited {
            metrics::money_moved("fund", cents);
            // Best effort: the due item written with the deposit retries.
            if let Err(e) = self.escrow_awaiting(campaign, now).await {
                tracing::warn!(%campaign, error = %e, "escrow after a deposit failed; the escrow supervisor retries");
            }
        }
        Ok((outcome, self.ledger.get_balance(campaign).await?))
    }

    /// Counts a reversal in the campaign's `byStatus.reversed` (best effort,
    /// like every counter after a money step: the payout is the record).
    async fn count_reversal(&self, campaign: CampaignId) {
        let mut delta = crate::domain::model::CampaignStats::default();
        delta.statuses.insert("reversed".to_string(), 1);
        let batch = crate::store::Batch { stats: vec![(campaign, delta)], ..Default::default() };
        if let Err(e) = self.store.commit(Arc::new(batch)).await {
            tracing::warn!(%campaign, error = %e, "a reversal's counter was not written");
        }
    }

    /// Reverses the record's payout: cancel before credit, clawback after.
    /// Reversing twice answers the reversed payout again. A reversal gives
    /// the record's cap capacity back (once: the claim goes with it).
    pub async fn reverse(&self, record: &Keyed, reason: &str) -> Result<Payout> {
        let payout = self.reverse_payout(record, reason).await?;
        self.ledger.release_claim(record.campaign(), &record.dedup_key()).await?;
        Ok(payout)
    }

    async fn reverse_payout(&self, record: &Keyed, reason: &str) -> Result<Payout> {
        let Some(mut p) = self.pay(record).await? else {
            return Err(Error::Conflict {
                code: "nothing_to_reverse",
                message: "this conversion has no payout (it pays nothing or is not verified)".into(),
            });
        };
        // A bounded retry: each lost race means the payout moved a step on.
        for _ in 0..8 {
            let mv = match money::reverse(&p, reason, self.now()) {
                Ok(mv) => mv,
                Err(_) => return Ok(p),
            };
            match self.apply(&mv).await? {
                MoveOutcome::Applied => {
                    self.count_reversal(record.campaign()).await;
                    return Ok(mv.after);
                }
                MoveOutcome::Moved(now) => p = now,
                MoveOutcome::InsufficientFunds => unreachable!("a reversal needs no funds"),
            }
        }
        Err(Error::Unavailable("the payout kept moving while being reversed; retry".into()))
    }
}

#[cfg(test)]
#[path = "money_tests.rs"]
mod tests;
