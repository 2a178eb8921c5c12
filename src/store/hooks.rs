//! The `Hooks` contract: webhook endpoints and the outbox of deliveries.
//!
//! The outbox follows the change feed: a feed row is written in the same
//! commit as its cause, so turning changes into deliveries later, from a
//! durable cursor, loses nothing acknowledged and invents nothing that was
//! not stored. `enqueue` writes a page's deliveries (ids derived from event
//! and endpoint, so a page dispatched twice finds them there) and their due
//! items before it moves the cursor past the page.

use async_trait::async_trait;

use super::{Due, FeedCursor, StoreResult};
use crate::domain::ids::{DeliveryId, WebhookId};
use crate::domain::webhook::{Delivery, Endpoint};

#[async_trait]
pub trait Hooks: Send + Sync + 'static {
    /// Inserts a new endpoint (`expected_version: None`) or replaces one
    /// that still has `expected_version`; `false`: someone changed it first.
    async fn put_endpoint(&self, endpoint: &Endpoint, expected_version: Option<u64>) -> StoreResult<bool>;
    async fn delete_endpoint(&self, id: WebhookId) -> StoreResult<()>;
    async fn get_endpoint(&self, id: WebhookId) -> StoreResult<Option<Endpoint>>;
    /// Every endpoint (a small catalog: each node keeps a copy).
    async fn list_endpoints(&self) -> StoreResult<Vec<Endpoint>>;

    /// Where dispatching stopped in the change feed.
    async fn outbox_cursor(&self) -> StoreResult<FeedCursor>;
    /// Inserts the deliveries that are not there yet with their due items,
    /// then moves the cursor to `cursor` if given.
    async fn enqueue(&self, deliveries: &[Delivery], cursor: Option<&FeedCursor>) -> StoreResult<()>;
    async fn get_delivery(&self, endpoint: WebhookId, id: DeliveryId) -> StoreResult<Option<Delivery>>;
    /// Takes the delivery's lease until `until_ms` if it is free at
    /// `now_ms` (unix ms): one node at a time attempts a delivery. `false`:
    /// another holds it. The embedded store has one process: always `true`.
    async fn claim_delivery(
        &self,
        endpoint: WebhookId,
        id: DeliveryId,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreResult<bool>;
    /// Gives a lease back without an attempt (the claimed item was stale).
    async fn release_delivery(&self, endpoint: WebhookId, id: DeliveryId) -> StoreResult<()>;
    /// Stores a delivery after an attempt (its lease given back), schedules
    /// its next attempt if it is still pending, and removes `done` (the due
    /// item just worked).
    async fn update_delivery(&self, delivery: &Delivery, done: Option<&Due>) -> StoreResult<()>;
    /// An endpoint's deliveries, newest first, older than `before` if given.
    async fn list_deliveries(
        &self,
        endpoint: WebhookId,
        before: Option<DeliveryId>,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>>;
}

/// The due item of a delivery's next attempt, if it has one.
pub fn next_due(delivery: &Delivery) -> Option<Due> {
    let at = delivery.next_attempt_at?;
    (delivery.status == crate::domain::webhook::DeliveryStatus::Pending)
        .then(|| Due::new(super::Queue::Deliver, at, super::DueItem::Delivery(delivery.endpoint_id, delivery.id)))
}
