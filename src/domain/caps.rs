//! Caps and budgets: what a campaign (or one affiliate on it) may take per
//! local day and in total, and the windows one conversion counts against.
//! The stores keep the usage; this module says which windows and limits.

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ids::AffiliateId;
use super::payout::MAX_CENTS;
use super::validate::{invalid, Invalid};

/// The most clicks or conversions a cap may name (beyond it a cap means
/// nothing a counter could reach).
pub const MAX_COUNT: u64 = 1_000_000_000_000;
/// A payout cap is a sum of payouts: at most a million maximal payouts.
pub const MAX_PAYOUT_CAP_CENTS: u64 = MAX_CENTS * 1_000_000;
/// Affiliates with caps of their own on one campaign.
pub const MAX_AFFILIATE_CAPS: usize = 10_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clicks: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversions: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payout_cents: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Caps {
    #[serde(default, skip_serializing_if = "Limits::is_empty")]
    pub daily: Limits,
    #[serde(default, skip_serializing_if = "Limits::is_empty")]
    pub total: Limits,
    /// IANA name; days roll over at its local midnight. `None`: UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

impl Caps {
    pub fn is_empty(&self) -> bool {
        self.daily.is_empty() && self.total.is_empty()
    }

    /// Parses a whole `caps` object (`field` names it in errors); `null`
    /// or `{}` removes every cap.
    pub fn parse(field: &str, v: &Value) -> Result<Caps, Invalid> {
        if v.is_null() {
            return Ok(Caps::default());
        }
        let obj = v.as_object().ok_or_else(|| invalid(field, "must be an object: {daily, total, timezone}"))?;
        let mut caps = Caps::default();
        for (key, value) in obj {
            let name = format!("{field}.{key}");
            match key.as_str() {
                "daily" => caps.daily = limits(&name, value)?,
                "total" => caps.total = limits(&name, value)?,
                "timezone" if value.is_null() => caps.timezone = None,
                "timezone" => caps.timezone = Some(timezone(&name, value)?.name().to_string()),
                _ => return Err(invalid(&name, "is not a known field (daily, total, timezone)")),
            }
        }
        Ok(caps)
    }

    fn tz(&self) -> Tz {
        self.timezone.as_deref().and_then(|t| t.parse().ok()).unwrap_or(Tz::UTC)
    }

    /// The local day `at` falls on, as days since 1970-01-01 in the caps'
    /// timezone (DST included: a local day may be 23 or 25 hours long).
    pub fn day(&self, at: u64) -> i64 {
        let when = Utc.timestamp_opt(at.min(i64::MAX as u64 / 2) as i64, 0).single().unwrap_or_default();
        let local = when.with_timezone(&self.tz()).date_naive();
        local.signed_duration_since(chrono::NaiveDate::default()).num_days()
    }
}

fn limits(field: &str, v: &Value) -> Result<Limits, Invalid> {
    if v.is_null() {
        return Ok(Limits::default());
    }
    let obj = v.as_object().ok_or_else(|| invalid(field, "must be an object: {clicks, conversions, payoutCents}"))?;
    let mut out = Limits::default();
    for (key, value) in obj {
        let name = format!("{field}.{key}");
        let bounded =
            |max: u64| -> Result<Option<u64>, Invalid> {
                if value.is_null() {
                    return Ok(None);
                }
                value.as_u64().filter(|n| *n <= max).map(Some).ok_or_else(|| {
                    invalid(&name, format!("must be a whole number from 0 to {max}, or null for no cap"))
                })
            };
        match key.as_str() {
            "clicks" => out.clicks = bounded(MAX_COUNT)?,
            "conversions" => out.conversions = bounded(MAX_COUNT)?,
            "payoutCents" => out.payout_cents = bounded(MAX_PAYOUT_CAP_CENTS)?,
            _ => return Err(invalid(&name, "is not a known cap (clicks, conversions, payoutCents)")),
        }
    }
    Ok(out)
}

fn timezone(field: &str, v: &Value) -> Result<Tz, Invalid> {
    v.as_str()
        .and_then(|t| t.parse::<Tz>().ok())
        .ok_or_else(|| invalid(field, "must be an IANA timezone name such as \"Europe/Berlin\" or \"UTC\""))
}

/// Whose cap a window is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    Campaign,
    Affiliate(AffiliateId),
}

/// One counter a conversion counts against: a scope's day or its total.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Window {
    pub scope: Scope,
    /// Local day number; `None`: the total.
    pub day: Option<i64>,
}

impl Window {
    /// `daily` or `total` (the metrics' label).
    pub fn period(&self) -> &'static str {
        if self.day.is_some() {
            "daily"
        } else {
            "total"
        }
    }

    /// The stores' key for the window's usage row.
    pub fn key(&self) -> String {
        let scope = match self.scope {
            Scope::Campaign => "campaign".to_string(),
            Scope::Affiliate(a) => format!("affiliate:{}", a.0),
        };
        match self.day {
            Some(d) => format!("{scope}:day:{d}"),
            None => format!("{scope}:total"),
        }
    }
}

/// What a window has taken so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub conversions: u64,
    pub payout_cents: u64,
}

/// One window with its limits, as a conversion's claim checks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bound {
    pub window: Window,
    pub conversions: Option<u64>,
    pub payout_cents: Option<u64>,
}

impl Bound {
    /// Whether one more conversion paying `cents` fits on top of `used`.
    /// A payout that would cross the cap is refused whole.
    pub fn admits(&self, used: Usage, cents: u64) -> bool {
        self.refusal(used, cents).is_none()
    }

    /// Which limit refuses one more conversion paying `cents` on `used`
    /// (`conversions` or `payout_cents`), if one does.
    pub fn refusal(&self, used: Usage, cents: u64) -> Option<&'static str> {
        let over = |limit: Option<u64>, used: u64, add: u64| {
            limit.is_some_and(|l| used.checked_add(add).is_none_or(|n| n > l))
        };
        if over(self.conversions, used.conversions, 1) {
            Some("conversions")
        } else if over(self.payout_cents, used.payout_cents, cents) {
            Some("payout_cents")
        } else {
            None
        }
    }
}

impl Usage {
    /// Saturating: a claim admitted under a limit of at most 10^18 cents
    /// cannot push a window near the top of 64 bits.
    pub fn plus(self, cents: u64) -> Usage {
        Usage { conversions: self.conversions.saturating_add(1), payout_cents: self.payout_cents.saturating_add(cents) }
    }

    pub fn minus(self, cents: u64) -> Usage {
        Usage { conversions: self.conversions.saturating_sub(1), payout_cents: self.payout_cents.saturating_sub(cents) }
    }
}

/// A record's claim on its windows: what it took, so giving it back (a
/// reversal, a rejection on review) returns exactly that.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub bounds: Vec<Bound>,
    pub cents: u64,
}

impl Claim {
    /// The windows a conversion of `affiliate` at `at` paying `cents`
    /// counts against, under the campaign's and the affiliate's caps.
    /// `None`: no conversion or payout cap applies.
    pub fn for_conversion(
        campaign: &Caps,
        affiliate_caps: Option<&Caps>,
        affiliate: AffiliateId,
        at: u64,
        cents: u64,
    ) -> Option<Claim> {
        let mut bounds = Vec::new();
        let scopes = [(Scope::Campaign, Some(campaign)), (Scope::Affiliate(affiliate), affiliate_caps)];
        for (scope, caps) in scopes {
            let Some(caps) = caps else { continue };
            for (limits, day) in [(caps.daily, Some(caps.day(at))), (caps.total, None)] {
                if limits.conversions.is_some() || limits.payout_cents.is_some() {
                    let window = Window { scope, day };
                    bounds.push(Bound { window, conversions: limits.conversions, payout_cents: limits.payout_cents });
                }
            }
        }
        (!bounds.is_empty()).then_some(Claim { bounds, cents })
    }

    /// Checks the claim against its windows' usage (in `bounds` order):
    /// `Err` names the first refusing bound and limit, and counts it.
    pub fn check(&self, used: &[Usage]) -> Result<(), (Bound, &'static str)> {
        for (bound, used) in self.bounds.iter().zip(used) {
            if let Some(kind) = bound.refusal(*used, self.cents) {
                crate::metrics::cap_reached(kind, bound.window.period());
                return Err((*bound, kind));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "caps_tests.rs"]
mod tests;
