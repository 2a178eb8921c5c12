//! The money tables of the embedded store. Every movement is one redb write
//! transaction: payout status, ledger entries, balance row, wallet lines and
//! the due items it schedules commit together or not at all.

use redb::{ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction};

use super::{dec, enc};
use crate::domain::ids::*;
use crate::domain::money::*;
use crate::store::{
    due::scheduled_by, Due, DueItem, FundOutcome, MoveOutcome, Paid, PayDue, Queue, StoreResult, WalletPage,
};

/// (queue, due at, item key) → nothing: read in key order = oldest first.
pub const DUE: TableDefinition<(u8, u64, &str), ()> = TableDefinition::new("due");
const PAYOUTS: TableDefinition<u128, &[u8]> = TableDefinition::new("payouts");
/// (campaign, payout): ids are time-ordered, so this is oldest first.
const AWAITING: TableDefinition<(u64, u128), ()> = TableDefinition::new("awaiting_payouts");
const BALANCES: TableDefinition<u64, &[u8]> = TableDefinition::new("balances");
/// (campaign, entry id) → entry.
const ENTRIES: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("ledger_entries");
/// (affiliate, at, line id) → line: newest-first paging walks it backwards.
const WALLET: TableDefinition<(u64, u64, &str), &[u8]> = TableDefinition::new("wallet_lines");
/// (affiliate, line id) → at: the insert-if-absent check.
const WALLET_IDS: TableDefinition<(u64, &str), u64> = TableDefinition::new("wallet_line_ids");
const WALLET_TOTALS: TableDefinition<u64, &[u8]> = TableDefinition::new("wallet_totals");

pub fn table_names() -> Vec<String> {
    use redb::TableHandle;
    let first = [DUE.name(), PAYOUTS.name(), AWAITING.name(), BALANCES.name()].map(str::to_string);
    let second = [ENTRIES.name(), WALLET.name(), WALLET_IDS.name(), WALLET_TOTALS.name()].map(str::to_string);
    first.into_iter().chain(second).collect()
}

pub fn open_tables(txn: &WriteTransaction) -> StoreResult<()> {
    txn.open_table(DUE)?;
    txn.open_table(PAYOUTS)?;
    txn.open_table(AWAITING)?;
    txn.open_table(BALANCES)?;
    txn.open_table(ENTRIES)?;
    txn.open_table(WALLET)?;
    txn.open_table(WALLET_IDS)?;
    txn.open_table(WALLET_TOTALS)?;
    Ok(())
}

fn queue_byte(q: Queue) -> u8 {
    Queue::ALL.iter().position(|x| *x == q).expect("every queue is in ALL") as u8
}

pub fn put_due(txn: &WriteTransaction, items: &[Due]) -> StoreResult<()> {
    let mut table = txn.open_table(DUE)?;
    for d in items {
        table.insert((queue_byte(d.queue), d.at, d.item.key().as_str()), ())?;
    }
    Ok(())
}

pub fn remove_due(txn: &WriteTransaction, d: &Due) -> StoreResult<()> {
    let mut table = txn.open_table(DUE)?;
    table.remove((queue_byte(d.queue), d.at, d.item.key().as_str()))?;
    Ok(())
}

pub fn due(txn: &ReadTransaction, queue: Queue, up_to: u64, limit: usize) -> StoreResult<Vec<Due>> {
    let table = txn.open_table(DUE)?;
    let q = queue_byte(queue);
    let mut out = Vec::new();
    for row in table.range((q, 0u64, "")..(q, up_to.saturating_add(1), ""))? {
        // Checked before taking a row, so a limit of zero returns nothing.
        if out.len() >= limit {
            break;
        }
        let (key, _) = row?;
        let (_, at, item) = key.value();
        // An unreadable key is skipped rather than wedging the whole queue.
        if let Some(item) = DueItem::parse(item) {
            out.push(Due::new(queue, at, item));
        }
    }
    Ok(out)
}

pub fn get_payout_in<T: ReadableTable<u128, &'static [u8]>>(table: &T, id: PayoutId) -> StoreResult<Option<Payout>> {
    table.get(id.0)?.map(|v| dec(v.value())).transpose()
}

pub fn get_payout(txn: &ReadTransaction, id: PayoutId) -> StoreResult<Option<Payout>> {
    get_payout_in(&txn.open_table(PAYOUTS)?, id)
}

pub fn create_payout(txn: &WriteTransaction, p: &Payout) -> StoreResult<Payout> {
    if let Some(stored) = stored_payout(txn, p.id)? {
        return Ok(stored);
    }
    insert_payout(txn, p)?;
    schedule_escrow(txn, p)?;
    Ok(p.clone())
}

/// A payout as this write transaction sees it (the table is closed again
/// before the caller writes to it).
fn stored_payout(txn: &WriteTransaction, id: PayoutId) -> StoreResult<Option<Payout>> {
    get_payout_in(&txn.open_table(PAYOUTS)?, id)
}

/// A new payout's row and its wallet's pending line.
fn insert_payout(txn: &WriteTransaction, p: &Payout) -> StoreResult<()> {
    txn.open_table(PAYOUTS)?.insert(p.id.0, enc(p).as_slice())?;
    post_wallet(txn, &wallet_entries(p))
}

/// Indexes a new payout as awaiting funds and queues its escrow.
fn schedule_escrow(txn: &WriteTransaction, p: &Payout) -> StoreResult<()> {
    if p.status == PayoutStatus::AwaitingFunds {
        txn.open_table(AWAITING)?.insert((p.campaign_id.0, p.id.0), ())?;
    }
    put_due(txn, &[Due::new(Queue::Escrow, p.created_at, DueItem::Payout(p.id))])
}

/// Pays one record intent. A new payout that the campaign's funds cover is
/// escrowed at once and never indexed as awaiting or queued for escrow (an
/// escrow pass would only find it escrowed and drop the item).
fn pay_one(txn: &WriteTransaction, item: &PayDue, now: u64) -> StoreResult<Paid> {
    let mut paid = Paid::default();
    if let Some(wanted) = &item.payout {
        let stored = match stored_payout(txn, wanted.id)? {
            Some(stored) => stored,
            None => {
                paid.created = true;
                insert_payout(txn, wanted)?;
                wanted.clone()
            }
        };
        if let Ok(mv) = escrow(&stored, now, item.hold_days) {
            if apply_move(txn, &mv)? == MoveOutcome::Applied {
                paid.escrowed = Some(mv);
            }
        }
        if paid.created && paid.escrowed.is_none() {
            schedule_escrow(txn, wanted)?;
        }
    }
    remove_due(txn, &item.due)?;
    Ok(paid)
}

/// `Ledger::pay_due` in one transaction.
pub fn pay_due(txn: &WriteTransaction, items: &[PayDue], now: u64) -> StoreResult<Vec<Paid>> {
    items.iter().map(|item| pay_one(txn, item, now)).collect()
}

pub fn awaiting(txn: &ReadTransaction, campaign: CampaignId, limit: usize) -> StoreResult<Vec<Payout>> {
    let index = txn.open_table(AWAITING)?;
    let payouts = txn.open_table(PAYOUTS)?;
    let mut out = Vec::new();
    for row in index.range((campaign.0, 0u128)..=(campaign.0, u128::MAX))?.take(limit) {
        let (key, _) = row?;
        if let Some(p) = get_payout_in(&payouts, PayoutId(key.value().1))? {
            out.push(p);
        }
    }
    Ok(out)
}

fn balance_in<T: ReadableTable<u64, &'static [u8]>>(table: &T, campaign: CampaignId) -> StoreResult<Balance> {
    Ok(table.get(campaign.0)?.map(|v| dec(v.value())).transpose()?.unwrap_or_default())
}

pub fn balance(txn: &ReadTransaction, campaign: CampaignId) -> StoreResult<Balance> {
    balance_in(&txn.open_table(BALANCES)?, campaign)
}

/// Inserts the entries not yet posted and moves the balance row by exactly
/// those, so a replayed transaction changes nothing. Returns how many were
/// new, or `OverLimit` (having written nothing) if the balance would pass
/// its bounds.
fn post_entries(
    txn: &WriteTransaction,
    campaign: CampaignId,
    entries: &[Entry],
) -> StoreResult<Result<usize, OverLimit>> {
    let mut table = txn.open_table(ENTRIES)?;
    let mut fresh = Vec::new();
    for e in entries {
        if table.get((campaign.0, e.id.as_str()))?.is_none() {
            fresh.push(e.clone());
        }
    }
    if fresh.is_empty() {
        return Ok(Ok(0));
    }
    let mut balances = txn.open_table(BALANCES)?;
    let Ok(b) = balance_in(&balances, campaign)?.after(&fresh) else { return Ok(Err(OverLimit)) };
    for e in &fresh {
        table.insert((campaign.0, e.id.as_str()), enc(e).as_slice())?;
    }
    balances.insert(campaign.0, enc(&b).as_slice())?;
    Ok(Ok(fresh.len()))
}

pub fn apply_move(txn: &WriteTransaction, mv: &Move) -> StoreResult<MoveOutcome> {
    let p = &mv.after;
    let mut payouts = txn.open_table(PAYOUTS)?;
    let stored =
        get_payout_in(&payouts, p.id)?.ok_or_else(|| crate::store::StoreError::Failed("no such payout".into()))?;
    if stored.status != mv.before {
        return Ok(MoveOutcome::Moved(stored));
    }
    if mv.needs_available > 0 {
        let available = balance_in(&txn.open_table(BALANCES)?, p.campaign_id)?.available_cents;
        if available < i64::try_from(mv.needs_available).unwrap_or(i64::MAX) {
            return Ok(MoveOutcome::InsufficientFunds);
        }
    }
    payouts.insert(p.id.0, enc(p).as_slice())?;
    drop(payouts);
    if mv.before == PayoutStatus::AwaitingFunds {
        txn.open_table(AWAITING)?.remove((p.campaign_id.0, p.id.0))?;
    }
    // Bounded deposits bound every account a movement touches, so this
    // refusal is for data from before the bounds; failing the transaction
    // leaves the payout where it was.
    post_entries(txn, p.campaign_id, &mv.campaign_entries)?
        .map_err(|e| crate::store::StoreError::Failed(format!("payout {}: {e}", p.id)))?;
    post_wallet(txn, &mv.wallet)?;
    put_due(txn, &scheduled_by(mv))?;
    super::feed::append_changes(txn, &[crate::store::Change::moved(mv)])?;
    Ok(MoveOutcome::Applied)
}

pub fn fund(txn: &WriteTransaction, f: &Funding) -> StoreResult<FundOutcome> {
    match post_entries(txn, f.campaign, &f.entries())? {
        Err(OverLimit) => Ok(FundOutcome::OverLimit),
        Ok(0) => Ok(FundOutcome::Replayed),
        Ok(_) => {
            put_due(txn, &[Due::new(Queue::Escrow, f.at, DueItem::Campaign(f.campaign))])?;
            Ok(FundOutcome::Deposited)
        }
    }
}

pub fn entries(txn: &ReadTransaction, campaign: CampaignId) -> StoreResult<Vec<Entry>> {
    let table = txn.open_table(ENTRIES)?;
    let mut out = Vec::new();
    for row in table.range((campaign.0, "")..)? {
        let (key, value) = row?;
        if key.value().0 != campaign.0 {
            break;
        }
        out.push(dec(value.value())?);
    }
    Ok(out)
}

pub fn post_wallet(txn: &WriteTransaction, lines: &[WalletEntry]) -> StoreResult<()> {
    let mut ids = txn.open_table(WALLET_IDS)?;
    let mut wallet = txn.open_table(WALLET)?;
    let mut totals_table: Table<u64, &[u8]> = txn.open_table(WALLET_TOTALS)?;
    for line in lines {
        let aff = line.affiliate_id.0;
        if ids.get((aff, line.id.as_str()))?.is_some() {
            continue;
        }
        ids.insert((aff, line.id.as_str()), line.at)?;
        wallet.insert((aff, line.at, line.id.as_str()), enc(line).as_slice())?;
        let mut totals: WalletTotals = totals_table.get(aff)?.map(|v| dec(v.value())).transpose()?.unwrap_or_default();
        totals.add(line);
        totals_table.insert(aff, enc(&totals).as_slice())?;
    }
    Ok(())
}

/// `before` is the previous page's cursor: `{at}:{line id}` of its last line.
pub fn wallet(txn: &ReadTransaction, aff: AffiliateId, before: Option<&str>, limit: usize) -> StoreResult<WalletPage> {
    let limit = limit.max(1);
    let totals: WalletTotals =
        txn.open_table(WALLET_TOTALS)?.get(aff.0)?.map(|v| dec(v.value())).transpose()?.unwrap_or_default();
    let table = txn.open_table(WALLET)?;
    let cursor = before.and_then(wallet_cursor);
    let rows = match cursor {
        Some((at, id)) => table.range((aff.0, 0u64, "")..(aff.0, at, id))?,
        None => table.range((aff.0, 0u64, "")..(aff.0, u64::MAX, ""))?,
    };
    let mut entries: Vec<WalletEntry> = Vec::new();
    for row in rows.rev().take(limit + 1) {
        entries.push(dec(row?.1.value())?);
    }
    let next = (entries.len() > limit).then(|| {
        entries.truncate(limit);
        let last = entries.last().expect("limit is at least one");
        format!("{}:{}", last.at, last.id)
    });
    Ok(WalletPage { totals, entries, next })
}
