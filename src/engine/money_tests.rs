//! Due items that arrive before the step that wrote them: on CQL a step's
//! due items are written first, so a supervisor can see them early. The
//! embedded store is used to stage that order by hand.

use std::sync::Arc;

use super::*;
use crate::config::{Config, Overrides};
use crate::engine::clock::SystemClock;
use crate::store::due::scheduled_by;
use crate::store::embedded::EmbeddedStore;

fn money(store: &Arc<EmbeddedStore>) -> Money {
    let config = Config::load(None, &Overrides::default()).unwrap().money;
    Money { ledger: store.clone(), store: store.clone(), clock: Arc::new(SystemClock), config }
}

/// A funded campaign with one payout escrowed with no hold (so due for release now).
async fn escrowed(store: &Arc<EmbeddedStore>, m: &Money) -> Payout {
    let now = m.now();
    m.fund(CampaignId(1), "deposit-1", 10_000).await.unwrap();
    let p = Payout::new(PayoutId(7), CampaignId(1), AffiliateId(1), "lead_x".into(), 250, now);
    store.create_payout(&p).await.unwrap();
    let mv = money::escrow(&p, now, 0).unwrap();
    assert_eq!(store.apply_move(&mv).await.unwrap(), MoveOutcome::Applied);
    mv.after
}

#[tokio::test]
async fn a_credit_item_seen_before_its_release_lands_waits_for_it_and_then_credits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path(), 16).unwrap());
    let m = money(&store);
    let p = escrowed(&store, &m).await;
    let release = money::release(&p, m.now()).unwrap();
    // The release's credit item is written, the release itself not yet.
    store.put_due(&scheduled_by(&release)).await.unwrap();

    let early = m.work(Queue::Credit).await.unwrap();
    assert_eq!(early.done, 0, "the item must wait for the release, not be dropped");
    assert_eq!(store.apply_move(&release).await.unwrap(), MoveOutcome::Applied);
    let later = m.work(Queue::Credit).await.unwrap();

    assert_eq!(later.done, 1);
    assert_eq!(store.get_payout(p.id).await.unwrap().unwrap().status, PayoutStatus::Credited);
}

#[tokio::test]
async fn a_release_item_seen_before_its_escrow_lands_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path(), 16).unwrap());
    let m = money(&store);
    let now = m.now();
    m.fund(CampaignId(1), "deposit-1", 10_000).await.unwrap();
    let p = Payout::new(PayoutId(7), CampaignId(1), AffiliateId(1), "lead_x".into(), 250, now);
    store.create_payout(&p).await.unwrap();
    let escrow = money::escrow(&p, now, 0).unwrap();
    store.put_due(&scheduled_by(&escrow)).await.unwrap();

    assert_eq!(m.work(Queue::Release).await.unwrap().done, 0, "the release item waits for its escrow");
    assert_eq!(store.apply_move(&escrow).await.unwrap(), MoveOutcome::Applied);
    assert!(m.work(Queue::Release).await.unwrap().done >= 1);
    assert_eq!(store.get_payout(p.id).await.unwrap().unwrap().status, PayoutStatus::Released);
}
