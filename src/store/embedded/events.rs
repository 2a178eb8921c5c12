//! Keyed events in the writer's transaction: one campaign batch applied
//! (insert-if-absent records, their indexes, payout intent and change feed
//! rows, counters),
//! and the reads by id and by page that go with them. The batch's clicks
//! went to the click log before (`clicks.rs`).

use super::*;

/// One campaign batch's keyed events (insert-if-absent) and counters, in
/// the writer's transaction.
pub(super) fn apply(txn: &WriteTransaction, batch: &Batch) -> StoreResult<Vec<Outcome>> {
    let mut conversions = txn.open_table(CONVERSIONS)?;
    let mut leads = txn.open_table(LEADS)?;
    let mut stats = txn.open_table(STATS)?;
    // Summed per campaign so a batch rewrites each campaign's counters once.
    let mut deltas: HashMap<CampaignId, CampaignStats> = HashMap::new();
    let mut add = |campaign: CampaignId, delta: &CampaignStats| deltas.entry(campaign).or_default().add(delta);
    for (campaign, delta) in &batch.stats {
        add(*campaign, delta);
    }
    let mut outcomes = Vec::with_capacity(batch.keyed.len());
    for (i, keyed) in batch.keyed.iter().enumerate() {
        outcomes.push(match batch.claim(i) {
            None => insert_keyed(&mut conversions, &mut leads, keyed)?,
            Some(claim) => insert_claimed(txn, &mut conversions, &mut leads, keyed, claim)?,
        });
    }
    let mut inserted = Vec::new();
    for (keyed, outcome) in batch.keyed.iter().zip(&outcomes) {
        let stored = match outcome {
            Outcome::Inserted => keyed,
            Outcome::InsertedAs(stored) => stored,
            Outcome::Existing(_) => continue,
        };
        add(stored.campaign(), &recorded_delta(stored));
        index_keyed(txn, stored)?;
        inserted.push(stored);
    }
    for (campaign, delta) in deltas {
        add_stats(&mut stats, campaign, &delta)?;
    }
    feed::append(txn, &inserted)?;
    Ok(outcomes)
}

pub(super) fn insert_keyed(
    conversions: &mut Table<(u64, u128), &[u8]>,
    leads: &mut Table<(u64, &str), &[u8]>,
    keyed: &Keyed,
) -> StoreResult<Outcome> {
    if let Some(found) = stored_under(conversions, leads, keyed)? {
        return Ok(Outcome::Existing(found));
    }
    put(conversions, leads, keyed)?;
    Ok(Outcome::Inserted)
}

/// A record with a cap claim: if its key is new, the claim is checked and
/// taken in this transaction and the record stored as the claim left it.
fn insert_claimed(
    txn: &WriteTransaction,
    conversions: &mut Table<(u64, u128), &[u8]>,
    leads: &mut Table<(u64, &str), &[u8]>,
    keyed: &Keyed,
    claim: &Claim,
) -> StoreResult<Outcome> {
    if let Some(found) = stored_under(conversions, leads, keyed)? {
        return Ok(Outcome::Existing(found));
    }
    let admitted = caps::admit(txn, keyed.campaign(), &keyed.dedup_key(), claim)?;
    let stored = keyed.claimed(admitted);
    put(conversions, leads, &stored)?;
    Ok(Outcome::InsertedAs(stored))
}

/// The record already stored under `keyed`'s dedup key, if any.
fn stored_under(
    conversions: &Table<(u64, u128), &[u8]>,
    leads: &Table<(u64, &str), &[u8]>,
    keyed: &Keyed,
) -> StoreResult<Option<Keyed>> {
    Ok(match keyed {
        Keyed::Conversion(c) => match conversions.get((c.campaign_id.0, c.click_id.0))? {
            Some(found) => Some(Keyed::Conversion(dec(found.value())?)),
            None => None,
        },
        Keyed::Lead(l) => match leads.get((l.campaign_id.0, l.external_id.as_str()))? {
            Some(found) => Some(Keyed::Lead(dec(found.value())?)),
            None => None,
        },
    })
}

fn put(
    conversions: &mut Table<(u64, u128), &[u8]>,
    leads: &mut Table<(u64, &str), &[u8]>,
    keyed: &Keyed,
) -> StoreResult<()> {
    match keyed {
        Keyed::Conversion(c) => conversions.insert((c.campaign_id.0, c.click_id.0), enc(c).as_slice())?,
        Keyed::Lead(l) => leads.insert((l.campaign_id.0, l.external_id.as_str()), enc(l).as_slice())?,
    };
    Ok(())
}

/// The lookups by id, and the record's payout intent in the same
/// transaction, so every stored record that pays is sure to be paid.
pub(super) fn index_keyed(txn: &WriteTransaction, keyed: &Keyed) -> StoreResult<()> {
    let campaign = keyed.campaign();
    match keyed {
        Keyed::Conversion(c) => {
            let mut index = txn.open_table(CONVERSION_INDEX)?;
            index.insert(c.id.0, (campaign.0, c.click_id.0))?;
            list_conversion(txn, c)?;
        }
        Keyed::Lead(l) => {
            let mut index = txn.open_table(LEAD_INDEX)?;
            index.insert((campaign.0, l.id.0), l.external_id.as_str())?;
            txn.open_table(LEAD_CAMPAIGN)?.insert(l.id.0, campaign.0)?;
        }
    }
    if keyed.payout(0).is_some() {
        let item = DueItem::Record(campaign, keyed.dedup_key());
        money::put_due(txn, &[Due::new(Queue::Escrow, keyed.created_at(), item)])?;
    }
    Ok(())
}

pub(super) fn lead_by_id(txn: &redb::ReadTransaction, id: LeadId) -> StoreResult<Option<Lead>> {
    let Some(campaign) = txn.open_table(LEAD_CAMPAIGN)?.get(id.0)?.map(|v| v.value()) else {
        return Ok(None);
    };
    let index = txn.open_table(LEAD_INDEX)?;
    let Some(external) = index.get((campaign, id.0))? else {
        return Ok(None);
    };
    get_json(txn, LEADS, (campaign, external.value()))
}

pub(super) fn list_leads(txn: &redb::ReadTransaction, q: &LeadQuery) -> StoreResult<Vec<Lead>> {
    let index = txn.open_table(LEAD_INDEX)?;
    let leads = txn.open_table(LEADS)?;
    let end = q.before.map_or(u128::MAX, |b| b.0);
    let mut out = Vec::new();
    for row in index.range((q.campaign.0, 0u128)..(q.campaign.0, end))?.rev() {
        // Checked before taking a row, so a limit of zero returns nothing.
        if out.len() >= q.limit {
            break;
        }
        let (_, external) = row?;
        let Some(found) = leads.get((q.campaign.0, external.value()))? else { continue };
        let lead: Lead = dec(found.value())?;
        if q.status.is_none_or(|s| s == lead.status) {
            out.push(lead);
        }
    }
    Ok(out)
}

pub(super) fn add_stats(table: &mut Table<u64, &[u8]>, campaign: CampaignId, delta: &CampaignStats) -> StoreResult<()> {
    if delta.is_empty() {
        return Ok(());
    }
    let mut current: CampaignStats = match table.get(campaign.0)? {
        Some(v) => dec(v.value())?,
        None => CampaignStats::default(),
    };
    current.add(delta);
    table.insert(campaign.0, enc(&current).as_slice())?;
    Ok(())
}

/// The campaign's listing of its conversions by status, newest first.
pub(super) const CONVERSION_LIST: TableDefinition<(u64, u8, u128), u128> = TableDefinition::new("conversion_list");

fn status_code(status: ConversionStatus) -> u8 {
    match status {
        ConversionStatus::Approved => 0,
        ConversionStatus::PendingReview => 1,
        ConversionStatus::Rejected => 2,
    }
}

pub(super) fn list_conversion(txn: &WriteTransaction, c: &Conversion) -> StoreResult<()> {
    let mut list = txn.open_table(CONVERSION_LIST)?;
    list.insert((c.campaign_id.0, status_code(c.status), c.id.0), c.click_id.0)?;
    Ok(())
}

pub(super) fn unlist_conversion(txn: &WriteTransaction, c: &Conversion, status: ConversionStatus) -> StoreResult<()> {
    txn.open_table(CONVERSION_LIST)?.remove((c.campaign_id.0, status_code(status), c.id.0))?;
    Ok(())
}

pub(super) fn list_conversions(txn: &redb::ReadTransaction, q: &ConversionQuery) -> StoreResult<Vec<Conversion>> {
    let list = txn.open_table(CONVERSION_LIST)?;
    let conversions = txn.open_table(CONVERSIONS)?;
    let end = q.before.map_or(u128::MAX, |b| b.0);
    let statuses = match q.status {
        Some(s) => vec![s],
        None => vec![ConversionStatus::Approved, ConversionStatus::PendingReview, ConversionStatus::Rejected],
    };
    let mut rows: Vec<(u128, u128)> = Vec::new();
    for status in statuses {
        let code = status_code(status);
        for row in list.range((q.campaign.0, code, 0u128)..(q.campaign.0, code, end))?.rev().take(q.limit) {
            let (key, click) = row?;
            rows.push((key.value().2, click.value()));
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    rows.truncate(q.limit);
    let mut out = Vec::with_capacity(rows.len());
    for (_, click) in rows {
        if let Some(found) = conversions.get((q.campaign.0, click))? {
            out.push(dec(found.value())?);
        }
    }
    Ok(out)
}

/// A review decision's counters: one off `from`, `delta` (the new status) on.
pub(super) fn move_status(
    table: &mut Table<u64, &[u8]>,
    campaign: CampaignId,
    from: &str,
    delta: &CampaignStats,
) -> StoreResult<()> {
    let mut current: CampaignStats = match table.get(campaign.0)? {
        Some(v) => dec(v.value())?,
        None => CampaignStats::default(),
    };
    if let Some(n) = current.statuses.get_mut(from) {
        *n = n.saturating_sub(1);
    }
    current.add(delta);
    table.insert(campaign.0, enc(&current).as_slice())?;
    Ok(())
}
