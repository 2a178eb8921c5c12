//! The campaign actor against a real embedded store that can be told to fail
//! its Nth commit and to hold its bloom rebuild back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use ractor::Actor;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::campaign::*;
use crate::config::{Config, Overrides};
use crate::domain::ids::*;
use crate::domain::model::*;
use crate::store::embedded::EmbeddedStore;
use crate::store::*;

/// Delegates to the embedded store, but fails commit number `fail_at`
/// (1-based) and counts lead reads. A dedup key scan reads its snapshot at
/// once (counted in `scans`) but hands the keys over only once `rebuild_gate`
/// has a permit, so a test can hold a bloom rebuild at its end.
struct FlakyStore {
    inner: EmbeddedStore,
    commits: AtomicUsize,
    fail_at: usize,
    lead_reads: AtomicUsize,
    scans: AtomicUsize,
    rebuild_gate: Semaphore,
}

#[rustfmt::skip]
#[async_trait]
impl Store for FlakyStore {
    async fn put_campaign(&self, c: &Campaign) -> StoreResult<()> { self.inner.put_campaign(c).await }
    async fn replace_campaign(&self, c: &Campaign, v: u64) -> StoreResult<bool> { self.inner.replace_campaign(c, v).await }
    async fn get_campaign(&self, id: CampaignId) -> StoreResult<Option<Campaign>> { self.inner.get_campaign(id).await }
    async fn list_campaigns(&self) -> StoreResult<Vec<Campaign>> { self.inner.list_campaigns().await }
    async fn insert_tracking_code(&self, c: &TrackingCode) -> StoreResult<TrackingCode> { self.inner.insert_tracking_code(c).await }
    async fn get_tracking_code(&self, c: &str) -> StoreResult<Option<TrackingCode>> { self.inner.get_tracking_code(c).await }
    async fn list_tracking_codes(&self) -> StoreResult<Vec<TrackingCode>> { self.inner.list_tracking_codes().await }
    async fn campaign_ids_of(&self, a: AdvertiserId) -> StoreResult<Vec<CampaignId>> { self.inner.campaign_ids_of(a).await }
    async fn codes_of_campaign(&self, c: CampaignId) -> StoreResult<Vec<TrackingCode>> { self.inner.codes_of_campaign(c).await }
    async fn codes_of_affiliate(&self, a: AffiliateId) -> StoreResult<Vec<TrackingCode>> { self.inner.codes_of_affiliate(a).await }
    async fn commit(&self, batch: Arc<Batch>) -> StoreResult<Vec<Outcome>> {
        if self.commits.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            return Err(StoreError::Failed("injected failure".into()));
        }
        self.inner.commit(batch).await
    }
    async fn get_conversion(&self, c: CampaignId, k: ClickId) -> StoreResult<Option<Conversion>> { self.inner.get_conversion(c, k).await }
    async fn get_lead(&self, c: CampaignId, e: &str) -> StoreResult<Option<Lead>> {
        self.lead_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_lead(c, e).await
    }
    async fn get_click(&self, c: CampaignId, k: ClickId) -> StoreResult<Option<Click>> { self.inner.get_click(c, k).await }
    async fn expire_clicks(&self, d: u32, n: u64, l: usize) -> StoreResult<usize> { self.inner.expire_clicks(d, n, l).await }
    async fn dedup_keys(&self, c: CampaignId, out: mpsc::Sender<Vec<DedupKey>>) -> StoreResult<u64> {
        let keys = collect_dedup_keys(&self.inner, c).await?;
        self.scans.fetch_add(1, Ordering::SeqCst);
        let _permit = self.rebuild_gate.acquire().await.map_err(|e| StoreError::Failed(e.to_string()))?;
        for chunk in keys.chunks(DEDUP_CHUNK) {
            out.send(chunk.to_vec()).await.map_err(|e| StoreError::Failed(e.to_string()))?;
        }
        Ok(keys.len() as u64)
    }
    async fn get_stats(&self, c: CampaignId) -> StoreResult<CampaignStats> { self.inner.get_stats(c).await }
    async fn health(&self) -> StoreResult<SchemaState> { self.inner.health().await }
}

const CAMPAIGN: CampaignId = CampaignId(7);

fn lead(external_id: &str) -> Keyed {
    Keyed::Lead(Lead {
        id: LeadId::random(),
        payout_cents: 500,
        ..Lead::verified(CAMPAIGN, AffiliateId(1), "CODE1234".into(), external_id.into(), 0)
    })
}

fn click() -> Click {
    Click {
        id: ClickId::random(),
        campaign_id: CAMPAIGN,
        affiliate_id: AffiliateId(1),
        tracking_code: "CODE1234".into(),
        at: 0,
        ip_hash: IpHash::default(),
        user_agent: "Mozilla/5.0".into(),
        referer: String::new(),
        flagged: false,
        subs: Default::default(),
        duplicate: false,
        capped: false,
        paid_traffic: false,
    }
}

async fn start(fail_at: usize) -> (ractor::ActorRef<CampaignMsg>, Arc<FlakyStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(flaky(EmbeddedStore::open(dir.path(), 16).unwrap(), fail_at, Semaphore::MAX_PERMITS));
    let actor = spawn(&store, 100_000).await;
    (actor, store, dir)
}

fn flaky(inner: EmbeddedStore, fail_at: usize, rebuild_permits: usize) -> FlakyStore {
    FlakyStore {
        inner,
        commits: AtomicUsize::new(0),
        fail_at,
        lead_reads: AtomicUsize::new(0),
        scans: AtomicUsize::new(0),
        rebuild_gate: Semaphore::new(rebuild_permits),
    }
}

async fn spawn(store: &Arc<FlakyStore>, window_capacity: usize) -> ractor::ActorRef<CampaignMsg> {
    let mut config = Config::load_from(None, &[], &Overrides::default()).unwrap().engine;
    config.window_capacity = window_capacity;
    let args = CampaignArgs { id: CAMPAIGN, store: store.clone(), config, load: Arc::new(Load::default()) };
    Actor::spawn(None, CampaignActor, args).await.unwrap().0
}

async fn filter_ready(actor: &ractor::ActorRef<CampaignMsg>) -> bool {
    let (tx, rx) = oneshot::channel();
    actor.send_message(CampaignMsg::FilterReady(tx.into())).unwrap();
    rx.await.unwrap()
}

/// An actor over a store that already holds lead "o-1", whose bloom rebuild
/// waits until the test adds a permit to the returned store's gate.
async fn restarted_with_held_rebuild(
    window_capacity: usize,
) -> (ractor::ActorRef<CampaignMsg>, Arc<FlakyStore>, Lead, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let seeded = lead("o-1");
    let outcome = {
        let store = EmbeddedStore::open(dir.path(), 16).unwrap();
        store.commit(Arc::new(Batch { keyed: vec![seeded.clone()], ..Default::default() })).await.unwrap()
    };
    assert!(matches!(outcome[..], [Outcome::Inserted]));
    let store = Arc::new(reopen(&dir));
    let actor = spawn(&store, window_capacity).await;
    let Keyed::Lead(seeded) = seeded else { unreachable!() };
    (actor, store, seeded, dir)
}

/// The dropped store's writer thread releases the file lock as it ends.
fn reopen(dir: &tempfile::TempDir) -> FlakyStore {
    for _ in 0..100 {
        if let Ok(inner) = EmbeddedStore::open(dir.path(), 16) {
            return flaky(inner, 0, 0);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("could not reopen the store");
}

async fn send(actor: &ractor::ActorRef<CampaignMsg>, keyed: Keyed) -> KeyedReply {
    let (tx, rx) = oneshot::channel();
    actor.send_message(CampaignMsg::Keyed(keyed, None, tx.into())).unwrap();
    rx.await.unwrap()
}

#[tokio::test]
async fn a_failed_commit_records_nothing_answers_unavailable_and_a_retry_records() {
    let (actor, store, _dir) = start(1).await;
    assert!(matches!(send(&actor, lead("o-1")).await, KeyedReply::Failed(_)));
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
    actor.send_message(CampaignMsg::Click(click(), vec![])).unwrap();
    actor.send_message(CampaignMsg::Click(click(), vec![])).unwrap();
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

#[tokio::test]
async fn a_duplicate_sent_before_the_bloom_rebuild_finishes_is_answered_with_the_original_record() {
    let (actor, store, seeded, _dir) = restarted_with_held_rebuild(100_000).await;
    let KeyedReply::Duplicate(Keyed::Lead(found)) = send(&actor, lead("o-1")).await else { panic!("a duplicate") };
    assert_eq!(found.id, seeded.id, "the record that won, not the repeat");
    assert!(matches!(send(&actor, lead("o-2")).await, KeyedReply::Recorded(_)));
    assert!(!filter_ready(&actor).await, "both answered while the rebuild was still held");
    assert_eq!(store.lead_reads.load(Ordering::SeqCst), 0, "the commit decided, not a read");
    let (tx, rx) = oneshot::channel();
    actor.send_message(CampaignMsg::Drain(tx.into())).unwrap();
    rx.await.unwrap();
    let stats = store.get_stats(CAMPAIGN).await.unwrap();
    assert_eq!((stats.postbacks_recorded, stats.postbacks_duplicate), (2, 1));
}

#[tokio::test]
async fn keys_recorded_during_the_bloom_rebuild_are_in_the_filter_after_it() {
    // A window of one key, so repeats reach the bloom filter.
    let (actor, store, seeded, _dir) = restarted_with_held_rebuild(1).await;
    while store.scans.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Recorded after the rebuild's snapshot was read: only the actor knows it.
    let KeyedReply::Recorded(Keyed::Lead(meanwhile)) = send(&actor, lead("o-2")).await else { panic!("records") };
    store.rebuild_gate.add_permits(1);
    while !filter_ready(&actor).await {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(matches!(send(&actor, lead("o-3")).await, KeyedReply::Recorded(_)), "evicts o-2 from the window");
    // A bloom hit is answered by a read; a miss would go to the commit instead.
    let reads = store.lead_reads.load(Ordering::SeqCst);
    let KeyedReply::Duplicate(Keyed::Lead(found)) = send(&actor, lead("o-2")).await else { panic!("a duplicate") };
    assert_eq!((found.id, store.lead_reads.load(Ordering::SeqCst)), (meanwhile.id, reads + 1));
    let KeyedReply::Duplicate(Keyed::Lead(found)) = send(&actor, lead("o-1")).await else { panic!("a duplicate") };
    assert_eq!((found.id, store.lead_reads.load(Ordering::SeqCst)), (seeded.id, reads + 2));
}
