use super::*;

const DAY: u64 = SECONDS_PER_DAY;

fn payout(cents: u64) -> Payout {
    Payout::new(PayoutId(7), CampaignId(1), AffiliateId(2), "lead_x".into(), cents, 1_000)
}

fn money(m: &Move) -> i64 {
    let wallet: i64 = m.wallet.iter().filter(|w| w.kind.is_money()).map(|w| w.amount_cents).sum();
    m.campaign_entries.iter().map(|e| e.amount_cents).sum::<i64>() + wallet
}

#[test]
fn escrow_reserves_the_amount_and_starts_the_hold() {
    let m = escrow(&payout(500), 2_000, 3).unwrap();
    assert_eq!(m.after.status, PayoutStatus::Escrowed);
    assert_eq!(m.after.release_at, Some(2_000 + 3 * DAY));
    assert_eq!(m.needs_available, 500);
    let b = Balance::default().after(&m.campaign_entries).unwrap();
    assert_eq!((b.available_cents, b.escrowed_cents), (-500, 500));
    assert_eq!(money(&m), 0);
}

#[test]
fn release_waits_for_the_hold_and_moves_escrow_to_clearing() {
    let escrowed = escrow(&payout(500), 2_000, 1).unwrap().after;
    assert_eq!(release(&escrowed, 2_000 + DAY - 1), Err(TransitionError::NotDue));
    let m = release(&escrowed, 2_000 + DAY).unwrap();
    let b = Balance::default().after(&m.campaign_entries).unwrap();
    assert_eq!((b.escrowed_cents, b.clearing_cents), (-500, 500));
    assert_eq!(money(&m), 0);
}

#[test]
fn a_zero_day_hold_is_due_at_once() {
    let escrowed = escrow(&payout(500), 2_000, 0).unwrap().after;
    assert!(release(&escrowed, 2_000).is_ok());
}

#[test]
fn credit_moves_clearing_into_the_wallet_and_settles_the_pending_line() {
    let p = release(&escrow(&payout(500), 0, 0).unwrap().after, 0).unwrap().after;
    let m = credit(&p, 10).unwrap();
    assert_eq!(money(&m) - 500, -500, "clearing leg is -500, wallet credit +500");
    let mut totals = WalletTotals::default();
    m.wallet.iter().for_each(|w| totals.add(w));
    assert_eq!(totals, WalletTotals { pending_cents: 0, available_cents: 500, reversed_cents: 0 });
}

#[test]
fn steps_out_of_order_are_refused() {
    let p = payout(500);
    assert!(matches!(release(&p, 0), Err(TransitionError::WrongStatus("awaiting_funds", "escrowed"))));
    assert!(credit(&p, 0).is_err());
    let escrowed = escrow(&p, 0, 0).unwrap().after;
    assert!(escrow(&escrowed, 0, 0).is_err());
}

#[test]
fn reversing_before_credit_returns_the_money_to_available() {
    let escrowed = escrow(&payout(500), 0, 5).unwrap().after;
    let m = reverse(&escrowed, "refund", 10).unwrap();
    assert_eq!(m.step, Step::Cancel);
    let b = Balance::default().after(&m.campaign_entries).unwrap();
    assert_eq!((b.escrowed_cents, b.available_cents), (-500, 500));
    let released = release(&escrow(&payout(500), 0, 0).unwrap().after, 0).unwrap().after;
    let b = Balance::default().after(&reverse(&released, "refund", 1).unwrap().campaign_entries).unwrap();
    assert_eq!((b.clearing_cents, b.available_cents), (-500, 500));
}

#[test]
fn reversing_an_awaiting_payout_posts_nothing() {
    let m = reverse(&payout(500), "refund", 10).unwrap();
    assert!(m.campaign_entries.is_empty());
    let mut totals = WalletTotals::default();
    m.wallet.iter().for_each(|w| totals.add(w));
    assert_eq!(totals, WalletTotals { pending_cents: 0, available_cents: 0, reversed_cents: 500 });
}

#[test]
fn reversing_after_credit_claws_back_from_the_wallet() {
    let credited = credit(&release(&escrow(&payout(500), 0, 0).unwrap().after, 0).unwrap().after, 1).unwrap().after;
    let m = reverse(&credited, "chargeback", 9).unwrap();
    assert_eq!(m.step, Step::Clawback);
    assert_eq!(Balance::default().after(&m.campaign_entries).unwrap().available_cents, 500);
    let mut totals = WalletTotals::default();
    m.wallet.iter().for_each(|w| totals.add(w));
    assert_eq!(totals, WalletTotals { pending_cents: 0, available_cents: 0, reversed_cents: 500 });
    assert_eq!(money(&m), 500 + 500 - 500, "available +500, wallet credit +500, clawback -500");
    assert_eq!(reverse(&m.after, "again", 10), Err(TransitionError::AlreadyReversed));
}

#[test]
fn entry_ids_are_deterministic_so_a_replay_posts_nothing_new() {
    let a = escrow(&payout(500), 0, 0).unwrap();
    let b = escrow(&payout(500), 0, 0).unwrap();
    assert_eq!(a.campaign_entries, b.campaign_entries);
    assert_eq!(a.campaign_entries[0].id, format!("{}:escrow/cmp_0000000000000001/available", PayoutId(7)));
}

#[test]
fn funding_balances_against_the_funding_account() {
    let f = Funding::new(CampaignId(1), "k1", 10_000, 5);
    let b = Balance::default().after(&f.entries()).unwrap();
    assert_eq!((b.funded_cents, b.available_cents, b.paid_cents()), (10_000, 10_000, 0));
    assert_eq!(f.entries().iter().map(|e| e.amount_cents).sum::<i64>(), 0);
}

#[test]
fn statuses_survive_their_text_form() {
    for s in ["awaiting_funds", "escrowed", "released", "credited", "reversed"] {
        assert_eq!(PayoutStatus::parse(s).unwrap().as_str(), s);
    }
    assert_eq!(PayoutStatus::parse("paid"), None);
}

#[test]
fn deposits_stop_at_the_campaign_bound_and_nothing_moves() {
    use crate::domain::payout::{MAX_CAMPAIGN_FUNDS_CENTS, MAX_CENTS};
    let mut b = Balance::default();
    for i in 0..(MAX_CAMPAIGN_FUNDS_CENTS / MAX_CENTS as i64) {
        b = b.after(&Funding::new(CampaignId(1), &format!("k{i}"), MAX_CENTS, 5).entries()).unwrap();
    }
    assert_eq!(b.funded_cents, MAX_CAMPAIGN_FUNDS_CENTS);
    let one_more = Funding::new(CampaignId(1), "over", 1, 5);
    assert_eq!(b.after(&one_more.entries()), Err(OverLimit));
    assert_eq!(b.funded_cents, MAX_CAMPAIGN_FUNDS_CENTS, "a refused deposit changes nothing");
}

#[test]
fn a_balance_never_wraps_even_on_entries_from_before_the_bounds() {
    let near = Balance { available_cents: i64::MAX - 1, ..Default::default() };
    let p = payout(500);
    let back = reverse(&Payout { status: PayoutStatus::Escrowed, ..p }, "x", 1).unwrap();
    assert_eq!(near.after(&back.campaign_entries), Err(OverLimit));
}

#[test]
fn wallet_totals_are_exact_past_the_range_of_i64() {
    let p = Payout { amount_cents: i64::MAX as u64, ..payout(1) };
    let lines = wallet_entries(&p);
    let mut totals = WalletTotals::default();
    for _ in 0..4 {
        lines.iter().for_each(|l| totals.add(l));
    }
    assert_eq!(totals.pending_cents, 4 * i128::from(i64::MAX));
}
