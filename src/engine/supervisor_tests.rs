//! The supervisor tree against a real embedded store whose ledger fails its
//! first N due-queue reads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::config::{Config, Overrides};
use crate::domain::caps::{Usage, Window};
use crate::domain::ids::*;
use crate::domain::model::*;
use crate::domain::money::*;
use crate::domain::referral::{Referral, ReferralStatus};
use crate::engine::clock::SystemClock;
use crate::store::embedded::EmbeddedStore;
use crate::store::*;

struct FailingLedger {
    inner: Arc<EmbeddedStore>,
    fail_first: usize,
    calls: AtomicUsize,
}

#[rustfmt::skip]
#[async_trait]
impl Ledger for FailingLedger {
    async fn due(&self, q: Queue, up_to: u64, limit: usize) -> StoreResult<Vec<Due>> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail_first {
            return Err(StoreError::Failed("injected failure".into()));
        }
        self.inner.due(q, up_to, limit).await
    }
    async fn get_lead_by_id(&self, id: LeadId) -> StoreResult<Option<Lead>> { self.inner.get_lead_by_id(id).await }
    async fn get_conversion_by_id(&self, id: ConversionId) -> StoreResult<Option<Conversion>> { self.inner.get_conversion_by_id(id).await }
    async fn replace_lead(&self, l: &Lead, s: LeadStatus) -> StoreResult<bool> { self.inner.replace_lead(l, s).await }
    async fn list_leads(&self, q: &LeadQuery) -> StoreResult<Vec<Lead>> { self.inner.list_leads(q).await }
    async fn replace_conversion(&self, c: &Conversion, s: ConversionStatus) -> StoreResult<bool> { self.inner.replace_conversion(c, s).await }
    async fn list_conversions(&self, q: &ConversionQuery) -> StoreResult<Vec<Conversion>> { self.inner.list_conversions(q).await }
    async fn release_claim(&self, c: CampaignId, k: &DedupKey) -> StoreResult<bool> { self.inner.release_claim(c, k).await }
    async fn cap_usage(&self, c: CampaignId, w: &[Window]) -> StoreResult<Vec<Usage>> { self.inner.cap_usage(c, w).await }
    async fn put_referral(&self, r: &Referral) -> StoreResult<()> { self.inner.put_referral(r).await }
    async fn get_referral(&self, id: ReferralId) -> StoreResult<Option<Referral>> { self.inner.get_referral(id).await }
    async fn replace_referral(&self, r: &Referral, s: ReferralStatus) -> StoreResult<bool> { self.inner.replace_referral(r, s).await }
    async fn put_due(&self, d: &[Due]) -> StoreResult<()> { self.inner.put_due(d).await }
    async fn remove_due(&self, d: &Due) -> StoreResult<()> { self.inner.remove_due(d).await }
    async fn create_payout(&self, p: &Payout) -> StoreResult<Payout> { self.inner.create_payout(p).await }
    async fn get_payout(&self, id: PayoutId) -> StoreResult<Option<Payout>> { self.inner.get_payout(id).await }
    async fn awaiting_payouts(&self, c: CampaignId, n: usize) -> StoreResult<Vec<Payout>> { self.inner.awaiting_payouts(c, n).await }
    async fn apply_move(&self, m: &Move) -> StoreResult<MoveOutcome> { self.inner.apply_move(m).await }
    async fn fund(&self, f: &Funding) -> StoreResult<FundOutcome> { self.inner.fund(f).await }
    async fn get_balance(&self, c: CampaignId) -> StoreResult<Balance> { self.inner.get_balance(c).await }
    async fn campaign_entries(&self, c: CampaignId) -> StoreResult<Vec<Entry>> { self.inner.campaign_entries(c).await }
    async fn post_wallet(&self, l: &[WalletEntry]) -> StoreResult<()> { self.inner.post_wallet(l).await }
    async fn get_wallet(&self, a: AffiliateId, b: Option<&str>, n: usize) -> StoreResult<WalletPage> { self.inner.get_wallet(a, b, n).await }
}

fn referral_due_now() -> Referral {
    Referral {
        id: ReferralId::new(),
        campaign_id: CampaignId(1),
        affiliate_id: AffiliateId(1),
        metadata: Fields::new(),
        created_at: 0,
        expires_at: crate::domain::unix_now() - 1,
        status: ReferralStatus::Active,
        lead_id: None,
        confirmed_at: None,
    }
}

#[tokio::test]
async fn a_failing_child_is_restarted_with_backoff_and_then_does_its_work() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path(), 16).unwrap());
    let ledger = Arc::new(FailingLedger { inner: store.clone(), fail_first: 6, calls: AtomicUsize::new(0) });
    let mut config = Config::load(None, &Overrides::default()).unwrap().money;
    (config.tick_ms, config.restart_min_ms, config.restart_max_ms) = (10, 5, 40);
    let money = Arc::new(Money { ledger: ledger.clone(), store: store.clone(), clock: Arc::new(SystemClock), config });
    let referral = referral_due_now();
    store.put_referral(&referral).await.unwrap();

    let sup = start(money).await.unwrap();
    let mut status = ReferralStatus::Active;
    for _ in 0..300 {
        status = store.get_referral(referral.id).await.unwrap().unwrap().status;
        if status == ReferralStatus::Expired {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status, ReferralStatus::Expired);
    assert!(ledger.calls.load(Ordering::SeqCst) > 6, "the injected failures were all hit");
    let running = ractor::call!(sup, MoneySupervisorMsg::Running).unwrap();
    assert_eq!(running.len(), 3, "every duty has a running child again");
    sup.stop(None);
}

#[tokio::test]
async fn a_backlog_drains_in_back_to_back_passes_without_waiting_for_the_tick() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path(), 16).unwrap());
    let mut config = Config::load(None, &Overrides::default()).unwrap().money;
    // Two items per pass and an hour between ticks: only a pass that goes
    // again at once after a full one can expire all twenty in time.
    (config.batch, config.concurrency, config.tick_ms) = (2, 2, 3_600_000);
    let money = Arc::new(Money { ledger: store.clone(), store: store.clone(), clock: Arc::new(SystemClock), config });
    let referrals: Vec<Referral> = (0..20).map(|_| referral_due_now()).collect();
    for r in &referrals {
        store.put_referral(r).await.unwrap();
    }

    let sup = start(money).await.unwrap();
    let mut expired = 0;
    for _ in 0..500 {
        expired = 0;
        for r in &referrals {
            expired += usize::from(store.get_referral(r.id).await.unwrap().unwrap().status == ReferralStatus::Expired);
        }
        if expired == referrals.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(expired, referrals.len(), "every due referral expired, not just the first pass's two");
    sup.stop(None);
}

#[tokio::test]
async fn shutdown_stops_every_child_and_none_is_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path(), 16).unwrap());
    let mut config = Config::load(None, &Overrides::default()).unwrap().money;
    (config.tick_ms, config.restart_min_ms, config.restart_max_ms) = (10, 5, 40);
    let money = Arc::new(Money { ledger: store.clone(), store: store.clone(), clock: Arc::new(SystemClock), config });
    let sup = start(money).await.unwrap();
    assert_eq!(ractor::call!(sup, MoneySupervisorMsg::Running).unwrap().len(), 3);
    let lags = ractor::call!(sup, MoneySupervisorMsg::Lag).unwrap();
    assert_eq!(lags.len(), 3, "one lag per duty: {lags:?}");

    ractor::call!(sup, MoneySupervisorMsg::Shutdown).unwrap();
    assert!(ractor::call!(sup, MoneySupervisorMsg::Running).unwrap().is_empty());
    // Several restart backoffs later, still nothing runs.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(ractor::call!(sup, MoneySupervisorMsg::Running).unwrap().is_empty(), "a child came back");
    sup.stop(None);
}
