//! Webhook endpoints and the outbox on the embedded store: each call is one
//! redb transaction, so a page's deliveries, their due items and the cursor
//! past the page commit together.

use redb::{ReadableTable, TableDefinition};

use super::money::{put_due, remove_due};
use super::*;
use crate::domain::ids::{DeliveryId, WebhookId};
use crate::domain::webhook::{Delivery, Endpoint};
use crate::store::hooks::next_due;

pub(super) const WEBHOOKS: TableDefinition<u128, &[u8]> = TableDefinition::new("webhooks");
/// (endpoint, delivery id) → delivery: an endpoint's log, oldest first.
pub(super) const DELIVERIES: TableDefinition<(u128, u128), &[u8]> = TableDefinition::new("deliveries");
const CURSOR_KEY: &str = "outbox_cursor";
/// The dispatcher's cursor (bytes; `meta` holds only numbers).
pub(super) const OUTBOX: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox");

pub(super) fn table_names() -> Vec<String> {
    use redb::TableHandle;
    [WEBHOOKS.name(), DELIVERIES.name(), OUTBOX.name()].map(str::to_string).to_vec()
}

pub(super) fn open_tables(txn: &WriteTransaction) -> StoreResult<()> {
    txn.open_table(WEBHOOKS)?;
    txn.open_table(DELIVERIES)?;
    txn.open_table(OUTBOX)?;
    Ok(())
}

#[async_trait]
impl Hooks for EmbeddedStore {
    async fn put_endpoint(&self, endpoint: &Endpoint, expected_version: Option<u64>) -> StoreResult<bool> {
        let (id, value) = (endpoint.id.0, enc(endpoint));
        self.write(move |txn| {
            let mut table = txn.open_table(WEBHOOKS)?;
            let current: Option<Endpoint> = table.get(id)?.map(|v| dec(v.value())).transpose()?;
            if current.map(|e| e.version) != expected_version {
                return Ok(false);
            }
            table.insert(id, value.as_slice())?;
            Ok(true)
        })
        .await
    }

    async fn delete_endpoint(&self, id: WebhookId) -> StoreResult<()> {
        self.write(move |txn| {
            txn.open_table(WEBHOOKS)?.remove(id.0)?;
            Ok(())
        })
        .await
    }

    async fn get_endpoint(&self, id: WebhookId) -> StoreResult<Option<Endpoint>> {
        self.read(move |txn| get_json(txn, WEBHOOKS, id.0)).await
    }

    async fn list_endpoints(&self) -> StoreResult<Vec<Endpoint>> {
        self.read(|txn| all_json(txn, WEBHOOKS)).await
    }

    async fn outbox_cursor(&self) -> StoreResult<FeedCursor> {
        self.read(|txn| {
            let table = txn.open_table(OUTBOX)?;
            let found = table.get(CURSOR_KEY)?;
            Ok(found.and_then(|v| FeedCursor::from_bytes(v.value())).unwrap_or_default())
        })
        .await
    }

    async fn enqueue(&self, deliveries: &[Delivery], cursor: Option<&FeedCursor>) -> StoreResult<()> {
        let deliveries = deliveries.to_vec();
        let cursor = cursor.map(FeedCursor::to_bytes);
        self.write(move |txn| {
            let mut table = txn.open_table(DELIVERIES)?;
            let mut due = Vec::new();
            for d in &deliveries {
                if table.get((d.endpoint_id.0, d.id.0))?.is_none() {
                    table.insert((d.endpoint_id.0, d.id.0), enc(d).as_slice())?;
                    due.extend(next_due(d));
                }
            }
            drop(table);
            put_due(txn, &due)?;
            if let Some(bytes) = &cursor {
                txn.open_table(OUTBOX)?.insert(CURSOR_KEY, bytes.as_slice())?;
            }
            Ok(())
        })
        .await
    }

    async fn get_delivery(&self, endpoint: WebhookId, id: DeliveryId) -> StoreResult<Option<Delivery>> {
        self.read(move |txn| get_json(txn, DELIVERIES, (endpoint.0, id.0))).await
    }

    async fn claim_delivery(&self, _: WebhookId, _: DeliveryId, _: i64, _: i64) -> StoreResult<bool> {
        Ok(true)
    }

    async fn release_delivery(&self, _: WebhookId, _: DeliveryId) -> StoreResult<()> {
        Ok(())
    }

    async fn update_delivery(&self, delivery: &Delivery, done: Option<&Due>) -> StoreResult<()> {
        let (d, done) = (delivery.clone(), done.cloned());
        self.write(move |txn| {
            txn.open_table(DELIVERIES)?.insert((d.endpoint_id.0, d.id.0), enc(&d).as_slice())?;
            if let Some(done) = &done {
                remove_due(txn, done)?;
            }
            put_due(txn, &next_due(&d).into_iter().collect::<Vec<_>>())
        })
        .await
    }

    async fn list_deliveries(
        &self,
        endpoint: WebhookId,
        before: Option<DeliveryId>,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        self.read(move |txn| {
            let table = txn.open_table(DELIVERIES)?;
            let end = before.map_or(u128::MAX, |b| b.0);
            let mut out = Vec::new();
            for row in table.range((endpoint.0, 0u128)..(endpoint.0, end))?.rev().take(limit) {
                out.push(dec(row?.1.value())?);
            }
            Ok(out)
        })
        .await
    }
}
