//! The `Ledger` contract: the due-time index, payouts and their moves,
//! funding, wallets, lead review, referrals. Run on every backend by the
//! suite in `store_conformance.rs`; each check uses its own campaigns and
//! affiliates, so the checks do not see each other's money.

use std::sync::Arc;

use clickledger::domain::ids::*;
use clickledger::domain::model::*;
use clickledger::domain::money::{self, *};
use clickledger::domain::referral::{Referral, ReferralStatus};
use clickledger::store::*;

type Shared = Arc<dyn Backend>;

pub async fn suite(store: &Shared) {
    due_items_come_oldest_first_bounded_by_time_and_limit(store).await;
    a_payout_is_created_once_and_owes_its_affiliate_a_pending_line(store).await;
    escrow_is_refused_without_funds_and_applied_after_funding(store).await;
    funding_is_idempotent_on_its_transaction(store).await;
    a_payout_is_escrowed_released_credited_and_clawed_back_with_its_wallet(store).await;
    a_reversal_before_credit_cancels_and_gives_the_money_back(store).await;
    a_replayed_move_returns_moved_and_posts_nothing_twice(store).await;
    racing_moves_of_one_payout_apply_exactly_once(store).await;
    racing_escrows_of_one_campaign_never_spend_more_than_was_funded(store).await;
    a_wallet_pages_newest_first_with_a_cursor(store).await;
    leads_are_replaced_by_status_and_listed_newest_first(store).await;
    leads_and_conversions_are_found_by_id_after_commit(store).await;
    committing_a_paying_record_schedules_its_escrow(store).await;
    referrals_are_compare_and_set_on_status(store).await;
    every_campaign_ledger_sums_to_zero_and_folds_to_its_balance(store).await;
    deposits_stop_at_the_campaign_bound_and_the_refused_one_writes_nothing(store).await;
    wallet_totals_stay_exact_past_the_range_of_i64(store).await;
    a_pass_of_record_intents_is_paid_escrowed_where_funds_cover_it_and_removed(store).await;
}

fn now() -> u64 {
    clickledger::domain::unix_now()
}

fn payout(campaign: u64, affiliate: u64, cents: u64) -> Payout {
    let id = LeadId::new();
    Payout::new(PayoutId(id.0), CampaignId(campaign), AffiliateId(affiliate), id.to_string(), cents, now())
}

fn fund(campaign: u64, key: &str, cents: u64) -> Funding {
    Funding::new(CampaignId(campaign), key, cents, now())
}

async fn wallet_lines(store: &Shared, affiliate: u64) -> Vec<WalletEntry> {
    let mut lines = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.get_wallet(AffiliateId(affiliate), cursor.as_deref(), 3).await.unwrap();
        lines.extend(page.entries);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return lines,
        }
    }
}

async fn applied(store: &Shared, mv: &Move) {
    assert_eq!(store.apply_move(mv).await.unwrap(), MoveOutcome::Applied, "{:?}", mv.step);
}

async fn due_items_come_oldest_first_bounded_by_time_and_limit(store: &Shared) {
    let item = |at, n| Due::new(Queue::Release, at, DueItem::Payout(PayoutId(n)));
    let (p1, p2, p3, p4) = (item(1_000, 1), item(8_000, 2), item(20_000, 3), item(4_000, 4));
    store.put_due(&[p2.clone(), p1.clone(), p3.clone(), p4.clone()]).await.unwrap();
    store.put_due(&[Due::new(Queue::Credit, 1_500, DueItem::Payout(PayoutId(1)))]).await.unwrap();
    let due = |up_to, limit| async move { store.due(Queue::Release, up_to, limit).await.unwrap() };
    assert_eq!(due(10_000, 10).await, vec![p1.clone(), p4.clone(), p2.clone()], "oldest first, up to the time");
    assert_eq!(due(10_000, 2).await, vec![p1.clone(), p4.clone()], "bounded by the limit");
    assert_eq!(due(3_999, 10).await, vec![p1.clone()]);
    assert_eq!(due(0, 10).await, vec![]);
    assert_eq!(due(10_000, 0).await, vec![], "a limit of zero is zero items");
    store.put_due(std::slice::from_ref(&p1)).await.unwrap();
    assert_eq!(due(50_000, 10).await, vec![p1.clone(), p4.clone(), p2.clone(), p3.clone()], "a repeat is one item");
    store.remove_due(&p1).await.unwrap();
    store.remove_due(&p4).await.unwrap();
    assert_eq!(due(50_000, 10).await, vec![p2.clone(), p3.clone()]);
    // Polls may have moved past the emptied hours: an item put there now is still found.
    let late = item(500, 5);
    store.put_due(std::slice::from_ref(&late)).await.unwrap();
    assert_eq!(due(u64::MAX, 10).await, vec![late.clone(), p2.clone(), p3.clone()]);
    for d in [late, p2, p3] {
        store.remove_due(&d).await.unwrap();
    }
    store.remove_due(&Due::new(Queue::Credit, 1_500, DueItem::Payout(PayoutId(1)))).await.unwrap();
    assert_eq!(due(50_000, 10).await, vec![]);
}

async fn a_payout_is_created_once_and_owes_its_affiliate_a_pending_line(store: &Shared) {
    let p = payout(100, 100, 700);
    assert_eq!(store.create_payout(&p).await.unwrap(), p);
    let again = Payout { amount_cents: 1, ..p.clone() };
    assert_eq!(store.create_payout(&again).await.unwrap(), p, "the stored payout wins");
    assert_eq!(store.get_payout(p.id).await.unwrap(), Some(p.clone()));
    assert_eq!(store.get_payout(PayoutId(12345)).await.unwrap(), None);
    assert_eq!(store.awaiting_payouts(CampaignId(100), 10).await.unwrap(), vec![p.clone()]);
    let wallet = store.get_wallet(AffiliateId(100), None, 10).await.unwrap();
    assert_eq!(wallet.totals, WalletTotals { pending_cents: 700, ..Default::default() });
    assert_eq!(wallet.entries, wallet_entries(&p));
    let escrow = Due::new(Queue::Escrow, p.created_at, DueItem::Payout(p.id));
    assert!(store.due(Queue::Escrow, now() + 1, 10_000).await.unwrap().contains(&escrow));
}

async fn escrow_is_refused_without_funds_and_applied_after_funding(store: &Shared) {
    let p = store.create_payout(&payout(101, 101, 700)).await.unwrap();
    let mv = money::escrow(&p, now(), 30).unwrap();
    assert_eq!(store.apply_move(&mv).await.unwrap(), MoveOutcome::InsufficientFunds);
    assert_eq!(store.fund(&fund(101, "first", 500)).await.unwrap(), FundOutcome::Deposited);
    assert_eq!(store.apply_move(&mv).await.unwrap(), MoveOutcome::InsufficientFunds, "500 does not cover 700");
    assert_eq!(store.get_payout(p.id).await.unwrap().unwrap().status, PayoutStatus::AwaitingFunds);
    assert_eq!(store.fund(&fund(101, "second", 1_000)).await.unwrap(), FundOutcome::Deposited);
    applied(store, &mv).await;
    let balance = store.get_balance(CampaignId(101)).await.unwrap();
    let expected = Balance { funded_cents: 1_500, available_cents: 800, escrowed_cents: 700, clearing_cents: 0 };
    assert_eq!(balance, expected);
    assert_eq!(store.get_payout(p.id).await.unwrap(), Some(mv.after.clone()));
    assert_eq!(store.awaiting_payouts(CampaignId(101), 10).await.unwrap(), vec![], "no longer awaiting funds");
    let release = Due::new(Queue::Release, mv.after.release_at.unwrap(), DueItem::Payout(p.id));
    assert!(store.due(Queue::Release, mv.after.release_at.unwrap(), 10_000).await.unwrap().contains(&release));
}

async fn funding_is_idempotent_on_its_transaction(store: &Shared) {
    assert_eq!(store.fund(&fund(102, "once", 2_000)).await.unwrap(), FundOutcome::Deposited);
    assert_eq!(store.fund(&fund(102, "once", 2_000)).await.unwrap(), FundOutcome::Replayed, "a replay is refused");
    let again = store.fund(&fund(102, "once", 9_999)).await.unwrap();
    assert_eq!(again, FundOutcome::Replayed, "the key decides, not the amount");
    let balance = store.get_balance(CampaignId(102)).await.unwrap();
    assert_eq!((balance.funded_cents, balance.available_cents), (2_000, 2_000));
    assert_eq!(store.campaign_entries(CampaignId(102)).await.unwrap().len(), 2);
    let wake = store.due(Queue::Escrow, now() + 1, 10_000).await.unwrap();
    assert!(wake.iter().any(|d| d.item == DueItem::Campaign(CampaignId(102))), "awaiting payouts are woken");
    assert_eq!(store.get_balance(CampaignId(199)).await.unwrap(), Balance::default());
}

async fn a_payout_is_escrowed_released_credited_and_clawed_back_with_its_wallet(store: &Shared) {
    let (c, a, x) = (103, 103, 700);
    let p = store.create_payout(&payout(c, a, x)).await.unwrap();
    store.fund(&fund(c, "f", 10_000)).await.unwrap();
    let t = now();
    let escrow = money::escrow(&p, t, 0).unwrap();
    applied(store, &escrow).await;
    let release = money::release(&escrow.after, t).unwrap();
    applied(store, &release).await;
    let credited = Balance { funded_cents: 10_000, available_cents: 10_000 - x as i64, ..Default::default() };
    let cleared = Balance { clearing_cents: x as i64, ..credited };
    assert_eq!(store.get_balance(CampaignId(c)).await.unwrap(), cleared);
    let credit = money::credit(&release.after, t + 1).unwrap();
    applied(store, &credit).await;
    assert_eq!(store.get_balance(CampaignId(c)).await.unwrap(), credited);
    let wallet = store.get_wallet(AffiliateId(a), None, 10).await.unwrap();
    assert_eq!(wallet.totals, WalletTotals { pending_cents: 0, available_cents: x.into(), reversed_cents: 0 });
    assert_eq!(wallet.entries.len(), 3, "pending, settled, credit: {:?}", wallet.entries);
    let clawback = money::reverse(&credit.after, "chargeback", t + 2).unwrap();
    assert_eq!(clawback.step, Step::Clawback);
    applied(store, &clawback).await;
    let wallet = store.get_wallet(AffiliateId(a), None, 10).await.unwrap();
    assert_eq!(wallet.totals, WalletTotals { pending_cents: 0, available_cents: 0, reversed_cents: x.into() });
    let back = store.get_balance(CampaignId(c)).await.unwrap();
    assert_eq!((back.available_cents, back.paid_cents()), (10_000, 0), "the clawback returns the money");
    assert_eq!(store.get_payout(p.id).await.unwrap().unwrap().status, PayoutStatus::Reversed);
}

async fn a_reversal_before_credit_cancels_and_gives_the_money_back(store: &Shared) {
    let (c, a, x) = (104, 104, 400);
    let p = store.create_payout(&payout(c, a, x)).await.unwrap();
    store.fund(&fund(c, "f", 1_000)).await.unwrap();
    let escrow = money::escrow(&p, now(), 30).unwrap();
    applied(store, &escrow).await;
    let cancel = money::reverse(&escrow.after, "refund", now()).unwrap();
    assert_eq!(cancel.step, Step::Cancel);
    applied(store, &cancel).await;
    assert_eq!(
        store.get_balance(CampaignId(c)).await.unwrap(),
        Balance { funded_cents: 1_000, available_cents: 1_000, ..Default::default() }
    );
    let waiting = store.create_payout(&payout(c, a, 50)).await.unwrap();
    applied(store, &money::reverse(&waiting, "refund", now()).unwrap()).await;
    assert_eq!(store.awaiting_payouts(CampaignId(c), 10).await.unwrap(), vec![]);
    let wallet = store.get_wallet(AffiliateId(a), None, 10).await.unwrap();
    assert_eq!(wallet.totals, WalletTotals { pending_cents: 0, available_cents: 0, reversed_cents: 450 });
    assert_eq!(store.apply_move(&cancel).await.unwrap(), MoveOutcome::Moved(cancel.after.clone()));
}

async fn a_replayed_move_returns_moved_and_posts_nothing_twice(store: &Shared) {
    let (c, a) = (110, 110);
    let p = store.create_payout(&payout(c, a, 300)).await.unwrap();
    store.fund(&fund(c, "f", 300)).await.unwrap();
    let escrow = money::escrow(&p, now(), 0).unwrap();
    applied(store, &escrow).await;
    let release = money::release(&escrow.after, now()).unwrap();
    applied(store, &release).await;
    let credit = money::credit(&release.after, now()).unwrap();
    applied(store, &credit).await;
    let (entries, lines, balance) = (
        store.campaign_entries(CampaignId(c)).await.unwrap(),
        store.get_wallet(AffiliateId(a), None, 10).await.unwrap(),
        store.get_balance(CampaignId(c)).await.unwrap(),
    );
    for mv in [&escrow, &release, &credit] {
        assert_eq!(store.apply_move(mv).await.unwrap(), MoveOutcome::Moved(credit.after.clone()));
    }
    store.post_wallet(&credit.wallet).await.unwrap();
    store.post_wallet(&wallet_entries(&credit.after)).await.unwrap();
    assert_eq!(store.campaign_entries(CampaignId(c)).await.unwrap().len(), entries.len());
    assert_eq!(store.get_wallet(AffiliateId(a), None, 10).await.unwrap(), lines);
    assert_eq!(store.get_balance(CampaignId(c)).await.unwrap(), balance);
}

async fn racing_moves_of_one_payout_apply_exactly_once(store: &Shared) {
    let p = store.create_payout(&payout(105, 105, 700)).await.unwrap();
    store.fund(&fund(105, "f", 1_000)).await.unwrap();
    let mv = money::escrow(&p, now(), 30).unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, mv) = (store.clone(), mv.clone());
            tokio::spawn(async move { store.apply_move(&mv).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let won = outcomes.iter().filter(|o| **o == MoveOutcome::Applied).count();
    assert_eq!(won, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| *o == MoveOutcome::Applied || *o == MoveOutcome::Moved(mv.after.clone())));
    let balance = store.get_balance(CampaignId(105)).await.unwrap();
    assert_eq!((balance.available_cents, balance.escrowed_cents), (300, 700), "moved once");
    assert_eq!(store.campaign_entries(CampaignId(105)).await.unwrap().len(), 4, "funding and one escrow");
}

async fn racing_escrows_of_one_campaign_never_spend_more_than_was_funded(store: &Shared) {
    let c = 111;
    let mut moves = Vec::new();
    for _ in 0..8 {
        let p = store.create_payout(&payout(c, 111, 100)).await.unwrap();
        moves.push(money::escrow(&p, now(), 30).unwrap());
    }
    store.fund(&fund(c, "f", 500)).await.unwrap();
    let tasks: Vec<_> = moves
        .into_iter()
        .map(|mv| {
            let store = store.clone();
            tokio::spawn(async move { store.apply_move(&mv).await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            MoveOutcome::Applied => won += 1,
            other => assert_eq!(other, MoveOutcome::InsufficientFunds),
        }
    }
    assert_eq!(won, 5, "exactly what the funds cover");
    let balance = store.get_balance(CampaignId(c)).await.unwrap();
    assert_eq!((balance.available_cents, balance.escrowed_cents), (0, 500));
    assert_eq!(store.awaiting_payouts(CampaignId(c), 10).await.unwrap().len(), 3);
}

async fn a_wallet_pages_newest_first_with_a_cursor(store: &Shared) {
    let a = 106;
    let line = |n: u64, at: u64| WalletEntry {
        id: format!("{}:pending", PayoutId(u128::from(n))),
        affiliate_id: AffiliateId(a),
        payout_id: PayoutId(u128::from(n)),
        campaign_id: CampaignId(106),
        kind: WalletKind::Pending,
        amount_cents: 10 * n as i64,
        at,
    };
    // Two lines share a time: ties go by id, newest (largest) first.
    let lines = vec![line(1, 100), line(2, 200), line(3, 300), line(4, 300), line(5, 500)];
    store.post_wallet(&lines).await.unwrap();
    store.post_wallet(&lines[1..3]).await.unwrap();
    let first = store.get_wallet(AffiliateId(a), None, 2).await.unwrap();
    assert_eq!(first.totals.pending_cents, 150, "a repeated line counts once");
    assert_eq!(first.entries, vec![lines[4].clone(), lines[3].clone()]);
    let second = store.get_wallet(AffiliateId(a), first.next.as_deref(), 2).await.unwrap();
    assert_eq!(second.entries, vec![lines[2].clone(), lines[1].clone()]);
    let last = store.get_wallet(AffiliateId(a), second.next.as_deref(), 2).await.unwrap();
    assert_eq!((last.entries, last.next), (vec![lines[0].clone()], None));
    let empty = store.get_wallet(AffiliateId(999), None, 10).await.unwrap();
    assert_eq!(empty, WalletPage::default());
}

fn lead(campaign: u64, id: u128, status: LeadStatus, payout: u64) -> Lead {
    Lead {
        id: LeadId(id),
        event_type: EventType::Lead,
        payout_cents: payout,
        status,
        source: LeadSource::Direct,
        ..Lead::verified(CampaignId(campaign), AffiliateId(1), "CODE".into(), format!("ext-{id}"), now())
    }
}

async fn commit(store: &Shared, keyed: Vec<Keyed>) -> Vec<Outcome> {
    store.commit(Arc::new(Batch { keyed, ..Default::default() })).await.unwrap()
}

async fn leads_are_replaced_by_status_and_listed_newest_first(store: &Shared) {
    let c = 107;
    let pending = |id| lead(c, id, LeadStatus::PendingReview, 100);
    let leads = [pending(1), lead(c, 2, LeadStatus::Verified, 100), pending(3), pending(4), pending(5)];
    commit(store, leads.iter().cloned().map(Keyed::Lead).collect()).await;
    let list = |status, before, limit| async move {
        let q = LeadQuery { campaign: CampaignId(c), status, before, limit };
        store.list_leads(&q).await.unwrap().into_iter().map(|l| l.id.0).collect::<Vec<_>>()
    };
    assert_eq!(list(None, None, 10).await, vec![5, 4, 3, 2, 1]);
    assert_eq!(list(Some(LeadStatus::PendingReview), None, 10).await, vec![5, 4, 3, 1]);
    assert_eq!(list(Some(LeadStatus::PendingReview), None, 2).await, vec![5, 4]);
    assert_eq!(list(Some(LeadStatus::PendingReview), Some(LeadId(4)), 2).await, vec![3, 1]);
    assert_eq!(list(None, Some(LeadId(2)), 10).await, vec![1]);
    assert_eq!(list(None, None, 0).await, Vec::<u128>::new(), "a limit of zero is zero leads");
    let verified = Lead { status: LeadStatus::Verified, reviewed_at: Some(now()), ..leads[2].clone() };
    assert!(store.replace_lead(&verified, LeadStatus::PendingReview).await.unwrap());
    let rejected = Lead { status: LeadStatus::Rejected, ..leads[2].clone() };
    assert!(!store.replace_lead(&rejected, LeadStatus::PendingReview).await.unwrap(), "it is verified now");
    assert_eq!(store.get_lead_by_id(LeadId(3)).await.unwrap(), Some(verified));
    assert_eq!(list(Some(LeadStatus::PendingReview), None, 10).await, vec![5, 4, 1]);
    assert_eq!(list(Some(LeadStatus::Verified), None, 10).await, vec![3, 2]);
    assert_eq!(list(None, None, 10).await, vec![5, 4, 3, 2, 1]);
    assert!(!store.replace_lead(&lead(c, 77, LeadStatus::Verified, 1), LeadStatus::PendingReview).await.unwrap());
}

async fn leads_and_conversions_are_found_by_id_after_commit(store: &Shared) {
    let c = 108;
    let first = lead(c, LeadId::new().0, LeadStatus::Verified, 0);
    let loser = Lead { id: LeadId::new(), ..first.clone() };
    let conversion = Conversion {
        id: ConversionId::new(),
        campaign_id: CampaignId(c),
        click_id: ClickId::new(),
        affiliate_id: AffiliateId(1),
        email: None,
        fields: Fields::new(),
        extra: Fields::new(),
        created_at: now(),
        payout_cents: 0,
        bot_click: false,
        subs: Default::default(),
        status: Default::default(),
        reason: None,
        flags: vec![],
        reviewed_at: None,
        counted: false,
    };
    commit(store, vec![Keyed::Lead(first.clone()), Keyed::Conversion(conversion.clone())]).await;
    commit(store, vec![Keyed::Lead(loser.clone())]).await;
    assert_eq!(store.get_lead_by_id(first.id).await.unwrap(), Some(first));
    assert_eq!(store.get_lead_by_id(loser.id).await.unwrap(), None, "a duplicate was never stored");
    let found = store.get_conversion_by_id(conversion.id).await.unwrap().unwrap();
    assert_eq!((found.id, found.click_id), (conversion.id, conversion.click_id));
    assert!(store.get_conversion_by_id(ConversionId::new()).await.unwrap().is_none());
}

async fn committing_a_paying_record_schedules_its_escrow(store: &Shared) {
    let c = 109;
    let pays = lead(c, LeadId::new().0, LeadStatus::Verified, 500);
    let waits = lead(c, LeadId::new().0, LeadStatus::PendingReview, 500);
    let conversion = Conversion {
        id: ConversionId::new(),
        campaign_id: CampaignId(c),
        click_id: ClickId::new(),
        affiliate_id: AffiliateId(1),
        email: None,
        fields: Fields::new(),
        extra: Fields::new(),
        created_at: now(),
        payout_cents: 300,
        bot_click: false,
        subs: Default::default(),
        status: Default::default(),
        reason: None,
        flags: vec![],
        reviewed_at: None,
        counted: false,
    };
    let keyed = vec![Keyed::Lead(pays.clone()), Keyed::Lead(waits.clone()), Keyed::Conversion(conversion.clone())];
    commit(store, keyed).await;
    let due = store.due(Queue::Escrow, now() + 1, 100_000).await.unwrap();
    // CQL writes the record's payout intent (the supervisor creates the
    // payout); the embedded store creates the payout in the record's
    // transaction and schedules the payout's escrow.
    let scheduled = |at, key, id: u128| {
        due.contains(&Due::new(Queue::Escrow, at, DueItem::Record(CampaignId(c), key)))
            || due.contains(&Due::new(Queue::Escrow, at, DueItem::Payout(PayoutId(id))))
    };
    assert!(scheduled(pays.created_at, DedupKey::External(pays.external_id.clone()), pays.id.0));
    assert!(scheduled(conversion.created_at, DedupKey::Click(conversion.click_id), conversion.id.0));
    assert!(
        !scheduled(waits.created_at, DedupKey::External(waits.external_id), waits.id.0),
        "not verified: pays nothing yet"
    );
}

async fn referrals_are_compare_and_set_on_status(store: &Shared) {
    let r = Referral {
        id: ReferralId::new(),
        campaign_id: CampaignId(112),
        affiliate_id: AffiliateId(112),
        metadata: Fields::new(),
        created_at: now(),
        expires_at: now() + 3_600,
        status: ReferralStatus::Active,
        lead_id: None,
        confirmed_at: None,
    };
    store.put_referral(&r).await.unwrap();
    assert_eq!(store.get_referral(r.id).await.unwrap(), Some(r.clone()));
    let expiry = Due::new(Queue::Expire, r.expires_at, DueItem::Referral(r.id));
    assert!(store.due(Queue::Expire, r.expires_at, 10_000).await.unwrap().contains(&expiry));
    let confirmed = Referral { status: ReferralStatus::Confirmed, confirmed_at: Some(now()), ..r.clone() };
    assert!(store.replace_referral(&confirmed, ReferralStatus::Active).await.unwrap());
    let expired = Referral { status: ReferralStatus::Expired, ..r.clone() };
    assert!(!store.replace_referral(&expired, ReferralStatus::Active).await.unwrap(), "confirmation won");
    assert_eq!(store.get_referral(r.id).await.unwrap(), Some(confirmed));
    assert_eq!(store.get_referral(ReferralId::new()).await.unwrap(), None);
}

/// Double entry: every campaign's entries plus its affiliates' wallet money
/// sum to zero, and its balance row is exactly the fold of its entries.
async fn every_campaign_ledger_sums_to_zero_and_folds_to_its_balance(store: &Shared) {
    for c in [100, 101, 102, 103, 104, 105, 110, 111] {
        let entries = store.campaign_entries(CampaignId(c)).await.unwrap();
        let folded = Balance::default().after(&entries).unwrap();
        assert_eq!(store.get_balance(CampaignId(c)).await.unwrap(), folded, "campaign {c}");
        let wallet: i64 = wallet_lines(store, c)
            .await
            .iter()
            .filter(|l| l.kind.is_money() && l.campaign_id == CampaignId(c))
            .map(|l| l.amount_cents)
            .sum();
        let campaign: i64 = entries.iter().map(|e| e.amount_cents).sum();
        assert_eq!(campaign + wallet, 0, "campaign {c}");
    }
}

/// 1000 deposits of `MAX_CENTS` fill a campaign to its bound; the next
/// deposit, however small, is refused and writes nothing (no entry, no
/// balance change, no wake-up), and a replay of an accepted one still is one.
async fn deposits_stop_at_the_campaign_bound_and_the_refused_one_writes_nothing(store: &Shared) {
    use clickledger::domain::payout::{MAX_CAMPAIGN_FUNDS_CENTS, MAX_CENTS};
    let c = 120;
    let full = (MAX_CAMPAIGN_FUNDS_CENTS / MAX_CENTS as i64) as usize;
    let deposits =
        (0..full).map(|i| async move { store.fund(&fund(c, &format!("big-{i}"), MAX_CENTS)).await.unwrap() });
    let outcomes = futures::future::join_all(deposits).await;
    assert!(outcomes.iter().all(|o| *o == FundOutcome::Deposited));
    let before = store.get_balance(CampaignId(c)).await.unwrap();
    assert_eq!(before.funded_cents, MAX_CAMPAIGN_FUNDS_CENTS);
    assert_eq!(store.fund(&fund(c, "one-more", 1)).await.unwrap(), FundOutcome::OverLimit);
    assert_eq!(store.fund(&fund(c, "big-0", MAX_CENTS)).await.unwrap(), FundOutcome::Replayed);
    assert_eq!(store.get_balance(CampaignId(c)).await.unwrap(), before, "nothing moved");
    assert_eq!(store.campaign_entries(CampaignId(c)).await.unwrap().len(), 2 * full, "no entry was posted");
}

/// A wallet's totals sum any number of lines: four lines of i64::MAX each
/// are counted exactly, on every backend.
async fn wallet_totals_stay_exact_past_the_range_of_i64(store: &Shared) {
    let aff = 121;
    let lines: Vec<WalletEntry> = (0..4)
        .map(|i| WalletEntry {
            id: format!("huge-{i}:pending"),
            affiliate_id: AffiliateId(aff),
            payout_id: PayoutId(i),
            campaign_id: CampaignId(121),
            kind: WalletKind::Pending,
            amount_cents: i64::MAX,
            at: now() + i as u64,
        })
        .collect();
    store.post_wallet(&lines[..2]).await.unwrap();
    store.post_wallet(&lines).await.unwrap();
    let page = store.get_wallet(AffiliateId(aff), None, 10).await.unwrap();
    assert_eq!(page.totals.pending_cents, 4 * i128::from(i64::MAX));
    assert_eq!(page.entries.len(), 4);
}

/// `pay_due` (one commit on the embedded store, one call per step on CQL):
/// each payout is created once, escrowed while the campaign's funds cover
/// it, and every item's due entry goes, including one that pays nothing.
async fn a_pass_of_record_intents_is_paid_escrowed_where_funds_cover_it_and_removed(store: &Shared) {
    let (funded, unfunded) = (121, 122);
    assert_eq!(store.fund(&fund(funded, "pass", 1_000)).await.unwrap(), FundOutcome::Deposited);
    let (first, second, poor) = (payout(funded, 121, 600), payout(funded, 121, 600), payout(unfunded, 122, 300));
    let intent = |campaign: u64, key: &str| {
        Due::new(Queue::Escrow, now() - 10, DueItem::Record(CampaignId(campaign), DedupKey::External(key.into())))
    };
    let items = vec![
        PayDue { due: intent(funded, "first"), payout: Some(first.clone()), hold_days: 7 },
        PayDue { due: intent(funded, "second"), payout: Some(second.clone()), hold_days: 7 },
        PayDue { due: intent(unfunded, "poor"), payout: Some(poor.clone()), hold_days: 7 },
        PayDue { due: intent(funded, "pays-nothing"), payout: None, hold_days: 0 },
        PayDue { due: intent(funded, "first-again"), payout: Some(first.clone()), hold_days: 7 },
    ];
    let dues: Vec<Due> = items.iter().map(|i| i.due.clone()).collect();
    store.put_due(&dues).await.unwrap();
    let paid = store.pay_due(items, now(), 4).await.unwrap();
    let created: Vec<bool> = paid.iter().map(|p| p.created).collect();
    assert_eq!(created, [true, true, true, false, false], "the repeat finds the payout made earlier in the pass");
    // On CQL the items run concurrently, so either 600 may be the one escrowed.
    let escrowed: Vec<bool> = paid.iter().map(|p| p.escrowed.is_some()).collect();
    let (won, lost) = if escrowed[0] { (&first, &second) } else { (&second, &first) };
    assert_eq!(escrowed.iter().filter(|e| **e).count(), 1, "600 of 1000 leaves too little for a second: {escrowed:?}");
    assert!(escrowed[0] || escrowed[1], "{escrowed:?}");
    let stored = store.get_payout(won.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.release_at), (PayoutStatus::Escrowed, Some(now_plus_days(&stored, 7))));
    assert_eq!(store.get_payout(lost.id).await.unwrap().unwrap().status, PayoutStatus::AwaitingFunds);
    assert_eq!(store.get_payout(poor.id).await.unwrap().unwrap().status, PayoutStatus::AwaitingFunds);
    let balance = store.get_balance(CampaignId(funded)).await.unwrap();
    assert_eq!((balance.available_cents, balance.escrowed_cents), (400, 600));
    let left = store.due(Queue::Escrow, now() + 1, 10_000).await.unwrap();
    assert!(dues.iter().all(|d| !left.contains(d)), "every intent of the pass is removed");
    // A pass that is repeated (its answer was lost) changes nothing. (With
    // the escrowed one: on CQL the other may have lost the race and still
    // equal its intent, which `created` cannot tell from a new payout.)
    let again = vec![PayDue { due: intent(funded, "first"), payout: Some(won.clone()), hold_days: 7 }];
    assert_eq!(store.pay_due(again, now(), 4).await.unwrap(), vec![Paid::default()]);
    assert_eq!(store.get_balance(CampaignId(funded)).await.unwrap(), balance);
}

/// When a payout escrowed with `days` of hold is released.
fn now_plus_days(escrowed: &Payout, days: u64) -> u64 {
    escrowed.escrowed_at.unwrap() + days * money::SECONDS_PER_DAY
}
