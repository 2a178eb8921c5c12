use serde_json::json;

use super::*;
use crate::domain::ids::*;
use crate::domain::model::*;

fn lead(status: LeadStatus) -> Lead {
    let external = Lead::direct_key(LeadId(1));
    Lead {
        id: LeadId(1),
        event_type: EventType::Lead,
        payout_cents: 500,
        status,
        source: LeadSource::Direct,
        ..Lead::verified(CampaignId(1), AffiliateId(1), "code".into(), external, 0)
    }
}

fn field_of(items: Value) -> String {
    evidence(items.as_array().unwrap()).unwrap_err().field
}

#[test]
fn well_formed_evidence_is_accepted_and_hashes_are_lowercased() {
    let hash = "AB".repeat(32);
    let items = json!([{"type": "tweet", "url": "https://x.com/a/status/1", "description": "50k followers"},
                       {"type": "code_commit", "hash": hash}]);
    let got = evidence(items.as_array().unwrap()).unwrap();
    assert_eq!(got[0].kind, EvidenceType::Tweet);
    assert_eq!(got[1].hash.as_deref(), Some("ab".repeat(32).as_str()));
}

#[test]
fn each_bad_evidence_field_is_named() {
    assert_eq!(field_of(json!([{"type": "fax"}])), "evidence[0].type");
    assert_eq!(field_of(json!([{"url": "https://a.b"}])), "evidence[0].type");
    assert_eq!(field_of(json!([{"type": "email"}, {"type": "email", "url": "ftp://a.b"}])), "evidence[1].url");
    assert_eq!(field_of(json!([{"type": "email", "url": "javascript:alert(1)"}])), "evidence[0].url");
    assert_eq!(field_of(json!([{"type": "email", "hash": "abc"}])), "evidence[0].hash");
    assert_eq!(field_of(json!([{"type": "email", "hash": "g".repeat(64)}])), "evidence[0].hash");
    assert_eq!(
        field_of(json!([{"type": "email", "description": "x".repeat(MAX_DESCRIPTION + 1)}])),
        "evidence[0].description"
    );
    assert_eq!(field_of(json!([{"type": "email", "extra": 1}])), "evidence[0].extra");
    assert_eq!(field_of(json!(["tweet"])), "evidence[0]");
}

#[test]
fn evidence_needs_one_to_ten_items() {
    assert_eq!(field_of(json!([])), "evidence");
    let eleven: Vec<Value> = (0..11).map(|_| json!({"type": "email"})).collect();
    assert_eq!(field_of(Value::Array(eleven)), "evidence");
    let ten: Vec<Value> = (0..10).map(|_| json!({"type": "email"})).collect();
    assert!(evidence(&ten).is_ok());
}

#[test]
fn verifying_a_pending_lead_is_final_and_repeating_it_is_a_no_op() {
    let verified = decide(&lead(LeadStatus::PendingReview), LeadStatus::Verified, None, 9).unwrap().unwrap();
    assert_eq!((verified.status, verified.reviewed_at), (LeadStatus::Verified, Some(9)));
    assert_eq!(decide(&verified, LeadStatus::Verified, None, 10), Ok(None));
    assert_eq!(decide(&verified, LeadStatus::Rejected, None, 10), Err(ReviewError::AlreadyDecided("verified")));
}

#[test]
fn rejecting_keeps_the_reason_and_cannot_be_undone() {
    let rejected =
        decide(&lead(LeadStatus::PendingReview), LeadStatus::Rejected, Some("spam".into()), 1).unwrap().unwrap();
    assert_eq!(rejected.rejection_reason.as_deref(), Some("spam"));
    assert_eq!(decide(&rejected, LeadStatus::Verified, None, 2), Err(ReviewError::AlreadyDecided("rejected")));
}

#[test]
fn old_pending_postback_leads_read_as_verified() {
    let status: LeadStatus = serde_json::from_value(json!("pending")).unwrap();
    assert_eq!(status, LeadStatus::Verified);
}

#[test]
fn a_reason_is_required_trimmed_and_bounded() {
    assert_eq!(reason(Some("  spam  ")), Ok("spam".to_string()));
    assert_eq!(reason(None).unwrap_err().field, "reason");
    assert!(reason(Some("   ")).is_err());
    assert!(reason(Some(&"é".repeat(MAX_REASON))).is_ok());
    assert!(reason(Some(&"é".repeat(MAX_REASON + 1))).is_err());
}
