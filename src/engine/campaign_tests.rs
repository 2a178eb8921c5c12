//! The campaign actor against a real embedded store that can be told to fail
//! its Nth commit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use ractor::Actor;
use tokio::sync::oneshot;

use super::campaign::*;
use crate::config::{Config, Overrides};
use crate::domain::ids::*;
use crate::domain::keys::{KeyHash, Principal};
use crate::domain::model::*;
use crate::store::embedded::EmbeddedStore;
use crate::store::*;

/// Delegates to the embedded store, but fails commit number `fail_at` (1-based).
struct FlakyStore {
    inner: EmbeddedStore,
    commits: AtomicUsize,
    fail_at: usize,
}

#[rustfmt::skip]
#[async_trait]
impl Store for FlakyStore {
    async fn put_advertiser(&self, a: &Advertiser, k: KeyHash) -> StoreResult<()> { self.inner.put_advertiser(a, k).await }
    async fn get_advertiser(&self, id: AdvertiserId) -> StoreResult<Option<Advertiser>> { self.inner.get_advertiser(id).await }
    async fn put_affiliate(&self, a: &Affiliate, k: KeyHash) -> StoreResult<()> { self.inner.put_affiliate(a, k).await }
    async fn get_affiliate(&self, id: AffiliateId) -> StoreResult<Option<Affiliate>> { self.inner.get_affiliate(id).await }
    async fn get_principal(&self, k: &KeyHash) -> StoreResult<Option<Principal>> { self.inner.get_principal(k).await }
    async fn put_principal(&self, k: KeyHash, p: &Principal) -> StoreResult<()> { self.inner.put_principal(k, p).await }
    async fn put_campaign(&self, c: &Campaign) -> StoreResult<()> { self.inner.put_campaign(c).await }
    async fn replace_campaign(&self, c: &Campaign, v: u64) -> StoreResult<bool> { self.inner.replace_campaign(c, v).await }
    async fn get_campaign(&self, id: CampaignId) -> StoreResult<Option<Campaign>> { self.inner.get_campaign(id).await }
    async fn list_campaigns(&self) -> StoreResult<Vec<Campaign>> { self.inner.list_campaigns().await }
    async fn insert_tracking_code(&self, c: &TrackingCode) -> StoreResult<TrackingCode> { self.inner.insert_tracking_code(c).await }
    async fn get_tracking_code(&self, c: &str) -> StoreResult<Option<TrackingCode>> { self.inner.get_tracking_code(c).await }
    async fn list_tracking_codes(&self) -> StoreResult<Vec<TrackingCode>> { self.inner.list_tracking_codes().await }
    async fn commit(&self, batch: Arc<Batch>) -> StoreResult<Vec<Outcome>> {
        if self.commits.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            return Err(StoreError("injected failure".into()));
        }
        self.inner.commit(batch).await
    }
    async fn get_conversion(&self, c: CampaignId, k: ClickId) -> StoreResult<Option<Conversion>> { self.inner.get_conversion(c, k).await }
    async fn get_lead(&self, c: CampaignId, e: &str) -> StoreResult<Option<Lead>> { self.inner.get_lead(c, e).await }
    async fn get_click(&self, c: CampaignId, k: ClickId) -> StoreResult<Option<Click>> { self.inner.get_click(c, k).await }
    async fn dedup_keys(&self, c: CampaignId) -> StoreResult<Vec<DedupKey>> { self.inner.dedup_keys(c).await }
    async fn get_stats(&self, c: CampaignId) -> StoreResult<CampaignStats> { self.inner.get_stats(c).await }
    async fn health(&self) -> StoreResult<SchemaState> { self.inner.health().await }
}

const CAMPAIGN: CampaignId = CampaignId(7);

fn lead(external_id: &str) -> Keyed {
    Keyed::Lead(Lead {
        id: LeadId::random(),
        campaign_id: CAMPAIGN,
        affiliate_id: AffiliateId(1),
        tracking_code: "CODE1234".into(),
        external_id: external_id.into(),
        event_type: EventType::Purchase,
        revenue_cents: None,
        payout_cents: 500,
        status: LeadStatus::Verified,
        fields: Fields::new(),
        extra: Fields::new(),
        created_at: 0,
        source: LeadSource::Postback,
        evidence: vec![],
        referral_id: None,
        reviewed_at: None,
        rejection_reason: None,
    })
}

fn click() -> Click {
    Click {
        id: ClickId::random(),
        campaign_id: CAMPAIGN,
        affiliate_id: AffiliateId(1),
        tracking_code: "CODE1234".into(),
        at: 0,
        ip_hash: String::new(),
        user_agent: "Mozilla/5.0".into(),
        referer: String::new(),
        flagged: false,
    }
}

async fn start(fail_at: usize) -> (ractor::ActorRef<CampaignMsg>, Arc<FlakyStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FlakyStore {
        inner: EmbeddedStore::open(dir.path(), 16).unwrap(),
        commits: AtomicUsize::new(0),
        fail_at,
    });
    let config = Config::load_from(None, &[], &Overrides::default()).unwrap().engine;
    let load = Arc::new(Load::default());
    let args = CampaignArgs { id: CAMPAIGN, store: store.clone(), config, load: load.clone() };
    let (actor, _) = Actor::spawn(None, CampaignActor, args).await.unwrap();
    (actor, store, dir)
}

async fn send(actor: &ractor::ActorRef<CampaignMsg>, keyed: Keyed) -> KeyedReply {
    let (tx, rx) = oneshot::channel();
    actor.send_message(CampaignMsg::Keyed(keyed, tx.into())).unwrap();
    rx.await.unwrap()
}

#[tokio::test]
async fn a_failed_commit_records_nothing_answers_unavailable_and_a_retry_records() {
    let (actor, store, _dir) = start(1).await;
    assert!(matches!(send(&actor, lead("o-1")).await, KeyedReply::Unavailable(_)));
    assert!(store.get_lead(CAMPAIGN, "o-1").await.unwrap().is_none(), "nothing stored on failure");
    // The key is now in the bloom filter, so the retry takes the store path
    // and must still record (a false positive, not a duplicate).
    assert!(matches!(send(&actor, lead("o-1")).await, KeyedReply::Recorded(_)));
    assert!(matches!(send(&actor, lead("o-1")).await, KeyedReply::Duplicate(_)));
    let stats = store.get_stats(CAMPAIGN).await.unwrap();
    assert_eq!((stats.postbacks_recorded, stats.payout_cents), (1, 500));
}

#[tokio::test]
async fn clicks_from_a_failed_commit_are_written_by_the_next_one() {
    let (actor, store, _dir) = start(1).await;
    actor.send_message(CampaignMsg::Click(click())).unwrap();
    actor.send_message(CampaignMsg::Click(click())).unwrap();
    // The first (timer) flush fails; drain until the queue is empty.
    let (tx, rx) = oneshot::channel();
    actor.send_message(CampaignMsg::Drain(tx.into())).unwrap();
    rx.await.unwrap();
    let (tx, rx) = oneshot::channel();
    actor.send_message(CampaignMsg::Drain(tx.into())).unwrap();
    rx.await.unwrap();
    assert_eq!(store.get_stats(CAMPAIGN).await.unwrap().clicks, 2);
}

#[tokio::test]
async fn an_existing_key_is_reported_with_the_record_that_won() {
    let (actor, _store, _dir) = start(0).await;
    let KeyedReply::Recorded(Keyed::Lead(first)) = send(&actor, lead("o-9")).await else { panic!("first records") };
    let KeyedReply::Duplicate(Keyed::Lead(again)) = send(&actor, lead("o-9")).await else { panic!("then duplicate") };
    assert_eq!(first.id, again.id);
}
