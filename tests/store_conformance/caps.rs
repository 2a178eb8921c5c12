//! The caps contract: a claim is admitted in its record's own commit up to
//! the limit and no further, even from racing commits; a record over the
//! cap is stored rejected; a claim is given back exactly once; and the
//! review listing follows a conversion's status. Each check has its own
//! campaign.

use std::sync::Arc;

use clickledger::domain::caps::{Bound, Claim, Scope, Usage, Window};
use clickledger::domain::ids::*;
use clickledger::domain::model::*;
use clickledger::store::*;

type Shared = Arc<dyn Backend>;

pub async fn suite(store: &Shared) {
    a_claim_is_admitted_up_to_its_limit_and_the_next_record_is_stored_rejected(store).await;
    racing_commits_never_take_more_than_a_cap_allows(store).await;
    a_payout_cap_refuses_the_payout_that_would_cross_it(store).await;
    a_claim_is_given_back_exactly_once(store).await;
    a_claim_for_a_key_already_on_record_takes_nothing(store).await;
    conversions_are_listed_by_status_and_follow_a_review(store).await;
}

fn total(conversions: Option<u64>, cents: Option<u64>) -> Claim {
    let window = Window { scope: Scope::Campaign, day: None };
    Claim { bounds: vec![Bound { window, conversions, payout_cents: cents }], cents: 0 }
}

fn conversion(campaign: u64, cents: u64) -> Conversion {
    Conversion {
        id: ConversionId::new(),
        campaign_id: CampaignId(campaign),
        click_id: ClickId::new(),
        affiliate_id: AffiliateId(1),
        email: None,
        fields: Fields::new(),
        extra: Fields::new(),
        created_at: clickledger::domain::unix_now(),
        payout_cents: cents,
        bot_click: false,
        subs: Default::default(),
        status: ConversionStatus::Approved,
        reason: None,
        flags: vec![],
        reviewed_at: None,
        counted: false,
    }
}

async fn commit_claimed(store: &Shared, c: &Conversion, claim: &Claim) -> Keyed {
    let claim = Claim { cents: c.payout_cents, ..claim.clone() };
    let batch = Batch { keyed: vec![Keyed::Conversion(c.clone())], claims: vec![(0, claim)], ..Default::default() };
    match store.commit(Arc::new(batch)).await.expect("commit").remove(0) {
        Outcome::InsertedAs(stored) => stored,
        other => panic!("a new key with a claim is stored as its claim left it: {other:?}"),
    }
}

async fn used(store: &Shared, campaign: u64) -> Usage {
    store.cap_usage(CampaignId(campaign), &[Window { scope: Scope::Campaign, day: None }]).await.unwrap()[0]
}

async fn a_claim_is_admitted_up_to_its_limit_and_the_next_record_is_stored_rejected(store: &Shared) {
    let claim = total(Some(2), None);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let stored = commit_claimed(store, &conversion(901, 100), &claim).await;
        statuses.push((stored.status(), stored.counted(), stored.reason().map(str::to_string)));
    }
    assert_eq!(
        statuses,
        [("approved", true, None), ("approved", true, None), ("rejected", false, Some("cap_reached".to_string()))]
    );
    assert_eq!(used(store, 901).await, Usage { conversions: 2, payout_cents: 200 });
}

async fn racing_commits_never_take_more_than_a_cap_allows(store: &Shared) {
    let claim = total(Some(5), None);
    let racers = (0..24).map(|_| {
        let (store, claim) = (store.clone(), claim.clone());
        tokio::spawn(async move { commit_claimed(&store, &conversion(902, 10), &claim).await.counted() })
    });
    let admitted = futures::future::join_all(racers).await.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(admitted, 5, "exactly the cap, not one more, not one less");
    assert_eq!(used(store, 902).await, Usage { conversions: 5, payout_cents: 50 });
}

async fn a_payout_cap_refuses_the_payout_that_would_cross_it(store: &Shared) {
    let claim = total(None, Some(100));
    assert!(commit_claimed(store, &conversion(903, 60), &claim).await.counted());
    assert!(!commit_claimed(store, &conversion(903, 41), &claim).await.counted(), "60 + 41 would cross 100");
    assert!(commit_claimed(store, &conversion(903, 40), &claim).await.counted(), "60 + 40 is exactly 100");
    assert_eq!(used(store, 903).await, Usage { conversions: 2, payout_cents: 100 });
}

async fn a_claim_is_given_back_exactly_once(store: &Shared) {
    let claim = total(Some(1), None);
    let first = commit_claimed(store, &conversion(904, 25), &claim).await;
    assert!(!commit_claimed(store, &conversion(904, 25), &claim).await.counted(), "the cap is full");
    assert!(store.release_claim(CampaignId(904), &first.dedup_key()).await.unwrap());
    assert!(!store.release_claim(CampaignId(904), &first.dedup_key()).await.unwrap(), "a second release gives nothing");
    assert_eq!(used(store, 904).await, Usage::default());
    assert!(commit_claimed(store, &conversion(904, 25), &claim).await.counted(), "the capacity came back");
}

async fn a_claim_for_a_key_already_on_record_takes_nothing(store: &Shared) {
    let before = conversion(905, 10);
    store
        .commit(Arc::new(Batch { keyed: vec![Keyed::Conversion(before.clone())], ..Default::default() }))
        .await
        .unwrap();
    let again = Conversion { id: ConversionId::new(), ..before };
    let batch =
        Batch { keyed: vec![Keyed::Conversion(again)], claims: vec![(0, total(Some(3), None))], ..Default::default() };
    let out = store.commit(Arc::new(batch)).await.unwrap();
    assert!(matches!(out[0], Outcome::Existing(_)), "{out:?}");
    assert_eq!(used(store, 905).await, Usage::default(), "a duplicate takes no capacity");
}

async fn conversions_are_listed_by_status_and_follow_a_review(store: &Shared) {
    let held = Conversion { status: ConversionStatus::PendingReview, ..conversion(906, 10) };
    // Ids minted in one millisecond order by their random tail: set it.
    let fine = Conversion { id: ConversionId(held.id.0 + 1), ..conversion(906, 10) };
    let keyed = vec![Keyed::Conversion(held.clone()), Keyed::Conversion(fine.clone())];
    store.commit(Arc::new(Batch { keyed, ..Default::default() })).await.unwrap();
    let query = |status| ConversionQuery { campaign: CampaignId(906), status, before: None, limit: 10 };
    let ids = |list: Vec<Conversion>| list.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(ids(store.list_conversions(&query(Some(ConversionStatus::PendingReview))).await.unwrap()), [held.id]);
    assert_eq!(ids(store.list_conversions(&query(None)).await.unwrap()), [fine.id, held.id], "newest first");

    let approved = Conversion { status: ConversionStatus::Approved, reviewed_at: Some(5), ..held.clone() };
    assert!(store.replace_conversion(&approved, ConversionStatus::PendingReview).await.unwrap());
    assert!(!store.replace_conversion(&approved, ConversionStatus::PendingReview).await.unwrap(), "decided once");
    assert!(store.list_conversions(&query(Some(ConversionStatus::PendingReview))).await.unwrap().is_empty());
    assert_eq!(
        ids(store.list_conversions(&query(Some(ConversionStatus::Approved))).await.unwrap()),
        [fine.id, held.id]
    );
    let stats = store.get_stats(CampaignId(906)).await.unwrap();
    assert_eq!((stats.statuses.get("approved"), stats.statuses.get("pending_review")), (Some(&2), Some(&0)));
}
