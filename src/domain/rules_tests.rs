use super::*;
use serde_json::json;

fn facts() -> Facts<'static> {
    Facts { seconds_since_click: Some(600), ..Default::default() }
}

#[test]
fn a_conversion_that_hits_no_rule_is_approved() {
    assert_eq!(judge(&Rules::default(), &facts()), Verdict::Approved);
}

#[test]
fn a_flagging_rule_holds_the_conversion_and_names_itself() {
    let f = Facts { bot_click: true, ..facts() };
    assert_eq!(judge(&Rules::default(), &f), Verdict::Flagged(vec![Reason::BotClick]));
}

#[test]
fn a_rejecting_rule_wins_over_flags_and_every_hit_is_listed() {
    let rules = Rules::default().patched(&json!({"minSecondsToConvert": {"seconds": 60, "action": "reject"}})).unwrap();
    let f = Facts { seconds_since_click: Some(5), bot_click: true, ..Default::default() };
    assert_eq!(
        judge(&rules, &f),
        Verdict::Rejected { reason: Reason::TooFast, flags: vec![Reason::TooFast, Reason::BotClick] }
    );
}

#[test]
fn too_late_is_rejected_by_default_after_ninety_days() {
    let f = Facts { seconds_since_click: Some(90 * 86_400 + 1), ..Default::default() };
    assert!(matches!(judge(&Rules::default(), &f), Verdict::Rejected { reason: Reason::TooLate, .. }));
    let f = Facts { seconds_since_click: Some(90 * 86_400), ..Default::default() };
    assert_eq!(judge(&Rules::default(), &f), Verdict::Approved);
}

#[test]
fn self_referral_compares_emails_trimmed_and_case_insensitively() {
    let f = Facts { email: Some("Ann@Example.com"), affiliate_email: Some(" ann@example.COM "), ..facts() };
    assert_eq!(judge(&Rules::default(), &f), Verdict::Flagged(vec![Reason::SelfReferral]));
}

#[test]
fn disposable_domains_and_their_subdomains_are_caught_and_ordinary_ones_are_not() {
    assert!(is_disposable("someone@mailinator.com"));
    assert!(is_disposable("someone@eu.33mail.com"));
    assert!(!is_disposable("someone@gmail.com"));
    assert!(!is_disposable("someone@example.org"));
}

#[test]
fn an_action_turned_off_never_hits() {
    let rules = Rules::default().patched(&json!({"botClick": "off"})).unwrap();
    assert_eq!(judge(&rules, &Facts { bot_click: true, ..facts() }), Verdict::Approved);
}

#[test]
fn bad_rules_name_the_field_and_leave_the_rules_as_they_were() {
    let base = Rules::default();
    let cases = [
        (json!({"botClick": "maybe"}), "rules.botClick"),
        (json!({"minSecondsToConvert": {"seconds": -1, "action": "flag"}}), "rules.minSecondsToConvert.seconds"),
        (json!({"minSecondsToConvert": {"seconds": 1.5, "action": "flag"}}), "rules.minSecondsToConvert.seconds"),
        (json!({"maxSecondsToConvert": {"seconds": 10}}), "rules.maxSecondsToConvert.action"),
        (json!({"uniqueClickWindowSeconds": "1h"}), "rules.uniqueClickWindowSeconds"),
        (json!({"noSuchRule": "flag"}), "rules.noSuchRule"),
        (json!([]), "rules"),
    ];
    for (input, field) in cases {
        assert_eq!(base.patched(&input).unwrap_err().field, field, "{input}");
    }
}
