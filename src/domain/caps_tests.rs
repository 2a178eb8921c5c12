use super::*;
use serde_json::json;

#[test]
fn caps_parse_with_their_timezone_and_round_trip() {
    let caps =
        Caps::parse("caps", &json!({"daily": {"conversions": 10, "payoutCents": 5000}, "timezone": "Europe/Berlin"}))
            .unwrap();
    assert_eq!(caps.daily, Limits { clicks: None, conversions: Some(10), payout_cents: Some(5000) });
    assert_eq!(caps.timezone.as_deref(), Some("Europe/Berlin"));
    let back: Caps = serde_json::from_value(serde_json::to_value(&caps).unwrap()).unwrap();
    assert_eq!(back, caps);
}

#[test]
fn bad_caps_name_the_field() {
    let cases = [
        (json!({"daily": {"conversions": -1}}), "caps.daily.conversions"),
        (json!({"daily": {"conversions": 2.5}}), "caps.daily.conversions"),
        (json!({"total": {"payoutCents": MAX_PAYOUT_CAP_CENTS + 1}}), "caps.total.payoutCents"),
        (json!({"total": {"leads": 1}}), "caps.total.leads"),
        (json!({"timezone": "Mars/Olympus"}), "caps.timezone"),
        (json!({"weekly": {}}), "caps.weekly"),
        (json!(5), "caps"),
    ];
    for (input, field) in cases {
        assert_eq!(Caps::parse("caps", &input).unwrap_err().field, field, "{input}");
    }
}

#[test]
fn a_local_day_rolls_over_at_local_midnight_across_dst() {
    let berlin = Caps { timezone: Some("Europe/Berlin".into()), ..Default::default() };
    let utc = Caps::default();
    // 2026-03-28 23:30 UTC is already 2026-03-29 00:30 in Berlin (CET, +1).
    let t = 1_774_740_600;
    assert_eq!(berlin.day(t), utc.day(t) + 1);
    // 2026-03-29 is 23 hours long in Berlin (DST starts at 02:00):
    // 2026-03-29 22:30 UTC is 00:30 on the 30th there (CEST, +2).
    let next = t + 23 * 3600;
    assert_eq!(berlin.day(next), berlin.day(t) + 1);
    assert_eq!(utc.day(next), utc.day(t) + 1);
}

#[test]
fn a_claim_counts_against_each_capped_window_of_both_scopes() {
    let campaign = Caps { daily: Limits { conversions: Some(3), ..Default::default() }, ..Default::default() };
    let mine = Caps { total: Limits { payout_cents: Some(100), ..Default::default() }, ..Default::default() };
    let claim = Claim::for_conversion(&campaign, Some(&mine), AffiliateId(9), 86_400 * 3, 40).unwrap();
    let keys: Vec<String> = claim.bounds.iter().map(|b| b.window.key()).collect();
    assert_eq!(keys, ["campaign:day:3", "affiliate:9:total"]);
    assert!(Claim::for_conversion(&Caps::default(), None, AffiliateId(9), 0, 40).is_none());
}

#[test]
fn a_bound_admits_up_to_its_limit_and_refuses_a_payout_that_would_cross_it() {
    let b =
        Bound { window: Window { scope: Scope::Campaign, day: None }, conversions: Some(2), payout_cents: Some(100) };
    assert!(b.admits(Usage { conversions: 1, payout_cents: 60 }, 40));
    assert!(!b.admits(Usage { conversions: 1, payout_cents: 61 }, 40));
    assert!(!b.admits(Usage { conversions: 2, payout_cents: 0 }, 0));
    assert!(!b.admits(Usage { conversions: 0, payout_cents: u64::MAX }, 1));
}
