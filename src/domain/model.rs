//! The records Clickledger stores. Serialized as camelCase JSON both on the
//! wire and in the embedded store, so what an operator reads is what is kept.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::caps::{Caps, Claim};
use super::ids::*;
use super::rules::Rules;
use super::subids::SubIds;

pub type Fields = BTreeMap<String, serde_json::Value>;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Advertiser {
    pub id: AdvertiserId,
    pub name: String,
    /// The organisation-wide `pk_aff_org_…` key: public, used by the snippet.
    pub publishable_key: String,
    pub created_at: u64,
    /// Set by an operator: every key refused, the campaigns' links dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Affiliate {
    pub id: AffiliateId,
    pub name: String,
    pub created_at: u64,
    /// The affiliate's own address, for the `selfReferral` rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Set by an operator: every key refused, the affiliate's links dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompensationModel {
    Fixed,
    RevShare,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignStatus {
    Draft,
    Active,
    Paused,
    /// Read-only for good: nothing redirects or converts, money already
    /// owed still moves, and default listings leave it out.
    Archived,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Campaign {
    pub id: CampaignId,
    pub advertiser_id: AdvertiserId,
    pub name: String,
    pub landing_url: String,
    pub compensation_model: CompensationModel,
    /// FIXED campaigns: cents paid per lead.
    pub payout_cents: Option<u64>,
    /// REV_SHARE campaigns: basis points of revenue (2000 = 20 %).
    pub payout_bp: Option<u32>,
    pub promo_code: Option<String>,
    pub allowed_origins: Vec<String>,
    /// Property key → lead field name.
    pub field_mapping: BTreeMap<String, String>,
    pub attribution_window_days: u32,
    pub hold_days: u32,
    pub status: CampaignStatus,
    pub test_tracking_code: String,
    /// The campaign's own `pk_aff_…` key.
    pub publishable_key: String,
    pub tracking_confirmed_at: Option<u64>,
    pub created_at: u64,
    /// Bumped on every edit; edits are compare-and-set on it, so two nodes (or
    /// two requests) editing one campaign never lose each other's change.
    #[serde(default)]
    pub version: u64,
    /// Fraud rules (`domain::rules`); campaigns stored before have the defaults.
    #[serde(default)]
    pub rules: Rules,
    /// The campaign's caps (`domain::caps`).
    #[serde(default, skip_serializing_if = "Caps::is_empty")]
    pub caps: Caps,
    /// Caps of single affiliates on this campaign.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub affiliate_caps: BTreeMap<AffiliateId, Caps>,
    /// Where a capped click goes (else the 404 page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_url: Option<String>,
    /// Affiliates the advertiser un-approved, and when. Their tracking code
    /// stays on record (approving again revives it), but their links stop
    /// redirecting and new records of theirs are rejected.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub removed_affiliates: BTreeMap<AffiliateId, u64>,
}

impl Campaign {
    /// Whether the affiliate may send new traffic (it must hold a code too).
    pub fn admits(&self, affiliate: AffiliateId) -> bool {
        !self.removed_affiliates.contains_key(&affiliate)
    }

    /// The claim a conversion of `affiliate` at `at` paying `cents` makes on
    /// the campaign's caps, if any conversion or payout cap applies.
    pub fn claim(&self, affiliate: AffiliateId, at: u64, cents: u64) -> Option<Claim> {
        Claim::for_conversion(&self.caps, self.affiliate_caps.get(&affiliate), affiliate, at, cents)
    }
}

/// An approved affiliate's code (or a campaign's test code, with no affiliate).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackingCode {
    pub code: String,
    pub campaign_id: CampaignId,
    pub affiliate_id: Option<AffiliateId>,
    pub created_at: u64,
}

/// The first 128 bits of an HMAC-SHA256 of the client address, shown as 32
/// lowercase hex digits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IpHash(pub [u8; 16]);

impl std::fmt::Display for IpHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex_digits(&self.0))
    }
}

impl Serialize for IpHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex_digits(&self.0))
    }
}

impl<'de> Deserialize<'de> for IpHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let value = u128::from_str_radix(&text, 16).ok().filter(|_| text.len() == 32);
        value.map(|v| IpHash(v.to_be_bytes())).ok_or_else(|| serde::de::Error::custom("an IP hash is 32 hex digits"))
    }
}

fn hex_digits(bytes: &[u8; 16]) -> String {
    format!("{:032x}", u128::from_be_bytes(*bytes))
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Click {
    pub id: ClickId,
    pub campaign_id: CampaignId,
    pub affiliate_id: AffiliateId,
    pub tracking_code: String,
    pub at: u64,
    /// Keyed hash of the client address: joins repeat visitors, reveals no IP.
    pub ip_hash: IpHash,
    pub user_agent: String,
    pub referer: String,
    /// Bot user agent or HEAD request: logged, not counted.
    pub flagged: bool,
    /// The affiliate's `sub1`…`sub5` from the link.
    #[serde(flatten)]
    pub subs: SubIds,
    /// The same client clicked this link inside the campaign's unique-click
    /// window: logged, not counted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// A click cap was reached: sent to the fallback, logged, not counted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub capped: bool,
    /// The link's query carried a paid-traffic click id (`gclid`, …).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paid_traffic: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversion {
    pub id: ConversionId,
    pub campaign_id: CampaignId,
    pub click_id: ClickId,
    pub affiliate_id: AffiliateId,
    pub email: Option<String>,
    /// Properties the campaign's field mapping names, under their field names.
    pub fields: Fields,
    /// Everything else that was sent, stored alongside.
    pub extra: Fields,
    pub created_at: u64,
    /// What this conversion pays: the campaign's fixed payout; REV_SHARE
    /// clicks carry no revenue, so they pay through postbacks instead.
    #[serde(default)]
    pub payout_cents: u64,
    /// Its click was flagged (bot user agent or HEAD request). Recorded and
    /// paid like any other for now, and counted apart (`fromBotClicks`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bot_click: bool,
    /// Its click's sub-IDs.
    #[serde(flatten)]
    pub subs: SubIds,
    /// Approved (paid), held for review, or rejected (paid nothing).
    #[serde(default)]
    pub status: ConversionStatus,
    /// Why it was rejected (a rule's code, `cap_reached`, or the reviewer's words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every rule that hit it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_at: Option<u64>,
    /// It holds a claim on its campaign's caps (given back on reversal or
    /// rejection); the stores use it to tell a claim's owner from a stray.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub counted: bool,
}

/// A click conversion's review state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversionStatus {
    #[default]
    Approved,
    PendingReview,
    Rejected,
}

impl ConversionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::PendingReview => "pending_review",
            Self::Rejected => "rejected",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    Purchase,
    Signup,
    Install,
    Lead,
    Subscription,
}

impl EventType {
    /// What a postback's `eventType` may be. `REFUND` is not a stored type:
    /// it reverses the lead an earlier postback recorded.
    pub const ALL: &'static str = "PURCHASE, SIGNUP, INSTALL, LEAD, SUBSCRIPTION, REFUND";
    pub const REFUND: &'static str = "REFUND";

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "PURCHASE" => Self::Purchase,
            "SIGNUP" => Self::Signup,
            "INSTALL" => Self::Install,
            "LEAD" => Self::Lead,
            "SUBSCRIPTION" => Self::Subscription,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lead {
    pub id: LeadId,
    pub campaign_id: CampaignId,
    pub affiliate_id: AffiliateId,
    pub tracking_code: String,
    pub external_id: String,
    pub event_type: EventType,
    pub revenue_cents: Option<u64>,
    pub payout_cents: u64,
    /// Postbacks and confirmed referrals are verified at once; direct leads
    /// wait for the advertiser's review. The payout follows verification.
    pub status: LeadStatus,
    pub fields: Fields,
    pub extra: Fields,
    pub created_at: u64,
    #[serde(default)]
    pub source: LeadSource,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral_id: Option<ReferralId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
    /// The postback's `sub1`…`sub5`.
    #[serde(flatten)]
    pub subs: SubIds,
    /// Every fraud rule that hit it (`rejectionReason` says which rejected it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// It holds a claim on its campaign's caps (see `Conversion::counted`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub counted: bool,
}

/// Leads keyed by something other than an advertiser's externalId use this
/// reserved prefix, which postbacks may not use, so the two never collide.
pub const INTERNAL_KEY_PREFIX: &str = "clickledger:";

impl Lead {
    /// A verified postback lead paying nothing yet, with a fresh id: the
    /// fields every source shares. Callers override the rest with
    /// `Lead { …, ..Lead::verified(…) }`.
    pub fn verified(
        campaign: CampaignId,
        affiliate: AffiliateId,
        tracking_code: String,
        external_id: String,
        created_at: u64,
    ) -> Self {
        Self {
            id: LeadId::new(),
            campaign_id: campaign,
            affiliate_id: affiliate,
            tracking_code,
            external_id,
            event_type: EventType::Purchase,
            revenue_cents: None,
            payout_cents: 0,
            status: LeadStatus::Verified,
            fields: Fields::new(),
            extra: Fields::new(),
            created_at,
            source: LeadSource::Postback,
            evidence: vec![],
            referral_id: None,
            reviewed_at: None,
            rejection_reason: None,
            subs: SubIds::default(),
            flags: vec![],
            counted: false,
        }
    }

    /// The dedup key of a referral's lead: one confirmation per referral.
    pub fn referral_key(referral: ReferralId) -> String {
        format!("{INTERNAL_KEY_PREFIX}referral:{referral}")
    }

    /// Direct leads are not deduplicated: each submission is its own lead.
    pub fn direct_key(lead: LeadId) -> String {
        format!("{INTERNAL_KEY_PREFIX}direct:{lead}")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    PendingReview,
    /// Earlier versions wrote `pending` for postback leads, which were never reviewed.
    #[serde(alias = "pending")]
    Verified,
    Rejected,
}

impl LeadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingReview => "pending_review",
            Self::Verified => "verified",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::PendingReview, Self::Verified, Self::Rejected].into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadSource {
    #[default]
    Postback,
    Referral,
    Direct,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceType {
    Tweet,
    BlogPost,
    Email,
    Conversation,
    ApiCall,
    CodeCommit,
}

impl EvidenceType {
    pub const ALL: &'static str = "tweet, blog_post, email, conversation, api_call, code_commit";
}

/// Proof attached to a direct lead for the advertiser's review.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    #[serde(rename = "type")]
    pub kind: EvidenceType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Counters per campaign, added to in the same durable batch as the events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignStats {
    pub clicks: u64,
    pub bot_clicks: u64,
    pub conversions_recorded: u64,
    pub conversions_duplicate: u64,
    /// Recorded conversions whose click was flagged as a bot.
    #[serde(default)]
    pub conversions_from_bot_clicks: u64,
    pub conversions_ignored: BTreeMap<String, u64>,
    pub postbacks_recorded: u64,
    pub postbacks_duplicate: u64,
    /// Recorded conversions and leads by status (`approved`,
    /// `pending_review`, `rejected`), moved along by review decisions.
    #[serde(default)]
    pub statuses: BTreeMap<String, u64>,
    /// Rejected ones by reason code.
    #[serde(default)]
    pub rejected: BTreeMap<String, u64>,
    /// Logged clicks not counted as clicks: `duplicate` (inside the
    /// unique-click window) and `capped` (over a click cap).
    #[serde(default)]
    pub click_outcomes: BTreeMap<String, u64>,
    /// Counted clicks per capped window (`domain::caps::Window::key`): what
    /// the click caps count against, kept with the other counters.
    #[serde(default)]
    pub click_windows: BTreeMap<String, u64>,
    /// 128 bits: a campaign's lifetime payouts have no bound but the number
    /// of its records (each at most `payout::MAX_CENTS`).
    pub payout_cents: u128,
}

impl CampaignStats {
    /// Saturating: counts grow by one per event and cannot reach 2^64; the
    /// payout sum has 128 bits. Neither can wrap.
    pub fn add(&mut self, other: &CampaignStats) {
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.clicks, other.clicks);
        add(&mut self.bot_clicks, other.bot_clicks);
        add(&mut self.conversions_recorded, other.conversions_recorded);
        add(&mut self.conversions_duplicate, other.conversions_duplicate);
        add(&mut self.conversions_from_bot_clicks, other.conversions_from_bot_clicks);
        for (reason, n) in &other.conversions_ignored {
            add(self.conversions_ignored.entry(reason.clone()).or_default(), *n);
        }
        add(&mut self.postbacks_recorded, other.postbacks_recorded);
        add(&mut self.postbacks_duplicate, other.postbacks_duplicate);
        for (status, n) in &other.statuses {
            add(self.statuses.entry(status.clone()).or_default(), *n);
        }
        for (reason, n) in &other.rejected {
            add(self.rejected.entry(reason.clone()).or_default(), *n);
        }
        for (kind, n) in &other.click_outcomes {
            add(self.click_outcomes.entry(kind.clone()).or_default(), *n);
        }
        for (window, n) in &other.click_windows {
            add(self.click_windows.entry(window.clone()).or_default(), *n);
        }
        self.payout_cents = self.payout_cents.saturating_add(other.payout_cents);
    }

    pub fn is_empty(&self) -> bool {
        *self == CampaignStats::default()
    }

    /// A review decision moves one record from `from` to `to`.
    pub fn review(&mut self, from: &str, to: &str, reason: Option<&str>) {
        let n = self.statuses.entry(from.to_string()).or_default();
        *n = n.saturating_sub(1);
        let n = self.statuses.entry(to.to_string()).or_default();
        *n = n.saturating_add(1);
        if let Some(reason) = reason {
            let n = self.rejected.entry(reason.to_string()).or_default();
            *n = n.saturating_add(1);
        }
    }
}
