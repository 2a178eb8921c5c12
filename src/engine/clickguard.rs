//! The click side of the guards, in memory so a redirect reads no store:
//! the unique-click window (a repeat of one client on one link is logged
//! as a duplicate, not counted) and click caps (a click over a cap goes to
//! the fallback URL and is logged as capped).
//!
//! Both are per node. A repeat that lands on another node is counted there;
//! a click cap counts this node's clicks on top of the stored count, which
//! it reads once per window and again every `REFRESH_SECS`, so several
//! nodes together can pass a click cap by the clicks the others take
//! between refreshes. Conversion and payout caps are the exact ones (they
//! are checked in the store's commit).

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use crate::domain::caps::{Caps, Scope, Window};
use crate::domain::ids::{AffiliateId, CampaignId};
use crate::domain::model::{Campaign, IpHash};

/// Clients remembered for the unique-click window; past it the oldest half
/// of the window is forgotten (a repeat may then count once more).
pub const MAX_RECENT: usize = 1_000_000;
/// How often a node re-reads a click window's stored count.
pub const REFRESH_SECS: u64 = 5;

/// The paid-search and paid-social click ids the `paidTrafficClickIds` rule knows.
pub const PAID_CLICK_IDS: [&str; 7] = ["gclid", "gbraid", "wbraid", "fbclid", "msclkid", "ttclid", "li_fat_id"];

#[derive(Default)]
pub struct ClickGuard {
    /// Hash of (code, client, user agent) → when its window started.
    recent: DashMap<u64, u64>,
    hasher: std::collections::hash_map::RandomState,
    windows: DashMap<(CampaignId, String), Arc<Count>>,
}

/// One capped window's clicks as this node knows them.
#[derive(Default)]
pub struct Count {
    clicks: AtomicU64,
    /// When the stored count was last folded in (0: never).
    refreshed: AtomicU64,
}

/// A click window with its limit.
pub struct Capped {
    pub window: Window,
    pub key: String,
    pub limit: u64,
    pub count: Arc<Count>,
}

impl ClickGuard {
    /// Whether this client clicked this link within `window` seconds before
    /// `now`; a click outside any window starts a new one.
    pub fn repeat(&self, code: &str, client: IpHash, user_agent: &str, now: u64, window: u64) -> bool {
        if window == 0 {
            return false;
        }
        let key = self.hasher.hash_one((code, client.0, user_agent));
        let mut repeat = false;
        self.recent
            .entry(key)
            .and_modify(|started| {
                if now.saturating_sub(*started) < window {
                    repeat = true;
                } else {
                    *started = now;
                }
            })
            .or_insert(now);
        if self.recent.len() > MAX_RECENT {
            self.forget(now, window);
        }
        repeat
    }

    fn forget(&self, now: u64, window: u64) {
        let cutoff = now.saturating_sub(window / 2);
        self.recent.retain(|_, started| *started >= cutoff);
        if self.recent.len() > MAX_RECENT {
            self.recent.clear();
        }
    }

    /// The campaign's click windows with a limit that a click of
    /// `affiliate` at `now` counts against.
    pub fn windows(&self, campaign: &Campaign, affiliate: AffiliateId, now: u64) -> Vec<Capped> {
        let mut out = Vec::new();
        let mut add = |scope: Scope, caps: &Caps| {
            for (limit, day) in [(caps.daily.clicks, Some(caps.day(now))), (caps.total.clicks, None)] {
                if let Some(limit) = limit {
                    let window = Window { scope, day };
                    let key = window.key();
                    let count = self.windows.entry((campaign.id, key.clone())).or_default().clone();
                    out.push(Capped { window, key, limit, count });
                }
            }
        };
        add(Scope::Campaign, &campaign.caps);
        if let Some(caps) = campaign.affiliate_caps.get(&affiliate) {
            add(Scope::Affiliate(affiliate), caps);
        }
        out
    }
}

impl Count {
    /// One more click if the count is under `limit`.
    pub fn try_take(&self, limit: u64) -> bool {
        self.clicks.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1)).is_ok()
    }

    pub fn give_back(&self) {
        let _ = self.clicks.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n.saturating_sub(1)));
    }

    /// Whether the stored count is due to be folded in again.
    pub fn stale(&self, now: u64) -> bool {
        let at = self.refreshed.load(Ordering::Relaxed);
        at == 0 || now.saturating_sub(at) >= REFRESH_SECS
    }

    pub fn never_read(&self) -> bool {
        self.refreshed.load(Ordering::Relaxed) == 0
    }

    /// A read is under way: others do not start one for a while.
    pub fn mark_reading(&self, now: u64) {
        if !self.never_read() {
            self.refreshed.store(now.max(1), Ordering::Relaxed);
        }
    }

    /// Folds in the stored count: the larger of the two, since the stored
    /// one holds this node's flushed clicks and other nodes', and this one
    /// holds this node's clicks not flushed yet.
    pub fn fold(&self, stored: u64, now: u64) {
        self.clicks.fetch_max(stored, Ordering::Relaxed);
        self.refreshed.store(now.max(1), Ordering::Relaxed);
    }
}

/// Whether a link's query carries a paid-traffic click id.
pub fn has_paid_click_id(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            PAID_CLICK_IDS.iter().any(|p| p.eq_ignore_ascii_case(name))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_inside_the_window_is_a_repeat_and_one_after_it_starts_a_new_window() {
        let g = ClickGuard::default();
        let ip = IpHash([1; 16]);
        assert!(!g.repeat("CODE", ip, "ua", 100, 60));
        assert!(g.repeat("CODE", ip, "ua", 159, 60));
        assert!(!g.repeat("CODE", ip, "other ua", 120, 60));
        assert!(!g.repeat("OTHER", ip, "ua", 120, 60));
        assert!(!g.repeat("CODE", ip, "ua", 160, 60));
        assert!(g.repeat("CODE", ip, "ua", 161, 60));
        assert!(!g.repeat("CODE", ip, "ua", 161, 0), "a window of zero is off");
    }

    #[test]
    fn paid_click_ids_are_found_by_name_only() {
        assert!(has_paid_click_id(Some("utm=x&gclid=abc")));
        assert!(has_paid_click_id(Some("FBCLID=1")));
        assert!(!has_paid_click_id(Some("sub1=gclid")));
        assert!(!has_paid_click_id(None));
    }
}
