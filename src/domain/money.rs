//! The money path as pure rules: a payout's one-way life, and the
//! double-entry postings each step makes. No I/O: the store applies a `Move`
//! atomically (or idempotently, per partition), the supervisors decide when.
//!
//! ```text
//! awaiting_funds ──escrow──► escrowed ──release (holdDays)──► released ──credit──► credited
//!        │                      │                               │                    │
//!        └──────────────────────┴───────────reverse─────────────┴────────────────────┘
//!                                             ▼
//!                                          reversed   (before credit: cancel; after: clawback)
//! ```
//!
//! Accounts (each movement's entries sum to zero):
//! `funding` (what the advertiser deposited, negative), `available`,
//! `escrow`, `clearing` (released, on its way to a wallet) per campaign, and
//! one `wallet` per affiliate. Every entry id is `{txn}/{account}` with a
//! deterministic txn id (`{payout}:{step}`), so a replayed step posts nothing.

use serde::{Deserialize, Serialize};

use super::ids::*;
use super::payout::MAX_CAMPAIGN_FUNDS_CENTS;

pub const SECONDS_PER_DAY: u64 = 86_400;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutStatus {
    AwaitingFunds,
    Escrowed,
    Released,
    Credited,
    Reversed,
}

impl PayoutStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingFunds => "awaiting_funds",
            Self::Escrowed => "escrowed",
            Self::Released => "released",
            Self::Credited => "credited",
            Self::Reversed => "reversed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::AwaitingFunds, Self::Escrowed, Self::Released, Self::Credited, Self::Reversed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// What one verified conversion, postback or lead pays its affiliate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payout {
    pub id: PayoutId,
    pub campaign_id: CampaignId,
    pub affiliate_id: AffiliateId,
    /// The `cnv_…` or `lead_…` id of the record this pays for.
    pub source: String,
    pub amount_cents: u64,
    pub status: PayoutStatus,
    pub created_at: u64,
    pub escrowed_at: Option<u64>,
    /// When escrow may be released: `escrowed_at + holdDays`.
    pub release_at: Option<u64>,
    pub released_at: Option<u64>,
    pub credited_at: Option<u64>,
    pub reversed_at: Option<u64>,
    pub reversal_reason: Option<String>,
}

impl Payout {
    /// When this payout took `step`, if it has.
    pub fn step_at(&self, step: Step) -> Option<u64> {
        match step {
            Step::Escrow => self.escrowed_at,
            Step::Release => self.released_at,
            Step::Credit => self.credited_at,
            Step::Cancel | Step::Clawback => self.reversed_at,
        }
    }

    pub fn new(
        id: PayoutId,
        campaign: CampaignId,
        affiliate: AffiliateId,
        source: String,
        cents: u64,
        now: u64,
    ) -> Self {
        Self {
            id,
            campaign_id: campaign,
            affiliate_id: affiliate,
            source,
            amount_cents: cents,
            status: PayoutStatus::AwaitingFunds,
            created_at: now,
            escrowed_at: None,
            release_at: None,
            released_at: None,
            credited_at: None,
            reversed_at: None,
            reversal_reason: None,
        }
    }

    fn cents(&self) -> i64 {
        i64::try_from(self.amount_cents).unwrap_or(i64::MAX)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum Account {
    Funding(CampaignId),
    Available(CampaignId),
    Escrow(CampaignId),
    Clearing(CampaignId),
    Wallet(AffiliateId),
}

impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Funding(c) => write!(f, "{c}/funding"),
            Self::Available(c) => write!(f, "{c}/available"),
            Self::Escrow(c) => write!(f, "{c}/escrow"),
            Self::Clearing(c) => write!(f, "{c}/clearing"),
            Self::Wallet(a) => write!(f, "{a}/wallet"),
        }
    }
}

/// One leg of a double-entry transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// `{txn}/{account}`: unique, deterministic, the store's insert-if-absent key.
    pub id: String,
    pub txn: String,
    pub account: Account,
    pub amount_cents: i64,
    pub at: u64,
}

fn txn(account_legs: &[(Account, i64)], txn: &str, at: u64) -> Vec<Entry> {
    debug_assert_eq!(account_legs.iter().map(|(_, a)| a).sum::<i64>(), 0, "a transaction must balance");
    account_legs
        .iter()
        .map(|(account, amount)| Entry {
            id: format!("{txn}/{account}"),
            txn: txn.to_string(),
            account: account.clone(),
            amount_cents: *amount,
            at,
        })
        .collect()
}

/// A campaign's accounts as one row: what `GET …/balance` shows and what
/// escrow checks before it reserves (funds escrowed never exceed deposits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    pub funded_cents: i64,
    pub available_cents: i64,
    pub escrowed_cents: i64,
    /// Released but not yet in a wallet (the clearing account).
    pub clearing_cents: i64,
}

/// Refused: the campaign's deposits would pass [`MAX_CAMPAIGN_FUNDS_CENTS`]
/// (or, for stored data from before the bounds, an account would leave i64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a campaign's deposits may total at most {MAX_CAMPAIGN_FUNDS_CENTS} cents")]
pub struct OverLimit;

impl Balance {
    /// Everything that left the campaign for affiliates, net of clawbacks.
    pub fn paid_cents(&self) -> i64 {
        self.funded_cents.saturating_sub(self.available_cents).saturating_sub(self.escrowed_cents)
    }

    /// The balance once `entries` (the campaign-side legs of one movement
    /// or deposit) are posted, so a store moves its balance row by exactly
    /// what it posts; checked, so nothing wraps and deposits stay bounded.
    pub fn after(&self, entries: &[Entry]) -> Result<Balance, OverLimit> {
        let mut b = *self;
        for e in entries {
            let (account, amount) = match e.account {
                Account::Funding(_) => (&mut b.funded_cents, e.amount_cents.checked_neg().ok_or(OverLimit)?),
                Account::Available(_) => (&mut b.available_cents, e.amount_cents),
                Account::Escrow(_) => (&mut b.escrowed_cents, e.amount_cents),
                Account::Clearing(_) => (&mut b.clearing_cents, e.amount_cents),
                Account::Wallet(_) => continue,
            };
            *account = account.checked_add(amount).ok_or(OverLimit)?;
        }
        if b.funded_cents > MAX_CAMPAIGN_FUNDS_CENTS {
            return Err(OverLimit);
        }
        Ok(b)
    }
}

/// An advertiser's deposit into a campaign, idempotent on `txn`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Funding {
    pub campaign: CampaignId,
    pub txn: String,
    pub amount_cents: u64,
    pub at: u64,
}

impl Funding {
    /// `key` is the caller's Idempotency-Key, or a fresh id when none was sent.
    pub fn new(campaign: CampaignId, key: &str, amount_cents: u64, at: u64) -> Self {
        Self { campaign, txn: format!("fund:{campaign}:{key}"), amount_cents, at }
    }

    pub fn entries(&self) -> Vec<Entry> {
        let x = i64::try_from(self.amount_cents).unwrap_or(i64::MAX);
        txn(&[(Account::Funding(self.campaign), -x), (Account::Available(self.campaign), x)], &self.txn, self.at)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Escrow,
    Release,
    Credit,
    /// Reversal before the wallet was credited: the money goes back.
    Cancel,
    /// Reversal after credit: the wallet pays it back (it may go negative).
    Clawback,
}

/// One transition of one payout, with everything the store must write.
/// Stores apply it only if the stored payout still has `before.status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub step: Step,
    pub before: PayoutStatus,
    pub after: Payout,
    /// Entries on the campaign's accounts (one partition in CQL).
    pub campaign_entries: Vec<Entry>,
    /// What the affiliate's wallet must hold once this move is applied.
    pub wallet: Vec<WalletEntry>,
    /// The store refuses the move unless `available` covers this much.
    pub needs_available: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("the payout is {0}, not {1}")]
    WrongStatus(&'static str, &'static str),
    #[error("the hold period has not ended")]
    NotDue,
    #[error("the payout is already reversed")]
    AlreadyReversed,
}

fn expect(p: &Payout, status: PayoutStatus) -> Result<(), TransitionError> {
    if p.status == status {
        Ok(())
    } else {
        Err(TransitionError::WrongStatus(p.status.as_str(), status.as_str()))
    }
}

fn step_id(p: &Payout, step: Step) -> String {
    let name = match step {
        Step::Escrow => "escrow",
        Step::Release => "release",
        Step::Credit => "credit",
        Step::Cancel => "cancel",
        Step::Clawback => "clawback",
    };
    format!("{}:{name}", p.id)
}

fn make(step: Step, before: &Payout, after: Payout, legs: &[(Account, i64)], at: u64) -> Move {
    // The wallet leg is posted as the wallet's own `credit`/`clawback` line
    // (derived from the payout), so only the campaign legs are kept here.
    let campaign_entries = txn(legs, &step_id(before, step), at)
        .into_iter()
        .filter(|e| !matches!(e.account, Account::Wallet(_)))
        .collect();
    let needs_available = if step == Step::Escrow { before.amount_cents } else { 0 };
    let wallet = wallet_entries(&after);
    Move { step, before: before.status, after, campaign_entries, wallet, needs_available }
}

/// Reserves the advertiser's funds; the hold starts now.
pub fn escrow(p: &Payout, now: u64, hold_days: u32) -> Result<Move, TransitionError> {
    expect(p, PayoutStatus::AwaitingFunds)?;
    let c = p.campaign_id;
    let mut after = p.clone();
    after.status = PayoutStatus::Escrowed;
    after.escrowed_at = Some(now);
    after.release_at = Some(now.saturating_add(u64::from(hold_days) * SECONDS_PER_DAY));
    Ok(make(Step::Escrow, p, after, &[(Account::Available(c), -p.cents()), (Account::Escrow(c), p.cents())], now))
}

/// Ends the hold: the money leaves escrow for the clearing account.
pub fn release(p: &Payout, now: u64) -> Result<Move, TransitionError> {
    expect(p, PayoutStatus::Escrowed)?;
    if p.release_at.is_some_and(|due| now < due) {
        return Err(TransitionError::NotDue);
    }
    let c = p.campaign_id;
    let mut after = p.clone();
    after.status = PayoutStatus::Released;
    after.released_at = Some(now);
    Ok(make(Step::Release, p, after, &[(Account::Escrow(c), -p.cents()), (Account::Clearing(c), p.cents())], now))
}

/// Pays the released amount into the affiliate's wallet.
pub fn credit(p: &Payout, now: u64) -> Result<Move, TransitionError> {
    expect(p, PayoutStatus::Released)?;
    let mut after = p.clone();
    after.status = PayoutStatus::Credited;
    after.credited_at = Some(now);
    let legs = [(Account::Clearing(p.campaign_id), -p.cents()), (Account::Wallet(p.affiliate_id), p.cents())];
    Ok(make(Step::Credit, p, after, &legs, now))
}

/// A refund or chargeback: cancels before credit, claws back after.
pub fn reverse(p: &Payout, reason: &str, now: u64) -> Result<Move, TransitionError> {
    let c = p.campaign_id;
    let back = (Account::Available(c), p.cents());
    let (step, legs) = match p.status {
        PayoutStatus::Reversed => return Err(TransitionError::AlreadyReversed),
        PayoutStatus::AwaitingFunds => (Step::Cancel, vec![]),
        PayoutStatus::Escrowed => (Step::Cancel, vec![(Account::Escrow(c), -p.cents()), back]),
        PayoutStatus::Released => (Step::Cancel, vec![(Account::Clearing(c), -p.cents()), back]),
        PayoutStatus::Credited => (Step::Clawback, vec![(Account::Wallet(p.affiliate_id), -p.cents()), back]),
    };
    let mut after = p.clone();
    after.status = PayoutStatus::Reversed;
    after.reversed_at = Some(now);
    after.reversal_reason = Some(reason.to_string());
    Ok(make(step, p, after, &legs, now))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalletKind {
    /// Owed but not yet credited (a memo, not money: `pendingCents`).
    Pending,
    /// Money in the wallet: the ledger legs (`availableCents`).
    Credit,
    Clawback,
    /// A memo of what was reversed (`reversedCents`).
    Reversed,
}

impl WalletKind {
    pub fn is_money(self) -> bool {
        matches!(self, Self::Credit | Self::Clawback)
    }
}

/// One line of an affiliate's wallet, id `{payout}:{what}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WalletEntry {
    pub id: String,
    pub affiliate_id: AffiliateId,
    pub payout_id: PayoutId,
    pub campaign_id: CampaignId,
    pub kind: WalletKind,
    pub amount_cents: i64,
    pub at: u64,
}

/// Everything a wallet must hold for `p` in its current status. Wallet
/// writes are a reconciliation to this set (insert the missing ids), which
/// is what makes crediting exactly-once even when its steps are retried.
pub fn wallet_entries(p: &Payout) -> Vec<WalletEntry> {
    let x = p.cents();
    let line = |what: &str, kind, amount, at| WalletEntry {
        id: format!("{}:{what}", p.id),
        affiliate_id: p.affiliate_id,
        payout_id: p.id,
        campaign_id: p.campaign_id,
        kind,
        amount_cents: amount,
        at,
    };
    let mut out = vec![line("pending", WalletKind::Pending, x, p.created_at)];
    let settled_at = match p.status {
        PayoutStatus::Credited => p.credited_at,
        PayoutStatus::Reversed => p.credited_at.or(p.reversed_at),
        _ => None,
    };
    if let Some(at) = settled_at {
        out.push(line("settled", WalletKind::Pending, -x, at));
    }
    if let Some(at) = p.credited_at {
        out.push(line("credit", WalletKind::Credit, x, at));
    }
    if let (PayoutStatus::Reversed, Some(at)) = (p.status, p.reversed_at) {
        out.push(line("reversed", WalletKind::Reversed, x, at));
        if p.credited_at.is_some() {
            out.push(line("clawback", WalletKind::Clawback, -x, at));
        }
    }
    out
}

/// A wallet page cursor, `{at}:{line id}` (the last line of the previous
/// page), as both stores write it in `WalletPage::next`.
pub fn wallet_cursor(text: &str) -> Option<(u64, &str)> {
    let (at, id) = text.split_once(':')?;
    Some((at.parse().ok()?, id)).filter(|(_, id)| !id.is_empty())
}

/// What `GET /api/v1/wallet` reports, summed from the entries. 128 bits:
/// an affiliate's wallet sums payouts of any number of campaigns, so no
/// bound on single amounts caps it, and 2^64 lines of 2^63 cents each would
/// be needed to wrap it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WalletTotals {
    pub pending_cents: i128,
    pub available_cents: i128,
    pub reversed_cents: i128,
}

impl WalletTotals {
    pub fn add(&mut self, e: &WalletEntry) {
        let total = match e.kind {
            WalletKind::Pending => &mut self.pending_cents,
            WalletKind::Credit | WalletKind::Clawback => &mut self.available_cents,
            WalletKind::Reversed => &mut self.reversed_cents,
        };
        *total = total.saturating_add(i128::from(e.amount_cents));
    }
}

#[cfg(test)]
#[path = "money_tests.rs"]
mod tests;
