//! After the run, the engine's own campaign stats (through the API) must
//! account for exactly what it acknowledged: every 201 `recorded` counted
//! once, every repeat counted as a duplicate, forged tokens counted nowhere,
//! payouts adding up. Stats are read before and after, and compared as
//! differences, so a target that already holds data works too, as long as
//! nothing else sends to the same campaigns meanwhile.

use std::time::Duration;

use hyper::Method;
use serde::Serialize;
use serde_json::Value;

use crate::http::{Base, Conn};
use crate::scenario::{CampaignTally, Scenario, Tally};
use crate::target::Target;

/// Duplicate and click counters land with the campaign's next group commit,
/// a few milliseconds after the answer: poll this long before failing.
const SETTLE: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    clicks: u64,
    conversions_recorded: u64,
    conversions_duplicate: u64,
    conversions_ignored: u64,
    postbacks_recorded: u64,
    postbacks_duplicate: u64,
    payout_cents: u64,
}

impl Stats {
    fn from_json(s: &Value) -> Self {
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        let ignored = s["conversions"]["ignored"].as_object().map(|m| m.values().map(n).sum()).unwrap_or(0);
        Self {
            // Every logged click: counted, bots, repeats and capped ones.
            clicks: n(&s["clicks"]) + n(&s["botClicks"]) + n(&s["duplicateClicks"]) + n(&s["cappedClicks"]),
            conversions_recorded: n(&s["conversions"]["recorded"]),
            conversions_duplicate: n(&s["conversions"]["duplicate"]),
            conversions_ignored: ignored,
            postbacks_recorded: n(&s["postbacks"]["recorded"]),
            postbacks_duplicate: n(&s["postbacks"]["duplicate"]),
            payout_cents: n(&s["payoutCents"]),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Verification {
    pub passed: bool,
    pub checked: Vec<String>,
    pub failures: Vec<String>,
}

/// Every campaign's stats, in target order.
pub async fn snapshot(target: &Target) -> Result<Vec<Stats>, String> {
    let mut api = Conn::new(Base::parse(&target.base)?);
    let mut all = Vec::new();
    for c in &target.campaigns {
        let path = format!("/api/v1/campaigns/{}", c.id);
        let reply = api.api(Method::GET, &path, &target.advertiser_key, None).await?;
        if reply.status != 200 {
            return Err(format!("GET {path}: {} {}", reply.status, String::from_utf8_lossy(&reply.body)));
        }
        all.push(Stats::from_json(&reply.json()["stats"]));
    }
    Ok(all)
}

pub async fn verify(scenario: Scenario, target: &Target, before: &[Stats], tally: &Tally) -> Verification {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let failures = match snapshot(target).await {
            Ok(after) => compare(scenario, target, before, &after, tally),
            Err(e) => vec![format!("reading stats: {e}")],
        };
        if failures.is_empty() || tokio::time::Instant::now() >= deadline {
            return Verification { passed: failures.is_empty(), checked: checked(scenario, tally), failures };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn checked(scenario: Scenario, tally: &Tally) -> Vec<String> {
    let mut sum = CampaignTally::default();
    for c in &tally.campaigns {
        sum.add(c);
    }
    let mut lines = vec![format!("clicks: {} redirects answered 302", sum.clicks)];
    let (postbacks, conversions, referrals) = scenario.sends();
    if postbacks {
        lines.push(format!("postbacks: {} recorded, {} duplicates", sum.postbacks_recorded, sum.postbacks_duplicate));
    }
    if conversions {
        lines.push(format!(
            "conversions: {} recorded, {} duplicates, {} forged tokens ignored",
            sum.conversions_recorded, sum.conversions_duplicate, sum.forged_ignored
        ));
    }
    if referrals {
        lines.push(format!(
            "referrals: {} confirmed, {} repeated confirmations refused",
            sum.referrals_confirmed, sum.referrals_repeat_refused
        ));
    }
    lines.push(format!(
        "payout: {} cents; {} requests with unknown outcome (transport errors)",
        sum.payout_cents, sum.unknown
    ));
    lines
}

/// The differences that do not add up; empty when everything does. A
/// request lost to a transport error may or may not have landed, so its
/// campaign is allowed up to that many more.
fn compare(scenario: Scenario, target: &Target, before: &[Stats], after: &[Stats], tally: &Tally) -> Vec<String> {
    let mut failures: Vec<String> = tally.problems.iter().map(|p| format!("answer: {p}")).collect();
    if tally.problem_count > tally.problems.len() as u64 {
        failures.push(format!("… {} contradicting answers in all", tally.problem_count));
    }
    // A run in which nothing was acknowledged proves nothing (every request
    // refused, say, by an engine without the route): that is a failure.
    let mut acked = CampaignTally::default();
    tally.campaigns.iter().for_each(|c| acked.add(c));
    let nothing = acked.clicks
        + acked.postbacks_recorded
        + acked.postbacks_duplicate
        + acked.conversions_recorded
        + acked.conversions_duplicate
        + acked.forged_ignored
        + acked.referrals_confirmed;
    if nothing == 0 {
        failures.push("nothing was acknowledged: every request failed or was refused".into());
    }
    for (i, c) in target.campaigns.iter().enumerate() {
        let (b, a) = (before[i], after[i]);
        let t = tally.campaigns.get(i).cloned().unwrap_or_default();
        let mut check = |what: &str, got: u64, acked: u64, slack: u64| {
            if got < acked || got > acked + slack {
                let range = if slack > 0 { format!("{acked}..={}", acked + slack) } else { acked.to_string() };
                failures.push(format!("campaign {}: {what} went up by {got}, acknowledged {range}", c.id));
            }
        };
        let d = |f: fn(&Stats) -> u64| f(&a).wrapping_sub(f(&b));
        check("clicks", d(|s| s.clicks), t.clicks, tally.transport_errors);
        let (postbacks, conversions, _) = scenario.sends();
        if postbacks {
            check("postbacks.recorded", d(|s| s.postbacks_recorded), t.postbacks_recorded, t.unknown);
            check("postbacks.duplicate", d(|s| s.postbacks_duplicate), t.postbacks_duplicate, t.unknown);
        }
        if conversions {
            check("conversions.recorded", d(|s| s.conversions_recorded), t.conversions_recorded, t.unknown);
            check("conversions.duplicate", d(|s| s.conversions_duplicate), t.conversions_duplicate, t.unknown);
            check("conversions.ignored", d(|s| s.conversions_ignored), 0, 0);
        }
        let unit = c.payout_cents.unwrap_or(0).max(20_100 * c.payout_bp.unwrap_or(0) / 10_000 + 1);
        check("payoutCents", d(|s| s.payout_cents), t.payout_cents, t.unknown * unit);
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::TargetCampaign;

    fn target() -> Target {
        let c = TargetCampaign {
            id: "cmp_1".into(),
            compensation_model: "FIXED".into(),
            payout_cents: Some(500),
            payout_bp: None,
            codes: vec!["code".into()],
        };
        Target {
            base: "http://127.0.0.1:1".into(),
            advertiser_key: "sk".into(),
            campaigns: vec![c],
            affiliate_keys: vec![],
        }
    }

    fn tally(recorded: u64, duplicate: u64, unknown: u64) -> Tally {
        let c = CampaignTally {
            postbacks_recorded: recorded,
            postbacks_duplicate: duplicate,
            payout_cents: recorded * 500,
            unknown,
            ..CampaignTally::default()
        };
        Tally { campaigns: vec![c], ..Tally::default() }
    }

    fn stats(recorded: u64, duplicate: u64) -> Stats {
        Stats {
            postbacks_recorded: recorded,
            postbacks_duplicate: duplicate,
            payout_cents: recorded * 500,
            ..Stats::default()
        }
    }

    #[test]
    fn stats_that_match_the_acknowledged_answers_pass() {
        let before = [stats(7, 1)];
        assert!(compare(Scenario::Postback, &target(), &before, &[stats(17, 3)], &tally(10, 2, 0)).is_empty());
    }

    #[test]
    fn a_double_counted_or_lost_postback_fails() {
        let before = [stats(0, 0)];
        let doubled = compare(Scenario::Postback, &target(), &before, &[stats(11, 2)], &tally(10, 2, 0));
        assert!(doubled.iter().any(|f| f.contains("postbacks.recorded went up by 11")), "{doubled:?}");
        let lost = compare(Scenario::Postback, &target(), &before, &[stats(9, 2)], &tally(10, 2, 0));
        assert!(lost.iter().any(|f| f.contains("postbacks.recorded")), "{lost:?}");
    }

    #[test]
    fn a_transport_error_allows_one_more_but_never_fewer() {
        let before = [stats(0, 0)];
        assert!(compare(Scenario::Postback, &target(), &before, &[stats(11, 2)], &tally(10, 2, 1)).is_empty());
        assert!(!compare(Scenario::Postback, &target(), &before, &[stats(9, 2)], &tally(10, 2, 1)).is_empty());
    }

    #[test]
    fn a_contradicting_answer_fails_even_when_the_counts_agree() {
        let mut t = tally(1, 0, 0);
        t.problem_count = 1;
        t.problems.push("a repeat answered 201 recorded".into());
        assert!(!compare(Scenario::Postback, &target(), &[stats(0, 0)], &[stats(1, 0)], &t).is_empty());
    }
}
