//! Fraud rules: a campaign's settings and the pure judgement of one
//! conversion against them. Every path (click conversions, postbacks,
//! batch items, referral confirmations) asks `judge` and gets one verdict.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::validate::{invalid, Invalid};

/// What a rule does when it hits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Off,
    /// Held for the advertiser's review (`pending_review`).
    Flag,
    /// Recorded as `rejected` with the rule's reason; pays nothing.
    Reject,
}

impl Action {
    fn parse(field: &str, v: &Value) -> Result<Self, Invalid> {
        match v.as_str() {
            Some("off") => Ok(Self::Off),
            Some("flag") => Ok(Self::Flag),
            Some("reject") => Ok(Self::Reject),
            _ => Err(invalid(field, "must be \"off\", \"flag\" or \"reject\"")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timed {
    pub seconds: u64,
    pub action: Action,
}

/// The longest any time setting may be: ten years.
pub const MAX_SECONDS: u64 = 3650 * 86_400;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Rules {
    pub min_seconds_to_convert: Timed,
    pub max_seconds_to_convert: Timed,
    /// Repeat clicks from one client on one link inside this window are
    /// logged as duplicates, not counted (0: off).
    pub unique_click_window_seconds: u64,
    pub self_referral: Action,
    pub disposable_email: Action,
    pub paid_traffic_click_ids: Action,
    pub bot_click: Action,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            min_seconds_to_convert: Timed { seconds: 0, action: Action::Off },
            max_seconds_to_convert: Timed { seconds: 90 * 86_400, action: Action::Reject },
            unique_click_window_seconds: 3600,
            self_referral: Action::Flag,
            disposable_email: Action::Flag,
            paid_traffic_click_ids: Action::Off,
            bot_click: Action::Flag,
        }
    }
}

impl Rules {
    /// Applies a (partial) `rules` object on top of `self`, naming the
    /// exact field that is wrong; `self` is unchanged on error.
    pub fn patched(&self, v: &Value) -> Result<Rules, Invalid> {
        let obj = v.as_object().ok_or_else(|| invalid("rules", "must be an object"))?;
        let mut next = self.clone();
        for (key, value) in obj {
            let field = format!("rules.{key}");
            match key.as_str() {
                "minSecondsToConvert" => next.min_seconds_to_convert = timed(&field, value)?,
                "maxSecondsToConvert" => next.max_seconds_to_convert = timed(&field, value)?,
                "uniqueClickWindowSeconds" => next.unique_click_window_seconds = seconds(&field, value)?,
                "selfReferral" => next.self_referral = Action::parse(&field, value)?,
                "disposableEmail" => next.disposable_email = Action::parse(&field, value)?,
                "paidTrafficClickIds" => next.paid_traffic_click_ids = Action::parse(&field, value)?,
                "botClick" => next.bot_click = Action::parse(&field, value)?,
                _ => return Err(invalid(&field, format!("is not a known rule ({})", RULE_NAMES))),
            }
        }
        let (min, max) = (&next.min_seconds_to_convert, &next.max_seconds_to_convert);
        if min.action != Action::Off && max.action != Action::Off && min.seconds > max.seconds {
            return Err(invalid("rules.minSecondsToConvert.seconds", "must not exceed maxSecondsToConvert.seconds"));
        }
        Ok(next)
    }
}

const RULE_NAMES: &str = "minSecondsToConvert, maxSecondsToConvert, uniqueClickWindowSeconds, selfReferral, \
                          disposableEmail, paidTrafficClickIds, botClick";

fn timed(field: &str, v: &Value) -> Result<Timed, Invalid> {
    let obj: &Map<String, Value> = v.as_object().ok_or_else(|| invalid(field, "must be {\"seconds\", \"action\"}"))?;
    if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "seconds" | "action")) {
        return Err(invalid(&format!("{field}.{k}"), "is not a known field (seconds, action)"));
    }
    let seconds = match obj.get("seconds") {
        Some(s) => seconds(&format!("{field}.seconds"), s)?,
        None => return Err(invalid(&format!("{field}.seconds"), "is required")),
    };
    let action = match obj.get("action") {
        Some(a) => Action::parse(&format!("{field}.action"), a)?,
        None => return Err(invalid(&format!("{field}.action"), "is required")),
    };
    Ok(Timed { seconds, action })
}

fn seconds(field: &str, v: &Value) -> Result<u64, Invalid> {
    v.as_u64()
        .filter(|s| *s <= MAX_SECONDS)
        .ok_or_else(|| invalid(field, format!("must be a whole number of seconds from 0 to {MAX_SECONDS}")))
}

/// Why a conversion was flagged or rejected. The wire names are stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    TooFast,
    TooLate,
    SelfReferral,
    DisposableEmail,
    PaidTraffic,
    BotClick,
    CapReached,
    /// The advertiser un-approved the affiliate (not a rule: always rejects).
    AffiliateRemoved,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::TooFast,
        Reason::TooLate,
        Reason::SelfReferral,
        Reason::DisposableEmail,
        Reason::PaidTraffic,
        Reason::BotClick,
        Reason::CapReached,
        Reason::AffiliateRemoved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::TooFast => "too_fast",
            Reason::TooLate => "too_late",
            Reason::SelfReferral => "self_referral",
            Reason::DisposableEmail => "disposable_email",
            Reason::PaidTraffic => "paid_traffic",
            Reason::BotClick => "bot_click",
            Reason::CapReached => "cap_reached",
            Reason::AffiliateRemoved => "affiliate_removed",
        }
    }
}

/// What the rules know about one conversion.
#[derive(Clone, Debug, Default)]
pub struct Facts<'a> {
    /// Seconds from the click to the conversion (click conversions only).
    pub seconds_since_click: Option<u64>,
    pub bot_click: bool,
    pub paid_traffic: bool,
    pub email: Option<&'a str>,
    pub affiliate_email: Option<&'a str>,
}

/// The outcome before caps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Approved,
    /// Held for review; every rule that flagged.
    Flagged(Vec<Reason>),
    /// The first rejecting rule, and every rule that hit.
    Rejected {
        reason: Reason,
        flags: Vec<Reason>,
    },
}

pub fn judge(rules: &Rules, facts: &Facts) -> Verdict {
    let mut hits: Vec<(Reason, Action)> = Vec::new();
    let mut hit = |reason, action: Action, when: bool| {
        if when && action != Action::Off {
            hits.push((reason, action));
        }
    };
    if let Some(secs) = facts.seconds_since_click {
        let (min, max) = (rules.min_seconds_to_convert, rules.max_seconds_to_convert);
        hit(Reason::TooFast, min.action, secs < min.seconds);
        hit(Reason::TooLate, max.action, secs > max.seconds);
    }
    hit(Reason::BotClick, rules.bot_click, facts.bot_click);
    hit(Reason::PaidTraffic, rules.paid_traffic_click_ids, facts.paid_traffic);
    if let Some(email) = facts.email {
        let own = facts.affiliate_email.is_some_and(|a| same_email(a, email));
        hit(Reason::SelfReferral, rules.self_referral, own);
        hit(Reason::DisposableEmail, rules.disposable_email, is_disposable(email));
    }
    let flags: Vec<Reason> = hits.iter().map(|(r, _)| *r).collect();
    match hits.iter().find(|(_, a)| *a == Action::Reject) {
        Some((reason, _)) => Verdict::Rejected { reason: *reason, flags },
        None if flags.is_empty() => Verdict::Approved,
        None => Verdict::Flagged(flags),
    }
}

/// Case-insensitive after trimming, as the issue asks.
pub fn same_email(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// A domain (or a parent of it) on the `mailchecker` crate's list:
/// FGRibreau's maintained list of disposable-mail domains, compiled in and
/// updated with `cargo update -p mailchecker`. The crate's own check scans
/// the list (some 55,000 names) per call, so the list goes into a set once.
pub fn is_disposable(email: &str) -> bool {
    static DOMAINS: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
        std::sync::LazyLock::new(|| mailchecker::blacklist().into_iter().collect());
    let Some((_, domain)) = email.trim().rsplit_once('@') else { return false };
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let mut rest = domain.as_str();
    loop {
        if DOMAINS.contains(rest) {
            return true;
        }
        match rest.split_once('.') {
            Some((_, parent)) if parent.contains('.') => rest = parent,
            _ => return false,
        }
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
