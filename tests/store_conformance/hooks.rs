//! The `Hooks` contract: endpoints with compare-and-set edits, deliveries
//! enqueued once however often a page is dispatched (keeping their
//! attempts), their due items, one lease at a time, newest-first logs.
//! Run on every backend by `store_conformance.rs`.

use std::sync::Arc;

use clickledger::domain::ids::*;
use clickledger::domain::keys::Owner;
use clickledger::domain::webhook::*;
use clickledger::store::*;

type Shared = Arc<dyn Backend>;

pub async fn suite(store: &Shared, single_process: bool) {
    endpoints_are_edited_compare_and_set(store).await;
    a_page_enqueued_twice_keeps_its_first_copies_and_the_cursor_moves(store).await;
    an_attempt_is_recorded_with_its_next_due_time(store).await;
    if !single_process {
        one_node_at_a_time_holds_a_delivery(store).await;
    }
}

fn endpoint(owner: u64) -> Endpoint {
    Endpoint {
        id: WebhookId::new(),
        owner: Owner::Advertiser(AdvertiserId(owner)),
        url: "https://hooks.example/in".into(),
        events: vec!["conversion.recorded".into()],
        description: None,
        enabled: true,
        disabled_reason: None,
        secret: new_secret(),
        created_at: 1_000,
        consecutive_failures: 0,
        version: 1,
        kind: EndpointKind::Webhook,
    }
}

fn event(n: u64) -> Event {
    Event {
        id: event_id("conversion.recorded", &format!("cnv_{n}")),
        kind: "conversion.recorded".into(),
        created_at: 1_700_000_000 + n,
        data: serde_json::json!({"n": n}),
    }
}

async fn endpoints_are_edited_compare_and_set(store: &Shared) {
    let e = endpoint(1);
    assert!(store.put_endpoint(&e, None).await.unwrap());
    assert!(!store.put_endpoint(&e, None).await.unwrap(), "an id is inserted once");
    let edited = Endpoint { url: "https://other.example/".into(), version: 2, ..e.clone() };
    assert!(store.put_endpoint(&edited, Some(1)).await.unwrap());
    assert!(!store.put_endpoint(&Endpoint { version: 3, ..e.clone() }, Some(1)).await.unwrap(), "a stale edit loses");
    assert_eq!(store.get_endpoint(e.id).await.unwrap(), Some(edited));
    assert!(store.list_endpoints().await.unwrap().iter().any(|x| x.id == e.id));
    store.delete_endpoint(e.id).await.unwrap();
    assert_eq!(store.get_endpoint(e.id).await.unwrap(), None);
}

async fn a_page_enqueued_twice_keeps_its_first_copies_and_the_cursor_moves(store: &Shared) {
    let e = endpoint(2);
    store.put_endpoint(&e, None).await.unwrap();
    let page: Vec<Delivery> = (0..3).map(|n| Delivery::new(&event(n), e.id, 50)).collect();
    let cursor = FeedCursor([(0u32, 77u128)].into_iter().collect());
    store.enqueue(&page, Some(&cursor)).await.unwrap();
    assert_eq!(store.outbox_cursor().await.unwrap(), cursor);
    // An attempt on the first, then the same page again (a restart, a second node).
    let mut first = store.get_delivery(e.id, page[0].id).await.unwrap().unwrap();
    first.attempts.push(Attempt { attempt: 1, at: 50, status_code: Some(500), error: None, duration_ms: 3 });
    first.next_attempt_at = Some(60);
    let due = Due::new(Queue::Deliver, 50, DueItem::Delivery(e.id, first.id));
    store.update_delivery(&first, Some(&due)).await.unwrap();
    store.enqueue(&page, Some(&cursor)).await.unwrap();
    let log = store.list_deliveries(e.id, None, 10).await.unwrap();
    assert_eq!(log.len(), 3, "each delivery once: {log:?}");
    assert_eq!(
        log.iter().map(|d| d.id).collect::<Vec<_>>(),
        page.iter().rev().map(|d| d.id).collect::<Vec<_>>(),
        "newest first"
    );
    assert_eq!(log[2].attempts.len(), 1, "the second enqueue kept the attempt");
    let older = store.list_deliveries(e.id, Some(log[0].id), 10).await.unwrap();
    assert_eq!(older.len(), 2, "a page below a delivery id");
}

async fn an_attempt_is_recorded_with_its_next_due_time(store: &Shared) {
    let e = endpoint(3);
    store.put_endpoint(&e, None).await.unwrap();
    let d = Delivery::new(&event(10), e.id, 500);
    store.enqueue(std::slice::from_ref(&d), None).await.unwrap();
    let mine =
        |items: Vec<Due>| items.into_iter().filter(|i| i.item == DueItem::Delivery(e.id, d.id)).collect::<Vec<_>>();
    let due = mine(store.due(Queue::Deliver, 500, 10_000).await.unwrap());
    assert_eq!(due.len(), 1, "enqueued with its due item");
    let mut tried = d.clone();
    tried.attempts.push(Attempt {
        attempt: 1,
        at: 500,
        status_code: None,
        error: Some("timed out".into()),
        duration_ms: 9,
    });
    tried.next_attempt_at = Some(505);
    store.update_delivery(&tried, Some(&due[0])).await.unwrap();
    assert_eq!(mine(store.due(Queue::Deliver, 504, 10_000).await.unwrap()).len(), 0, "the worked item went");
    let next = mine(store.due(Queue::Deliver, 505, 10_000).await.unwrap());
    assert_eq!(next.iter().map(|i| i.at).collect::<Vec<_>>(), [505], "the next attempt is due");
    let done = Delivery { status: DeliveryStatus::Delivered, next_attempt_at: None, ..tried };
    store.update_delivery(&done, Some(&next[0])).await.unwrap();
    assert!(mine(store.due(Queue::Deliver, u64::MAX / 2, 10_000).await.unwrap()).is_empty(), "nothing more is due");
    assert_eq!(store.get_delivery(e.id, d.id).await.unwrap().unwrap().status, DeliveryStatus::Delivered);
}

async fn one_node_at_a_time_holds_a_delivery(store: &Shared) {
    let e = endpoint(4);
    store.put_endpoint(&e, None).await.unwrap();
    let d = Delivery::new(&event(20), e.id, 500);
    store.enqueue(std::slice::from_ref(&d), None).await.unwrap();
    let (a, b) =
        tokio::join!(store.claim_delivery(e.id, d.id, 1_000, 5_000), store.claim_delivery(e.id, d.id, 1_000, 5_000));
    assert_eq!(u8::from(a.unwrap()) + u8::from(b.unwrap()), 1, "one claim wins");
    assert!(!store.claim_delivery(e.id, d.id, 4_000, 9_000).await.unwrap(), "held until it runs out");
    assert!(store.claim_delivery(e.id, d.id, 5_001, 9_000).await.unwrap(), "then another may take it");
    store.release_delivery(e.id, d.id).await.unwrap();
    assert!(store.claim_delivery(e.id, d.id, 5_002, 9_000).await.unwrap(), "a released lease is free");
}
