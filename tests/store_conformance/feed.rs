//! The change feed contract: what committed comes back from a cursor, each
//! record once, never a duplicate's or a lost race's; on the embedded store
//! in commit order. Run on every backend by `store_conformance.rs`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use clickledger::domain::ids::*;
use clickledger::domain::unix_now;
use clickledger::store::feed::LAG_SECS;
use clickledger::store::*;

use super::{commit, conversion, lead, race_one_key};

type Shared = Arc<dyn Backend>;

pub async fn suite(store: &Shared, ordered: bool) {
    committed_records_come_back_from_a_cursor_once_each(store, ordered).await;
    a_lost_race_leaves_one_change_the_winners(store).await;
    a_small_limit_pages_through_the_same_changes(store).await;
}

/// CQL reads only what is `LAG_SECS` old (clock skew between nodes), so
/// the test asks as if that much later, then lets the second end: ids
/// minted afterwards fall past the horizon it read up to.
async fn read(store: &Shared, after: &FeedCursor, limit: usize) -> FeedPage {
    let page = store.changes(after, unix_now() + LAG_SECS, limit).await.expect("changes");
    let into_second = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(1000 - into_second) + 5)).await;
    page
}

/// A cursor past everything committed so far.
async fn end(store: &Shared) -> FeedCursor {
    let mut cursor = FeedCursor::default();
    loop {
        let page = read(store, &cursor, 10_000).await;
        cursor = page.next;
        if page.changes.is_empty() {
            return cursor;
        }
    }
}

fn record_id(k: &Keyed) -> u128 {
    Change::recorded(k).id
}

fn ids(page: &FeedPage) -> Vec<u128> {
    page.changes.iter().map(|c| c.id).collect()
}

async fn committed_records_come_back_from_a_cursor_once_each(store: &Shared, ordered: bool) {
    let start = end(store).await;
    let s: Arc<dyn Store> = store.clone();
    let (a, b, c) = (lead(90, "f-1", 100), conversion(90, 91), lead(90, "f-2", 0));
    commit(&s, Batch { keyed: vec![a.clone(), b.clone(), lead(90, "f-1", 999)], ..Default::default() }).await;
    commit(&s, Batch { keyed: vec![c.clone()], ..Default::default() }).await;
    // On CQL the two writes of "f-1" race: either may win, exactly one does.
    let stored = store.get_lead(CampaignId(90), "f-1").await.unwrap().unwrap();
    let a_won = stored.id.0 == record_id(&a);
    let page = read(store, &start, 100).await;
    let want = vec![stored.id.0, record_id(&b), record_id(&c)];
    if ordered {
        assert!(a_won, "the embedded store applies a batch in order");
        assert_eq!(ids(&page), want, "in commit order, the duplicate left out");
    } else {
        let got: HashSet<u128> = ids(&page).into_iter().collect();
        assert_eq!((page.changes.len(), got), (3, want.into_iter().collect()), "each once, the duplicate left out");
    }
    let change = page.changes.iter().find(|ch| ch.id == stored.id.0).unwrap();
    let ChangeEvent::Recorded { record: Keyed::Lead(first) } = &change.event else {
        panic!("the change carries the lead as stored")
    };
    assert_eq!((first.external_id.as_str(), first.payout_cents), ("f-1", stored.payout_cents));
    assert!(read(store, &page.next, 100).await.changes.is_empty(), "the next cursor is past them");
    let d = lead(90, "f-3", 5);
    commit(&s, Batch { keyed: vec![d.clone()], ..Default::default() }).await;
    assert_eq!(ids(&read(store, &page.next, 100).await), vec![record_id(&d)], "and resumes with what came after");
}

async fn a_lost_race_leaves_one_change_the_winners(store: &Shared) {
    let start = end(store).await;
    assert_eq!(race_one_key(&(store.clone() as Arc<dyn Store>), 91, "race", 8).await, 1);
    let winner = store.get_lead(CampaignId(91), "race").await.unwrap().unwrap();
    assert_eq!(ids(&read(store, &start, 100).await), vec![winner.id.0]);
}

async fn a_small_limit_pages_through_the_same_changes(store: &Shared) {
    let start = end(store).await;
    let s: Arc<dyn Store> = store.clone();
    let keyed: Vec<Keyed> = (0..5).map(|i| lead(92, &format!("p-{i}"), 1)).collect();
    commit(&s, Batch { keyed: keyed.clone(), ..Default::default() }).await;
    let (mut cursor, mut seen) = (start, Vec::new());
    for _ in 0..10 {
        let page = read(store, &cursor, 2).await;
        assert!(page.changes.len() <= 2, "a page holds at most its limit");
        seen.extend(ids(&page));
        cursor = page.next;
    }
    let want: HashSet<u128> = keyed.iter().map(record_id).collect();
    assert_eq!((seen.len(), seen.into_iter().collect::<HashSet<_>>()), (5, want));
}

/// Embedded: expiry drops old rows, and numbering carries on past them.
pub async fn expired_changes_go_and_numbering_carries_on(store: &Shared) {
    let cursor = end(store).await;
    let far = unix_now() + 400 * 86_400;
    while store.expire_changes(7, far, 1000).await.unwrap() == 1000 {}
    assert!(store.changes(&FeedCursor::default(), far, 10).await.unwrap().changes.is_empty(), "all expired");
    let s: Arc<dyn Store> = store.clone();
    let e = lead(93, "after-expiry", 1);
    commit(&s, Batch { keyed: vec![e.clone()], ..Default::default() }).await;
    assert_eq!(ids(&read(store, &cursor, 10).await), vec![record_id(&e)], "a reader's cursor still works");
}
