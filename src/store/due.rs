//! The due-time index the supervisors work from: (queue, due at, item).
//! Each queue is read oldest first up to `now`, so a supervisor never scans
//! the tables themselves, and an item stays until its work is done (a crash
//! in between means the work is redone, and every step is idempotent).

use crate::domain::ids::*;
use crate::domain::money::{Move, Step};

use super::DedupKey;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Queue {
    /// New records to pay, new payouts to escrow, campaigns whose funds arrived.
    Escrow,
    /// Escrowed payouts whose hold ends at the due time.
    Release,
    /// Payouts whose wallet lines must be brought up to date (credit, clawback).
    Credit,
    /// Referrals that expire at the due time.
    Expire,
    /// Webhook and partner postback deliveries to attempt at the due time.
    Deliver,
}

impl Queue {
    pub const ALL: [Queue; 5] = [Queue::Escrow, Queue::Release, Queue::Credit, Queue::Expire, Queue::Deliver];

    pub fn as_str(self) -> &'static str {
        match self {
            Queue::Escrow => "escrow",
            Queue::Release => "release",
            Queue::Credit => "credit",
            Queue::Expire => "expire",
            Queue::Deliver => "deliver",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|q| q.as_str() == text)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DueItem {
    /// A keyed record that may need a payout (written before its insert on
    /// CQL, inside it on the embedded store), looked up by its dedup key.
    Record(CampaignId, DedupKey),
    Payout(PayoutId),
    /// Funds arrived: try the campaign's awaiting payouts.
    Campaign(CampaignId),
    Referral(ReferralId),
    Delivery(WebhookId, DeliveryId),
}

impl DueItem {
    /// A stable text key: what the stores persist and compare.
    pub fn key(&self) -> String {
        match self {
            DueItem::Record(c, DedupKey::Click(id)) => format!("rec/{c}/{id}"),
            DueItem::Record(c, DedupKey::External(ext)) => format!("rec/{c}/ext/{ext}"),
            DueItem::Payout(id) => id.to_string(),
            DueItem::Campaign(id) => id.to_string(),
            DueItem::Referral(id) => id.to_string(),
            DueItem::Delivery(endpoint, id) => format!("dlv/{endpoint}/{id}"),
        }
    }

    pub fn parse(key: &str) -> Option<Self> {
        if let Some(rest) = key.strip_prefix("rec/") {
            let (campaign, rest) = rest.split_once('/')?;
            let campaign = campaign.parse().ok()?;
            let dedup = match rest.strip_prefix("ext/") {
                Some(ext) => DedupKey::External(ext.to_string()),
                None => DedupKey::Click(rest.parse().ok()?),
            };
            return Some(DueItem::Record(campaign, dedup));
        }
        if let Some(rest) = key.strip_prefix("dlv/") {
            let (endpoint, id) = rest.split_once('/')?;
            return Some(DueItem::Delivery(endpoint.parse().ok()?, id.parse().ok()?));
        }
        key.parse()
            .map(DueItem::Payout)
            .or_else(|_| key.parse().map(DueItem::Campaign))
            .or_else(|_| key.parse().map(DueItem::Referral))
            .ok()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Due {
    pub queue: Queue,
    /// Unix seconds.
    pub at: u64,
    pub item: DueItem,
}

impl Due {
    pub fn new(queue: Queue, at: u64, item: DueItem) -> Self {
        Self { queue, at, item }
    }
}

/// What a movement schedules next, written with it (or, on CQL, before it):
/// escrow schedules the release at the end of the hold, release schedules
/// the wallet credit, and a reversal (money back to `available`) a pass over
/// the campaign's payouts awaiting funds.
pub fn scheduled_by(mv: &Move) -> Vec<Due> {
    let p = &mv.after;
    match mv.step {
        Step::Escrow => vec![Due::new(Queue::Release, p.release_at.unwrap_or(p.created_at), DueItem::Payout(p.id))],
        Step::Release => vec![Due::new(Queue::Credit, p.released_at.unwrap_or(p.created_at), DueItem::Payout(p.id))],
        // Money returned to `available` may now fit payouts awaiting funds.
        Step::Cancel | Step::Clawback => {
            vec![Due::new(Queue::Escrow, p.reversed_at.unwrap_or(p.created_at), DueItem::Campaign(p.campaign_id))]
        }
        Step::Credit => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_survives_its_text_key() {
        let items = [
            DueItem::Record(CampaignId(1), DedupKey::Click(ClickId(2))),
            DueItem::Record(CampaignId(1), DedupKey::External("order/12 345".into())),
            DueItem::Payout(PayoutId(3)),
            DueItem::Campaign(CampaignId(4)),
            DueItem::Referral(ReferralId(5)),
            DueItem::Delivery(WebhookId(6), DeliveryId(7)),
        ];
        for item in items {
            assert_eq!(DueItem::parse(&item.key()), Some(item));
        }
        assert_eq!(DueItem::parse("nonsense"), None);
    }
}
