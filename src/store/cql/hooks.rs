//! Webhook endpoints and the outbox on CQL (see `store::hooks`). A page is
//! enqueued due items first, then deliveries (inserted if absent, so a page
//! dispatched twice, by a restart or by two nodes, keeps the first copy and
//! its attempts), then the cursor.

use futures::StreamExt;
use scylla::statement::prepared::PreparedStatement;
use scylla::DeserializeRow;

use super::statements::{prepare, Kind};
use super::{blob, json, parse, session::Profiles, ScyllaStore};
use crate::domain::ids::{DeliveryId, WebhookId};
use crate::domain::webhook::{Delivery, Endpoint};
use crate::store::hooks::next_due;
use crate::store::{Due, FeedCursor, Hooks, Ledger, StoreResult};

const CURSOR: &str = "dispatch";

pub struct HookStatements {
    insert_if_absent: PreparedStatement,
    update_if: PreparedStatement,
    delete: PreparedStatement,
    select: PreparedStatement,
    scan: PreparedStatement,
    select_cursor: PreparedStatement,
    update_cursor: PreparedStatement,
    insert_delivery_if_absent: PreparedStatement,
    update_delivery: PreparedStatement,
    claim: PreparedStatement,
    release: PreparedStatement,
    select_delivery: PreparedStatement,
    list_deliveries: PreparedStatement,
}

impl HookStatements {
    pub async fn prepare(
        session: &scylla::client::session::Session,
        profiles: &Profiles,
        ks: &str,
    ) -> StoreResult<Self> {
        use Kind::*;
        let p = |kind, cql: &'static str| prepare(session, profiles, ks, kind, cql);
        Ok(Self {
            insert_if_absent: p(Conditional, "INSERT INTO {ks}.webhooks (id, version, body) VALUES (?, ?, ?) IF NOT EXISTS")
                .await?,
            update_if: p(Conditional, "UPDATE {ks}.webhooks SET version = ?, body = ? WHERE id = ? IF version = ?").await?,
            delete: p(Plain, "DELETE FROM {ks}.webhooks WHERE id = ?").await?,
            select: p(SerialRead, "SELECT body FROM {ks}.webhooks WHERE id = ?").await?,
            scan: p(Scan, "SELECT body FROM {ks}.webhooks").await?,
            select_cursor: p(Plain, "SELECT cursor FROM {ks}.outbox WHERE name = ?").await?,
            update_cursor: p(Plain, "UPDATE {ks}.outbox SET cursor = ? WHERE name = ?").await?,
            insert_delivery_if_absent: p(
                Conditional,
                "INSERT INTO {ks}.deliveries (endpoint, id, body, lease_until) VALUES (?, ?, ?, 0) IF NOT EXISTS",
            )
            .await?,
            update_delivery: p(
                Plain,
                "UPDATE {ks}.deliveries SET body = ?, lease_until = 0 WHERE endpoint = ? AND id = ?",
            )
            .await?,
            claim: p(
                Conditional,
                "UPDATE {ks}.deliveries SET lease_until = ?, lease_owner = ? WHERE endpoint = ? AND id = ? IF lease_until < ?",
            )
            .await?,
            release: p(Plain, "UPDATE {ks}.deliveries SET lease_until = 0 WHERE endpoint = ? AND id = ?").await?,
            select_delivery: p(Plain, "SELECT body FROM {ks}.deliveries WHERE endpoint = ? AND id = ?").await?,
            list_deliveries: p(Plain, "SELECT body FROM {ks}.deliveries WHERE endpoint = ? AND id < ? LIMIT ?").await?,
        })
    }
}

#[derive(DeserializeRow)]
struct CursorRow {
    cursor: Option<Vec<u8>>,
}

#[derive(DeserializeRow)]
struct BodyRow {
    body: String,
}

#[async_trait::async_trait]
impl Hooks for ScyllaStore {
    async fn put_endpoint(&self, endpoint: &Endpoint, expected_version: Option<u64>) -> StoreResult<bool> {
        let st = &self.st.hooks;
        let (id, version, body) = (blob(endpoint.id.0), endpoint.version as i64, json(endpoint));
        let result = match expected_version {
            None => self.exec(&st.insert_if_absent, (id, version, body)).await?,
            Some(v) => self.exec(&st.update_if, (version, body, id, v as i64)).await?,
        };
        super::schema::applied(result)
    }

    async fn delete_endpoint(&self, id: WebhookId) -> StoreResult<()> {
        self.exec(&self.st.hooks.delete, (blob(id.0),)).await.map(drop)
    }

    async fn get_endpoint(&self, id: WebhookId) -> StoreResult<Option<Endpoint>> {
        self.body(&self.st.hooks.select, (blob(id.0),)).await
    }

    async fn list_endpoints(&self) -> StoreResult<Vec<Endpoint>> {
        self.scan(&self.st.hooks.scan).await
    }

    async fn outbox_cursor(&self) -> StoreResult<FeedCursor> {
        let rows = self.exec(&self.st.hooks.select_cursor, (CURSOR,)).await?.into_rows_result()?;
        let row: Option<CursorRow> = rows.maybe_first_row()?;
        Ok(row.and_then(|r| r.cursor).and_then(|b| FeedCursor::from_bytes(&b)).unwrap_or_default())
    }

    async fn enqueue(&self, deliveries: &[Delivery], cursor: Option<&FeedCursor>) -> StoreResult<()> {
        let due: Vec<Due> = deliveries.iter().filter_map(next_due).collect();
        self.put_due(&due).await?;
        let st = &self.st.hooks;
        let inserts = deliveries
            .iter()
            .map(|d| self.exec(&st.insert_delivery_if_absent, (blob(d.endpoint_id.0), blob(d.id.0), json(d))));
        for done in futures::future::join_all(inserts).await {
            done?;
        }
        if let Some(cursor) = cursor {
            self.exec(&st.update_cursor, (cursor.to_bytes(), CURSOR)).await?;
        }
        Ok(())
    }

    async fn get_delivery(&self, endpoint: WebhookId, id: DeliveryId) -> StoreResult<Option<Delivery>> {
        self.body(&self.st.hooks.select_delivery, (blob(endpoint.0), blob(id.0))).await
    }

    async fn claim_delivery(
        &self,
        endpoint: WebhookId,
        id: DeliveryId,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreResult<bool> {
        let owner = self.node_name.clone();
        let values = (until_ms, owner, blob(endpoint.0), blob(id.0), now_ms);
        super::schema::applied(self.exec(&self.st.hooks.claim, values).await?)
    }

    async fn release_delivery(&self, endpoint: WebhookId, id: DeliveryId) -> StoreResult<()> {
        self.exec(&self.st.hooks.release, (blob(endpoint.0), blob(id.0))).await.map(drop)
    }

    /// The next attempt's due item first, so a crash in between leaves an
    /// item that finds the delivery as it was (and tries it again).
    async fn update_delivery(&self, delivery: &Delivery, done: Option<&Due>) -> StoreResult<()> {
        if let Some(next) = next_due(delivery) {
            self.put_due(&[next]).await?;
        }
        let st = &self.st.hooks;
        self.exec(&st.update_delivery, (json(delivery), blob(delivery.endpoint_id.0), blob(delivery.id.0))).await?;
        if let Some(done) = done {
            self.remove_due(done).await?;
        }
        Ok(())
    }

    async fn list_deliveries(
        &self,
        endpoint: WebhookId,
        before: Option<DeliveryId>,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        let before = blob(before.map_or(u128::MAX, |b| b.0));
        let values = (blob(endpoint.0), before, limit.min(i32::MAX as usize) as i32);
        let pager = self.session.execute_iter(self.st.hooks.list_deliveries.clone(), values).await?;
        let mut rows = pager.rows_stream::<BodyRow>()?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().await {
            out.push(parse(&row?.body)?);
        }
        Ok(out)
    }
}
