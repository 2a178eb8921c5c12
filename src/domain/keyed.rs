//! Keyed records (a conversion per click, a lead per externalId) and the
//! pure rules on them: their dedup key, the payout each earns and what
//! storing one adds to its campaign's counters. The stores and the engine
//! share these, so both count and pay by one rule.

use super::ids::*;
use super::model::*;
use super::money::Payout;
use super::rules::Reason;

/// A write whose key must be recorded at most once per campaign.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "camelCase")]
pub enum Keyed {
    /// Keyed by (campaign, click id): one conversion per click.
    Conversion(Conversion),
    /// Keyed by (campaign, externalId): the seed's postback idempotency.
    Lead(Lead),
}

impl Keyed {
    /// The key that may be recorded only once per campaign.
    pub fn dedup_key(&self) -> DedupKey {
        match self {
            Keyed::Conversion(c) => DedupKey::Click(c.click_id),
            Keyed::Lead(l) => DedupKey::External(l.external_id.clone()),
        }
    }

    pub fn campaign(&self) -> CampaignId {
        match self {
            Keyed::Conversion(c) => c.campaign_id,
            Keyed::Lead(l) => l.campaign_id,
        }
    }

    /// The payout this record earns, if it is verified and pays anything.
    /// Its id is the record's own, so a record has at most one payout.
    pub fn payout(&self, now: u64) -> Option<Payout> {
        let (id, source, affiliate, cents) = match self {
            Keyed::Conversion(c) if c.status == ConversionStatus::Approved => {
                (c.id.0, c.id.to_string(), c.affiliate_id, c.payout_cents)
            }
            Keyed::Conversion(_) => return None,
            Keyed::Lead(l) if l.status == LeadStatus::Verified => {
                (l.id.0, l.id.to_string(), l.affiliate_id, l.payout_cents)
            }
            Keyed::Lead(_) => return None,
        };
        (cents > 0).then(|| Payout::new(PayoutId(id), self.campaign(), affiliate, source, cents, now))
    }
}

impl Keyed {
    /// `approved`, `pending_review` or `rejected` (a lead's `verified` is
    /// its `approved`).
    pub fn status(&self) -> &'static str {
        match self {
            Keyed::Conversion(c) => c.status.as_str(),
            Keyed::Lead(l) => lead_status(l.status),
        }
    }

    /// Why it was rejected, if it was.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Keyed::Conversion(c) => c.reason.as_deref(),
            Keyed::Lead(l) => l.rejection_reason.as_deref(),
        }
    }

    /// What a cap claim counts: the record's payout (0 for a REV_SHARE click
    /// conversion, which carries no revenue).
    pub fn cents(&self) -> u64 {
        match self {
            Keyed::Conversion(c) => c.payout_cents,
            Keyed::Lead(l) => l.payout_cents,
        }
    }

    /// The record's own id's 128 bits (its payout's id too).
    pub fn id_bits(&self) -> u128 {
        match self {
            Keyed::Conversion(c) => c.id.0,
            Keyed::Lead(l) => l.id.0,
        }
    }

    /// The record's id as the API shows it (`cnv_…` or `lead_…`).
    pub fn id_text(&self) -> String {
        match self {
            Keyed::Conversion(c) => c.id.to_string(),
            Keyed::Lead(l) => l.id.to_string(),
        }
    }

    pub fn created_at(&self) -> u64 {
        match self {
            Keyed::Conversion(c) => c.created_at,
            Keyed::Lead(l) => l.created_at,
        }
    }

    /// Whether it holds a claim on its campaign's caps.
    pub fn counted(&self) -> bool {
        match self {
            Keyed::Conversion(c) => c.counted,
            Keyed::Lead(l) => l.counted,
        }
    }

    /// The record as stored after its cap claim: counted if the caps
    /// admitted it, else rejected with `cap_reached` (paying nothing).
    pub fn claimed(&self, admitted: bool) -> Keyed {
        let mut k = self.clone();
        let cap = Reason::CapReached.as_str().to_string();
        match &mut k {
            Keyed::Conversion(c) if admitted => c.counted = true,
            Keyed::Lead(l) if admitted => l.counted = true,
            Keyed::Conversion(c) => {
                c.status = ConversionStatus::Rejected;
                c.reason = Some(cap.clone());
                c.flags.push(cap);
            }
            Keyed::Lead(l) => {
                l.status = LeadStatus::Rejected;
                l.rejection_reason = Some(cap.clone());
                l.flags.push(cap);
            }
        }
        k
    }
}

pub fn lead_status(status: LeadStatus) -> &'static str {
    match status {
        LeadStatus::Verified => "approved",
        LeadStatus::PendingReview => "pending_review",
        LeadStatus::Rejected => "rejected",
    }
}

/// A dedup key as the campaign actor's bloom filter sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DedupKey {
    Click(ClickId),
    External(String),
}

impl DedupKey {
    /// The key as text (`c:` and 32 hex digits, or `e:` and the externalId),
    /// where a store needs it as one string.
    pub fn text(&self) -> String {
        match self {
            DedupKey::Click(id) => format!("c:{:032x}", id.0),
            DedupKey::External(e) => format!("e:{e}"),
        }
    }
}

/// What inserting `keyed` adds to its campaign's counters.
pub fn recorded_delta(keyed: &Keyed) -> CampaignStats {
    let mut delta = counted_delta(keyed);
    delta.statuses.insert(keyed.status().to_string(), 1);
    if let Some(reason) = keyed.reason().filter(|_| keyed.status() == "rejected") {
        delta.rejected.insert(reason.to_string(), 1);
    }
    delta
}

/// The counters a record adds by its kind; a payout only if it is approved.
fn counted_delta(keyed: &Keyed) -> CampaignStats {
    let pays = keyed.status() == "approved";
    let paid = |cents: u64| if pays { u128::from(cents) } else { 0 };
    match keyed {
        Keyed::Conversion(c) => CampaignStats {
            conversions_recorded: 1,
            conversions_from_bot_clicks: u64::from(c.bot_click),
            payout_cents: paid(c.payout_cents),
            ..Default::default()
        },
        Keyed::Lead(l) => match l.source {
            LeadSource::Postback => {
                CampaignStats { postbacks_recorded: 1, payout_cents: paid(l.payout_cents), ..Default::default() }
            }
            // A confirmed referral earns at once; a direct lead only once its
            // review verifies it (the ledger, not these counters, has that).
            LeadSource::Referral => CampaignStats { payout_cents: paid(l.payout_cents), ..Default::default() },
            LeadSource::Direct => CampaignStats::default(),
        },
    }
}

/// How a logged click is counted: one kind each, capped first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClickKind {
    Counted,
    Bot,
    Duplicate,
    Capped,
}

impl ClickKind {
    pub fn of(c: &Click) -> Self {
        if c.capped {
            Self::Capped
        } else if c.flagged {
            Self::Bot
        } else if c.duplicate {
            Self::Duplicate
        } else {
            Self::Counted
        }
    }
}

/// What a newly stored click adds to its campaign's counters.
pub fn click_delta(click: &Click) -> CampaignStats {
    let is = |k| u64::from(ClickKind::of(click) == k);
    clicks_delta(1, is(ClickKind::Bot), is(ClickKind::Duplicate), is(ClickKind::Capped))
}

/// What `count` newly stored clicks, of them `flagged` bots, `duplicate`
/// repeats and `capped` over a cap, add: the one rule behind both the
/// counting of an append and of its replay. Only the rest count as clicks.
pub fn clicks_delta(count: u64, flagged: u64, duplicate: u64, capped: u64) -> CampaignStats {
    let bot_clicks = flagged.min(count);
    let duplicate = duplicate.min(count - bot_clicks);
    let capped = capped.min(count - bot_clicks - duplicate);
    let mut delta = CampaignStats { clicks: count - bot_clicks - duplicate - capped, bot_clicks, ..Default::default() };
    for (name, n) in [("duplicate", duplicate), ("capped", capped)] {
        if n > 0 {
            delta.click_outcomes.insert(name.to_string(), n);
        }
    }
    delta
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(status: LeadStatus, source: LeadSource, payout_cents: u64) -> Keyed {
        let base = Lead::verified(CampaignId(7), AffiliateId(3), "code".into(), "order-1".into(), 100);
        Keyed::Lead(Lead { id: LeadId(42), status, source, payout_cents, ..base })
    }

    #[test]
    fn a_verified_lead_earns_one_payout_under_its_own_id() {
        let paid = lead(LeadStatus::Verified, LeadSource::Postback, 500).payout(900).unwrap();
        assert_eq!((paid.id, paid.campaign_id, paid.affiliate_id), (PayoutId(42), CampaignId(7), AffiliateId(3)));
        assert_eq!((paid.amount_cents, paid.created_at), (500, 900));
    }

    #[test]
    fn a_lead_under_review_or_paying_nothing_earns_no_payout() {
        assert!(lead(LeadStatus::PendingReview, LeadSource::Direct, 500).payout(900).is_none());
        assert!(lead(LeadStatus::Verified, LeadSource::Postback, 0).payout(900).is_none());
    }

    #[test]
    fn a_postback_counts_once_and_a_direct_lead_counts_nothing_until_reviewed() {
        let postback = recorded_delta(&lead(LeadStatus::Verified, LeadSource::Postback, 500));
        assert_eq!((postback.postbacks_recorded, postback.payout_cents), (1, 500));
        let direct = recorded_delta(&lead(LeadStatus::PendingReview, LeadSource::Direct, 500));
        assert_eq!((direct.postbacks_recorded, direct.payout_cents), (0, 0));
        assert_eq!(direct.statuses.get("pending_review"), Some(&1));
    }

    #[test]
    fn flagged_clicks_never_count_past_the_clicks_themselves() {
        let delta = clicks_delta(3, 5, 0, 0);
        assert_eq!((delta.clicks, delta.bot_clicks), (0, 3));
        let delta = clicks_delta(10, 4, 0, 0);
        assert_eq!((delta.clicks, delta.bot_clicks), (6, 4));
        let delta = clicks_delta(10, 4, 3, 5);
        assert_eq!((delta.clicks, delta.bot_clicks), (0, 4));
        assert_eq!((delta.click_outcomes["duplicate"], delta.click_outcomes["capped"]), (3, 3));
    }
}
