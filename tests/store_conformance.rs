//! The `Store` and `Ledger` contracts, written once against the traits so
//! every backend runs the same suite (embedded always, CQL when a node is set).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clickledger::config::{Config, Overrides};
use clickledger::domain::ids::*;
use clickledger::domain::model::*;
use clickledger::store::cql::ScyllaStore;
use clickledger::store::embedded::EmbeddedStore;
use clickledger::store::*;

#[path = "store_conformance/caps.rs"]
mod caps;
#[path = "store_conformance/feed.rs"]
mod feed;
#[path = "store_conformance/hooks.rs"]
mod hooks;
#[path = "store_conformance/keys.rs"]
mod keys;
#[path = "common/keyspaces.rs"]
mod keyspaces;
#[path = "store_conformance/ledger.rs"]
mod ledger;

async fn open_embedded(dir: &Path) -> Arc<EmbeddedStore> {
    // A dropped store releases its file lock when its writer thread ends;
    // retry briefly so a reopen right after a drop does not race it.
    for _ in 0..100 {
        if let Ok(store) = EmbeddedStore::open(dir, 64) {
            return Arc::new(store);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("could not reopen the embedded store");
}

fn campaign(id: u64, advertiser: u64) -> Campaign {
    Campaign {
        id: CampaignId(id),
        advertiser_id: AdvertiserId(advertiser),
        name: "c".into(),
        landing_url: "https://a.example/".into(),
        compensation_model: CompensationModel::Fixed,
        payout_cents: Some(100),
        payout_bp: None,
        promo_code: None,
        allowed_origins: vec![],
        field_mapping: Default::default(),
        attribution_window_days: 90,
        hold_days: 30,
        status: CampaignStatus::Draft,
        test_tracking_code: format!("TEST{id:04}"),
        publishable_key: "pk_aff_x".into(),
        tracking_confirmed_at: None,
        created_at: 0,
        version: 0,
        rules: Default::default(),
        caps: Default::default(),
        affiliate_caps: Default::default(),
        fallback_url: None,
        removed_affiliates: Default::default(),
    }
}

fn lead(campaign: u64, external: &str, payout: u64) -> Keyed {
    let now = clickledger::domain::unix_now();
    Keyed::Lead(Lead {
        id: LeadId::new(),
        payout_cents: payout,
        ..Lead::verified(CampaignId(campaign), AffiliateId(1), "CODE".into(), external.into(), now)
    })
}

fn conversion(campaign: u64, click: u128) -> Keyed {
    Keyed::Conversion(Conversion {
        id: ConversionId::new(),
        campaign_id: CampaignId(campaign),
        click_id: ClickId(click),
        affiliate_id: AffiliateId(1),
        email: None,
        fields: Fields::new(),
        extra: Fields::new(),
        created_at: clickledger::domain::unix_now(),
        payout_cents: 0,
        bot_click: false,
        subs: Default::default(),
        status: Default::default(),
        reason: None,
        flags: vec![],
        reviewed_at: None,
        counted: false,
    })
}

fn click(campaign: u64, id: u128, flagged: bool) -> Click {
    Click {
        id: ClickId(id),
        campaign_id: CampaignId(campaign),
        affiliate_id: AffiliateId(1),
        tracking_code: "CODE".into(),
        at: 0,
        ip_hash: IpHash([7; 16]),
        user_agent: "ua".into(),
        referer: String::new(),
        flagged,
        subs: Default::default(),
        duplicate: false,
        capped: false,
        paid_traffic: false,
    }
}

async fn commit(store: &Arc<dyn Store>, batch: Batch) -> Vec<Outcome> {
    store.commit(Arc::new(batch)).await.expect("commit")
}

#[tokio::test]
async fn embedded_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = open_embedded(dir.path()).await;
    let (store, backend): (Arc<dyn Store>, Arc<dyn Backend>) = (embedded.clone(), embedded);
    Box::pin(suite(&store)).await;
    old_click_batches_expire_whole_and_counters_stay(&store).await;
    ledger::suite(&backend).await;
    keys::suite(&backend).await;
    feed::suite(&backend, true).await;
    feed::expired_changes_go_and_numbering_carries_on(&backend).await;
    hooks::suite(&backend, true).await;
    Box::pin(caps::suite(&backend)).await;
    drop((store, backend));
    let reopened: Arc<dyn Backend> = open_embedded(dir.path()).await;
    everything_survives_a_reopen(&reopened).await;
}

/// Embedded only: on CQL the same needs ~8 000 conditional inserts.
#[tokio::test]
async fn the_embedded_store_streams_dedup_keys_in_bounded_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = open_embedded(dir.path()).await;
    let total = DEDUP_CHUNK + 1;
    for start in (0..total).step_by(1000) {
        let keyed = (start..total.min(start + 1000)).map(|i| lead(70, &format!("k{i:05}"), 0)).collect();
        commit(&store, Batch { keyed, ..Default::default() }).await;
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<DedupKey>>(4);
    let read = async {
        let mut sizes = Vec::new();
        while let Some(chunk) = rx.recv().await {
            sizes.push(chunk.len());
        }
        sizes
    };
    let (sent, sizes) = tokio::join!(store.dedup_keys(CampaignId(70), tx), read);
    assert_eq!(sent.unwrap(), total as u64);
    assert_eq!(sizes, vec![DEDUP_CHUNK, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cql_store_passes_the_conformance_suite() {
    let Some(node) = std::env::var("CLICKLEDGER_TEST_CQL").ok().filter(|n| !n.is_empty()) else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run the CQL suite: CLICKLEDGER_TEST_CQL is unset (run `scripts/test`, which starts a node)"
        );
        eprintln!("skipping the CQL conformance suite: set CLICKLEDGER_TEST_CQL=host:port or run scripts/test");
        return;
    };
    keyspaces::prune_once(&node).await;
    let keyspace = keyspaces::name("t_");
    let env = [("CLICKLEDGER_SCYLLA_NODES".to_string(), node), ("CLICKLEDGER_SCYLLA_KEYSPACE".to_string(), keyspace)];
    let config = Config::load_from(None, &env, &Overrides::default()).unwrap().scylla;
    let refused = ScyllaStore::connect(&config).await.err().expect("serving an unmigrated keyspace must be refused");
    assert!(refused.message().contains("run `clickledger migrate`"), "{refused}");
    assert_eq!(ScyllaStore::migrate(&config).await.unwrap(), clickledger::store::cql::schema::latest());
    assert_eq!(
        ScyllaStore::migrate(&config).await.unwrap(),
        clickledger::store::cql::schema::latest(),
        "migrate is idempotent"
    );
    Box::pin(a_migration_that_died_after_its_alter_statements_runs_again(&config)).await;
    Box::pin(a_migration_indexes_keys_from_before_key_records(&config)).await;
    let cql = Arc::new(ScyllaStore::connect(&config).await.unwrap());
    let (store, backend): (Arc<dyn Store>, Arc<dyn Backend>) = (cql.clone(), cql);
    Box::pin(suite(&store)).await;
    Box::pin(ledger::suite(&backend)).await;
    Box::pin(keys::suite(&backend)).await;
    Box::pin(feed::suite(&backend, false)).await;
    Box::pin(hooks::suite(&backend, false)).await;
    Box::pin(caps::suite(&backend)).await;
    Box::pin(a_migration_fills_the_listing_indexes_from_what_was_there(&config, &store)).await;
    drop((store, backend));
    let reopened: Arc<dyn Backend> = Arc::new(ScyllaStore::connect(&config).await.unwrap());
    Box::pin(everything_survives_a_reopen(&reopened)).await;
}

/// Version 8 adds the listing indexes; applying it fills them from the
/// campaigns and codes stored before (here: emptied, the version forgotten).
async fn a_migration_fills_the_listing_indexes_from_what_was_there(
    config: &clickledger::config::ScyllaConfig,
    store: &Arc<dyn Store>,
) {
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_node(&config.nodes[0])
        .build()
        .await
        .expect("connect");
    let ks = &config.keyspace;
    for table in ["campaigns_by_advertiser", "approvals_by_campaign", "approvals_by_affiliate"] {
        session.query_unpaged(format!("TRUNCATE {ks}.{table}"), &[]).await.expect("truncate");
    }
    session
        .query_unpaged(format!("DELETE FROM {ks}.schema_migrations WHERE version = 8"), &[])
        .await
        .expect("forget 8");
    assert!(store.campaign_ids_of(AdvertiserId(7)).await.unwrap().is_empty(), "emptied");
    ScyllaStore::migrate(config).await.unwrap();
    assert_eq!(store.campaign_ids_of(AdvertiserId(7)).await.unwrap().len(), 2);
    assert_eq!(store.codes_of_affiliate(AffiliateId(17)).await.unwrap().len(), 2);
    assert_eq!(store.codes_of_campaign(CampaignId(70)).await.unwrap().len(), 2);
}

/// Version 3 adds columns, which CQL cannot do "if not exists": a migrator
/// that died after the ALTERs but before recording the version re-runs them.
async fn a_migration_that_died_after_its_alter_statements_runs_again(config: &clickledger::config::ScyllaConfig) {
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_node(&config.nodes[0])
        .build()
        .await
        .expect("connect");
    let forget = format!("DELETE FROM {}.schema_migrations WHERE version = 3", config.keyspace);
    session.query_unpaged(forget, &[]).await.expect("forget version 3");
    assert_eq!(
        ScyllaStore::migrate(config).await.unwrap(),
        clickledger::store::cql::schema::latest(),
        "the columns are there: version 3 is recorded again"
    );
}

/// An `api_keys` row from schema version 2 holds a bare principal; migrate
/// indexes it under its owner with the id its hash gives it.
async fn a_migration_indexes_keys_from_before_key_records(config: &clickledger::config::ScyllaConfig) {
    use clickledger::domain::keys::{hash_key, Owner, Principal};
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_node(&config.nodes[0])
        .build()
        .await
        .expect("connect");
    let old = serde_json::to_string(&Principal::Affiliate { id: AffiliateId(78) }).unwrap();
    let insert = format!("INSERT INTO {}.api_keys (key_hash, principal) VALUES (?, ?)", config.keyspace);
    session.query_unpaged(insert, (hash_key("sk_live_legacy78").to_vec(), old)).await.expect("legacy row");
    ScyllaStore::migrate(config).await.unwrap();
    let store = ScyllaStore::connect(config).await.unwrap();
    let listed = store.list_keys(Owner::Affiliate(AffiliateId(78)), None, 10).await.unwrap();
    assert_eq!(listed.len(), 1, "the legacy key is listed");
    let record = store.key_by_hash(&hash_key("sk_live_legacy78")).await.unwrap().unwrap();
    assert_eq!(record.id, listed[0].key.id);
}

/// Embedded only (CQL drops them by TTL): batches older than the retention
/// go whole, newer ones and every counter stay.
async fn old_click_batches_expire_whole_and_counters_stay(store: &Arc<dyn Store>) {
    let day = 86_400u64;
    let now = 1_800_000_000u64;
    let id_at = |secs: u64, n: u128| (u128::from(secs * 1000) << 80) | n;
    let (c, old, recent) = (70, id_at(now - 40 * day, 1), id_at(now - 2 * day, 2));
    for id in [old, old + 1, recent] {
        commit(store, Batch { clicks: vec![click(c, id, false)], ..Default::default() }).await;
    }
    commit(store, Batch { clicks: vec![click(c + 1, old + 5, false)], ..Default::default() }).await;
    let before = store.get_stats(CampaignId(c)).await.unwrap();
    assert_eq!(store.expire_clicks(30, now, 1).await.unwrap(), 1, "at most the limit per call");
    // The rest, over both campaigns (and the suite's own clicks, minted at 0).
    assert!(store.expire_clicks(30, now, 100).await.unwrap() >= 2);
    assert_eq!(store.expire_clicks(30, now, 100).await.unwrap(), 0);
    assert!(store.get_click(CampaignId(c), ClickId(old)).await.unwrap().is_none());
    assert!(store.get_click(CampaignId(c + 1), ClickId(old + 5)).await.unwrap().is_none());
    assert!(store.get_click(CampaignId(c), ClickId(recent)).await.unwrap().is_some());
    assert_eq!(store.get_stats(CampaignId(c)).await.unwrap(), before, "counters stay");
    assert_eq!(before.clicks, 3);
}

async fn suite(store: &Arc<dyn Store>) {
    a_reachable_store_reports_its_schema_current(store).await;
    campaigns_are_replaced_and_listed(store).await;
    tracking_codes_are_insert_if_absent_per_pair(store).await;
    a_keyed_write_records_once_and_reports_the_winner(store).await;
    the_same_key_twice_in_one_batch_records_once(store).await;
    stats_count_only_what_was_inserted(store).await;
    dedup_keys_are_scoped_to_one_campaign(store).await;
    a_dedup_key_scan_stops_when_its_receiver_is_gone(store).await;
    racing_commits_of_one_key_record_it_once(store).await;
    racing_approvals_of_one_pair_agree_on_one_code(store).await;
    payout_stats_stay_exact_past_the_range_of_u64(store).await;
    listing_indexes_find_an_owners_campaigns_and_approvals(store).await;
}

async fn listing_indexes_find_an_owners_campaigns_and_approvals(store: &Arc<dyn Store>) {
    for (id, advertiser) in [(70, 7), (71, 7), (72, 8)] {
        store.put_campaign(&campaign(id, advertiser)).await.unwrap();
    }
    let mut mine = store.campaign_ids_of(AdvertiserId(7)).await.unwrap();
    mine.sort();
    assert_eq!(mine, [CampaignId(70), CampaignId(71)]);
    assert!(store.campaign_ids_of(AdvertiserId(9)).await.unwrap().is_empty());
    let code = |c: &str, campaign: u64, affiliate: u64| TrackingCode {
        code: c.into(),
        campaign_id: CampaignId(campaign),
        affiliate_id: Some(AffiliateId(affiliate)),
        created_at: 0,
    };
    store.insert_tracking_code(&code("LIST0001", 70, 17)).await.unwrap();
    store.insert_tracking_code(&code("LIST0002", 71, 17)).await.unwrap();
    store.insert_tracking_code(&code("LIST0003", 70, 18)).await.unwrap();
    // A second approval of a pair keeps (and lists) the first code only.
    store.insert_tracking_code(&code("LIST0004", 70, 17)).await.unwrap();
    let names = |mut v: Vec<TrackingCode>| {
        v.sort_by(|a, b| a.code.cmp(&b.code));
        v.into_iter().map(|c| c.code).collect::<Vec<_>>()
    };
    assert_eq!(names(store.codes_of_campaign(CampaignId(70)).await.unwrap()), ["LIST0001", "LIST0003"]);
    assert_eq!(names(store.codes_of_affiliate(AffiliateId(17)).await.unwrap()), ["LIST0001", "LIST0002"]);
    assert!(store.codes_of_affiliate(AffiliateId(19)).await.unwrap().is_empty());
}

/// Readiness (`GET /readyz`): one real read, and the schema this build expects.
async fn a_reachable_store_reports_its_schema_current(store: &Arc<dyn Store>) {
    let health = store.health().await.expect("a reachable store");
    assert!(health.current, "{health:?}");
    assert!(!health.detail.is_empty());
}

async fn racing_approvals_of_one_pair_agree_on_one_code(store: &Arc<dyn Store>) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let code = TrackingCode {
                    code: format!("RACE{i:04}"),
                    campaign_id: CampaignId(60),
                    affiliate_id: Some(AffiliateId(6)),
                    created_at: 0,
                };
                store.insert_tracking_code(&code).await.unwrap().code
            })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    codes.dedup();
    assert_eq!(codes.len(), 1, "every racer gets the same code: {codes:?}");
}

async fn campaigns_are_replaced_and_listed(store: &Arc<dyn Store>) {
    store.put_campaign(&campaign(10, 1)).await.unwrap();
    let mut changed = campaign(10, 1);
    changed.status = CampaignStatus::Active;
    changed.version = 1;
    assert!(store.replace_campaign(&changed, 0).await.unwrap(), "the expected version matches");
    let mut stale = campaign(10, 1);
    stale.version = 1;
    assert!(!store.replace_campaign(&stale, 0).await.unwrap(), "a stale version loses");
    assert!(!store.replace_campaign(&campaign(12, 1), 0).await.unwrap(), "a missing campaign is not created");
    store.put_campaign(&campaign(11, 1)).await.unwrap();
    assert_eq!(store.get_campaign(CampaignId(10)).await.unwrap().unwrap().status, CampaignStatus::Active);
    assert_eq!(store.list_campaigns().await.unwrap().len(), 2);
    assert!(store.get_campaign(CampaignId(99)).await.unwrap().is_none());
}

async fn tracking_codes_are_insert_if_absent_per_pair(store: &Arc<dyn Store>) {
    let code = |c: &str| TrackingCode {
        code: c.into(),
        campaign_id: CampaignId(10),
        affiliate_id: Some(AffiliateId(2)),
        created_at: 0,
    };
    assert_eq!(store.insert_tracking_code(&code("AAAA1111")).await.unwrap().code, "AAAA1111");
    assert_eq!(store.insert_tracking_code(&code("BBBB2222")).await.unwrap().code, "AAAA1111", "same pair, same code");
    assert!(store.get_tracking_code("BBBB2222").await.unwrap().is_none());
    let test = TrackingCode { code: "TEST0010".into(), campaign_id: CampaignId(10), affiliate_id: None, created_at: 0 };
    store.insert_tracking_code(&test).await.unwrap();
    assert_eq!(store.get_tracking_code("TEST0010").await.unwrap(), Some(test));
    assert_eq!(store.list_tracking_codes().await.unwrap().len(), 2);
}

async fn a_keyed_write_records_once_and_reports_the_winner(store: &Arc<dyn Store>) {
    let first = lead(20, "o-1", 500);
    let out = commit(store, Batch { keyed: vec![first.clone()], ..Default::default() }).await;
    assert!(matches!(out[..], [Outcome::Inserted]));
    let out = commit(store, Batch { keyed: vec![lead(20, "o-1", 999)], ..Default::default() }).await;
    let Outcome::Existing(Keyed::Lead(winner)) = &out[0] else { panic!("expected the existing lead") };
    let Keyed::Lead(first) = first else { unreachable!() };
    assert_eq!((winner.id, winner.payout_cents), (first.id, 500));
    assert_eq!(store.get_lead(CampaignId(20), "o-1").await.unwrap().unwrap().id, first.id);
    assert!(store.get_lead(CampaignId(21), "o-1").await.unwrap().is_none(), "keys are per campaign");
    let out = commit(store, Batch { keyed: vec![conversion(20, 7), conversion(20, 7)], ..Default::default() }).await;
    assert_one_wins(&out);
    assert!(store.get_conversion(CampaignId(20), ClickId(7)).await.unwrap().is_some());
}

/// Two writes of one key in one batch: either may win (a CQL backend runs
/// them concurrently), but exactly one does.
fn assert_one_wins(out: &[Outcome]) {
    let inserted = out.iter().filter(|o| matches!(o, Outcome::Inserted)).count();
    assert_eq!((out.len(), inserted), (2, 1), "{out:?}");
}

async fn the_same_key_twice_in_one_batch_records_once(store: &Arc<dyn Store>) {
    let out = commit(store, Batch { keyed: vec![lead(22, "x", 1), lead(22, "x", 1)], ..Default::default() }).await;
    assert_one_wins(&out);
}

async fn stats_count_only_what_was_inserted(store: &Arc<dyn Store>) {
    let c = 30;
    let delta = CampaignStats { conversions_duplicate: 2, ..Default::default() };
    let batch = Batch {
        clicks: vec![click(c, 1, false), click(c, 2, true), click(c, 1, false)],
        keyed: vec![lead(c, "a", 300), lead(c, "a", 300), conversion(c, 1)],
        stats: vec![(CampaignId(c), delta)],
        claims: vec![],
    };
    commit(store, batch).await;
    let s = store.get_stats(CampaignId(c)).await.unwrap();
    assert_eq!((s.clicks, s.bot_clicks), (1, 1), "a replayed click id counts once");
    assert_eq!((s.postbacks_recorded, s.payout_cents), (1, 300));
    assert_eq!((s.conversions_recorded, s.conversions_duplicate), (1, 2));
    assert!(store.get_click(CampaignId(c), ClickId(2)).await.unwrap().unwrap().flagged);
    assert_eq!(store.get_stats(CampaignId(31)).await.unwrap(), CampaignStats::default());
}

/// Stats sum every recorded payout in 128 bits: three records of u64::MAX
/// cents (more than any one request may carry) add up exactly.
async fn payout_stats_stay_exact_past_the_range_of_u64(store: &Arc<dyn Store>) {
    let c = 32;
    let keyed = (0..3).map(|i| lead(c, &format!("huge-{i}"), u64::MAX)).collect();
    commit(store, Batch { keyed, ..Default::default() }).await;
    commit(store, Batch { keyed: vec![lead(c, "small", 7)], ..Default::default() }).await;
    let s = store.get_stats(CampaignId(c)).await.unwrap();
    assert_eq!(s.payout_cents, 3 * u128::from(u64::MAX) + 7);
}

async fn dedup_keys_are_scoped_to_one_campaign(store: &Arc<dyn Store>) {
    commit(store, Batch { keyed: vec![lead(40, "k1", 1), conversion(40, 5), lead(41, "k2", 1)], ..Default::default() })
        .await;
    let keys = collect_dedup_keys(&**store, CampaignId(40)).await.unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&DedupKey::External("k1".into())) && keys.contains(&DedupKey::Click(ClickId(5))));
}

async fn a_dedup_key_scan_stops_when_its_receiver_is_gone(store: &Arc<dyn Store>) {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    drop(rx);
    let sent = tokio::time::timeout(Duration::from_secs(30), store.dedup_keys(CampaignId(40), tx)).await;
    assert_eq!(sent.expect("the scan must not wait for a receiver that is gone").unwrap(), 0);
}

/// `writers` commits of the lead `external` on `campaign` at once; how many
/// of them inserted it.
async fn race_one_key(store: &Arc<dyn Store>, campaign: u64, external: &'static str, writers: usize) -> usize {
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store.commit(Arc::new(Batch { keyed: vec![lead(campaign, external, 1)], ..Default::default() })).await
            })
        })
        .collect();
    let mut inserted = 0;
    for t in tasks {
        if matches!(t.await.unwrap().unwrap()[..], [Outcome::Inserted]) {
            inserted += 1;
        }
    }
    inserted
}

async fn racing_commits_of_one_key_record_it_once(store: &Arc<dyn Store>) {
    assert_eq!(race_one_key(store, 50, "race", 16).await, 1);
    assert_eq!(store.get_stats(CampaignId(50)).await.unwrap().postbacks_recorded, 1);
}

async fn everything_survives_a_reopen(store: &Arc<dyn Backend>) {
    let key = clickledger::domain::keys::hash_key("sk_live_901");
    assert!(store.key_by_hash(&key).await.unwrap().is_some());
    assert_eq!(store.list_campaigns().await.unwrap().len(), 5, "the suite's campaigns 10, 11 and 70 to 72");
    assert_eq!(store.campaign_ids_of(AdvertiserId(7)).await.unwrap().len(), 2);
    assert!(store.get_lead(CampaignId(20), "o-1").await.unwrap().is_some());
    assert_eq!(collect_dedup_keys(&**store, CampaignId(40)).await.unwrap().len(), 2);
    assert_eq!(store.get_stats(CampaignId(30)).await.unwrap().clicks, 1);
    let out =
        commit(&(store.clone() as Arc<dyn Store>), Batch { keyed: vec![lead(20, "o-1", 1)], ..Default::default() })
            .await;
    assert!(matches!(out[..], [Outcome::Existing(_)]), "dedup holds across a reopen");
}

/// A data directory from before key records: its `api_keys` rows hold bare
/// principals. Opening it indexes them under their owners, with the id their
/// hash gives them, so they can be listed and revoked like new ones.
#[tokio::test]
async fn the_embedded_store_indexes_keys_from_before_key_records() {
    use clickledger::domain::keys::{hash_key, Owner, Principal};
    let dir = tempfile::tempdir().unwrap();
    let old = Principal::Affiliate { id: AffiliateId(77) };
    {
        let db = redb::Database::create(dir.path().join("clickledger.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        let table: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("api_keys");
        let json = serde_json::to_vec(&old).unwrap();
        txn.open_table(table).unwrap().insert(hash_key("sk_live_legacy").as_slice(), json.as_slice()).unwrap();
        txn.commit().unwrap();
    }
    let store: Arc<dyn Backend> = open_embedded(dir.path()).await;
    let owner = Owner::Affiliate(AffiliateId(77));
    let listed = store.list_keys(owner, None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    let record = store.key_by_hash(&hash_key("sk_live_legacy")).await.unwrap().unwrap();
    assert_eq!((record.id, record.principal), (listed[0].key.id, old));
    assert_eq!(store.revoke_key(owner, record.id, 1).await.unwrap(), Revoke::LastSecretKey, "it counts as a key");
}
