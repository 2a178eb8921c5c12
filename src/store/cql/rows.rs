//! Typed rows: what the event statements bind and what reads return.

use scylla::value::Counter;
use scylla::{DeserializeRow, SerializeRow};

use crate::domain::model::CampaignStats;

/// Every catalog read selects one JSON `body` column.
#[derive(DeserializeRow)]
pub struct BodyRow {
    pub body: String,
}

#[derive(DeserializeRow)]
pub struct CodeRow {
    pub code: String,
}

#[derive(DeserializeRow)]
pub struct KeyRow {
    pub key: String,
}

#[derive(SerializeRow)]
pub struct ConversionRow {
    pub campaign_id: i64,
    pub click_id: Vec<u8>,
    pub id: Vec<u8>,
    pub body: String,
}

#[derive(SerializeRow)]
pub struct LeadRow {
    pub campaign_id: i64,
    pub external_id: String,
    pub id: Vec<u8>,
    pub body: String,
}

#[derive(SerializeRow)]
pub struct DedupRow {
    pub campaign_id: i64,
    pub day: i32,
    pub key: String,
}

/// Increments for `campaign_counters` (counter columns bind as `Counter`).
#[derive(SerializeRow)]
pub struct CounterDelta {
    pub campaign_id: i64,
    pub clicks: Counter,
    pub bot_clicks: Counter,
    pub conversions_recorded: Counter,
    pub conversions_duplicate: Counter,
    pub conversions_bot: Counter,
    pub postbacks_recorded: Counter,
    pub postbacks_duplicate: Counter,
    pub payout_cents: Counter,
    pub payout_millions: Counter,
}

/// A campaign's payout stats are two counters, `payout_cents` (the total
/// modulo a million) and `payout_millions`, read back as one 128-bit sum:
/// with single payouts at most 10^12 cents, each counter grows by under a
/// million per paying record, so wrapping either takes 9.2 × 10^12 records
/// in one campaign. (Rows from schema version 2 hold everything in
/// `payout_cents`, which reads back the same.)
const PAYOUT_SPLIT: u128 = 1_000_000;

impl CounterDelta {
    pub fn new(campaign_id: i64, s: &CampaignStats) -> Self {
        let n = |v: u64| Counter(v as i64);
        let part = |v: u128| Counter(i64::try_from(v).unwrap_or(i64::MAX));
        Self {
            campaign_id,
            clicks: n(s.clicks),
            bot_clicks: n(s.bot_clicks),
            conversions_recorded: n(s.conversions_recorded),
            conversions_duplicate: n(s.conversions_duplicate),
            conversions_bot: n(s.conversions_from_bot_clicks),
            postbacks_recorded: n(s.postbacks_recorded),
            postbacks_duplicate: n(s.postbacks_duplicate),
            payout_cents: part(s.payout_cents % PAYOUT_SPLIT),
            payout_millions: part(s.payout_cents / PAYOUT_SPLIT),
        }
    }
}

/// A counter that was never incremented reads as null.
#[derive(DeserializeRow)]
pub struct CounterRow {
    pub clicks: Option<Counter>,
    pub bot_clicks: Option<Counter>,
    pub conversions_recorded: Option<Counter>,
    pub conversions_duplicate: Option<Counter>,
    pub conversions_bot: Option<Counter>,
    pub postbacks_recorded: Option<Counter>,
    pub postbacks_duplicate: Option<Counter>,
    pub payout_cents: Option<Counter>,
    pub payout_millions: Option<Counter>,
}

impl CounterRow {
    pub fn into_stats(self) -> CampaignStats {
        let n = |c: Option<Counter>| c.map_or(0, |c| c.0.max(0) as u64);
        CampaignStats {
            clicks: n(self.clicks),
            bot_clicks: n(self.bot_clicks),
            conversions_recorded: n(self.conversions_recorded),
            conversions_duplicate: n(self.conversions_duplicate),
            conversions_from_bot_clicks: n(self.conversions_bot),
            conversions_ignored: Default::default(),
            statuses: Default::default(),
            rejected: Default::default(),
            click_outcomes: Default::default(),
            click_windows: Default::default(),
            postbacks_recorded: n(self.postbacks_recorded),
            postbacks_duplicate: n(self.postbacks_duplicate),
            payout_cents: u128::from(n(self.payout_cents)) + u128::from(n(self.payout_millions)) * PAYOUT_SPLIT,
        }
    }
}

#[derive(DeserializeRow)]
pub struct IgnoredRow {
    pub reason: String,
    pub n: Option<Counter>,
}
