//! The outbox: turns what the store committed into webhook deliveries and
//! sends them.
//!
//! Two loops on one timer (`webhooks.poll_ms`):
//! - **dispatch** follows the change feed from the outbox's durable cursor.
//!   A change is in the feed only if its cause committed (the same redb
//!   transaction on the embedded store; confirmed against the stored record
//!   on CQL), so an acknowledged event is never lost and an event is never
//!   made up. Each page becomes deliveries, one per event and subscribed
//!   endpoint, enqueued with their due items before the cursor moves on.
//! - **send** takes due deliveries from the due index and tries each, at
//!   most `max_in_flight` at once and `max_in_flight_per_endpoint` per
//!   endpoint; the rest wait in the store, not in memory, so a slow
//!   receiver never slows ingestion or grows memory. A failed attempt is
//!   scheduled again by `webhooks.retry_schedule`; every attempt of one
//!   delivery carries the same `webhook-id` and body.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::Engine;
use serde_json::{json, Value};

use crate::domain::ids::{AffiliateId, CampaignId, ConversionId, DeliveryId, LeadId, WebhookId};
use crate::domain::model::{ConversionStatus, LeadSource, LeadStatus};
use crate::domain::money::{Payout, Step};
use crate::domain::webhook::{self, Attempt, Audience, Delivery, DeliveryStatus, Endpoint, EndpointKind, Event};
use crate::metrics;
use crate::store::{Change, ChangeEvent, Due, DueItem, Keyed, Queue, StoreResult};

mod send;

/// Changes read per dispatch page.
const PAGE: usize = 500;
/// How often a cursor moved past pages that made no delivery is stored.
const CURSOR_EVERY: Duration = Duration::from_secs(5);

/// One event about to be enqueued, and whose it is: the campaign's
/// advertiser always, the affiliate when there is one.
struct Outgoing {
    event: Event,
    campaign: CampaignId,
    affiliate: Option<AffiliateId>,
}

fn outgoing(
    kind: &str,
    about: &str,
    at: u64,
    data: Value,
    campaign: CampaignId,
    affiliate: Option<AffiliateId>,
) -> Outgoing {
    let event = Event { id: webhook::event_id(kind, about), kind: kind.to_string(), created_at: at, data };
    Outgoing { event, campaign, affiliate }
}

fn json_of<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("records serialize")
}

/// Whether `endpoint`, a postback URL for `scope` (one campaign, or all),
/// fires for an event of `campaign`: a campaign's own URL wins over the
/// affiliate-wide one.
fn postback_applies(
    all: &[Endpoint],
    endpoint: &Endpoint,
    scope: Option<crate::domain::ids::CampaignId>,
    campaign: Option<crate::domain::ids::CampaignId>,
) -> bool {
    match scope {
        Some(c) => Some(c) == campaign,
        None => !all.iter().any(|e| {
            e.owner == endpoint.owner
                && e.enabled
                && matches!(e.kind, EndpointKind::Postback { campaign_id: Some(c), .. } if Some(c) == campaign)
        }),
    }
}

/// Deliveries in flight from this node: which, and how many per endpoint.
#[derive(Default)]
struct InFlight {
    deliveries: HashSet<DeliveryId>,
    per_endpoint: HashMap<WebhookId, usize>,
}

pub struct Outbox {
    engine: Arc<Engine>,
    permits: Arc<Semaphore>,
    in_flight: Mutex<InFlight>,
    retry: crate::config::RetryRule,
    tls: tokio_rustls::TlsConnector,
    cursor: tokio::sync::Mutex<CursorState>,
}

/// The dispatcher's place in the feed, and whether the store has it yet.
struct CursorState {
    cursor: Option<crate::store::FeedCursor>,
    dirty: bool,
    saved: std::time::Instant,
}

impl Outbox {
    /// Fails on an unreadable `webhooks.extra_ca_file`.
    pub fn new(engine: Arc<Engine>) -> Result<Arc<Self>, String> {
        let config = &engine.config.webhooks;
        let retry = config.retry()?;
        let tls = send::tls_connector(&config.extra_ca_file)?;
        let permits = Arc::new(Semaphore::new(config.max_in_flight));
        let cursor =
            tokio::sync::Mutex::new(CursorState { cursor: None, dirty: false, saved: std::time::Instant::now() });
        Ok(Arc::new(Self { engine, permits, in_flight: Mutex::default(), retry, tls, cursor }))
    }

    /// Runs both loops until the process ends. An attempt cut short by the
    /// end is tried again after a restart, under the same id.
    pub fn spawn(self: Arc<Self>) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(self.engine.config.webhooks.poll_ms));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = self.dispatch().await {
                    tracing::warn!(error = %e, "outbox dispatch failed; retrying on the next tick");
                }
                if let Err(e) = self.send_due().await {
                    tracing::warn!(error = %e, "outbox send pass failed; retrying on the next tick");
                }
            }
        });
    }

    /// Follows the feed, a page at a time, while pages come full (so a
    /// tick under steady load reads what came since the last one, not one
    /// tiny page after another). The cursor is stored with the deliveries
    /// a page makes; a run of pages that make none (no endpoint wants them)
    /// stores it at most every `CURSOR_EVERY`, since reading such pages
    /// again after a crash makes nothing either.
    pub async fn dispatch(&self) -> StoreResult<usize> {
        let hooks = &self.engine.hooks;
        let mut state = self.cursor.lock().await;
        if state.cursor.is_none() {
            state.cursor = Some(hooks.outbox_cursor().await?);
        }
        let mut total = 0;
        loop {
            let cursor = state.cursor.clone().unwrap_or_default();
            let page = self.engine.feed.changes(&cursor, crate::domain::unix_now(), PAGE).await?;
            if page.changes.is_empty() {
                state.dirty |= page.next != cursor;
                state.cursor = Some(page.next);
                break;
            }
            let endpoints = hooks.list_endpoints().await?;
            let mut deliveries = Vec::new();
            if !endpoints.is_empty() {
                for change in &page.changes {
                    deliveries.extend(self.deliveries_for(change, &endpoints).await?);
                }
            }
            let full = page.changes.len() >= PAGE;
            if deliveries.is_empty() {
                state.dirty = true;
            } else {
                total += deliveries.len();
                hooks.enqueue(&deliveries, Some(&page.next)).await?;
                metrics::outbox_enqueued(deliveries.len());
                state.dirty = false;
                state.saved = std::time::Instant::now();
            }
            state.cursor = Some(page.next);
            if !full {
                break;
            }
        }
        if state.dirty && state.saved.elapsed() >= CURSOR_EVERY {
            hooks.enqueue(&[], state.cursor.as_ref()).await?;
            state.dirty = false;
            state.saved = std::time::Instant::now();
        }
        Ok(total)
    }

    /// The events a change stands for (its event ids derived from what
    /// they are about, so a change read twice makes the same events).
    async fn events_of(&self, change: &Change) -> StoreResult<Vec<Outgoing>> {
        let at = change.at;
        Ok(match &change.event {
            ChangeEvent::Recorded { record: Keyed::Conversion(c) } => {
                let kind = match c.status {
                    ConversionStatus::Approved => "conversion.recorded",
                    ConversionStatus::PendingReview => "conversion.held",
                    ConversionStatus::Rejected => "conversion.rejected",
                };
                vec![outgoing(kind, &c.id.to_string(), at, json_of(c), c.campaign_id, Some(c.affiliate_id))]
            }
            ChangeEvent::Recorded { record: Keyed::Lead(l) } => {
                let (id, data, aff) = (l.id.to_string(), json_of(l), Some(l.affiliate_id));
                // Held or rejected by the rules or caps: no conversion yet.
                let kinds: &[&str] = match (l.source, l.status) {
                    (LeadSource::Direct, _) => &["lead.submitted"],
                    (_, LeadStatus::PendingReview) => &["conversion.held"],
                    (_, LeadStatus::Rejected) => &["conversion.rejected"],
                    (LeadSource::Postback, _) => &["conversion.recorded"],
                    (LeadSource::Referral, _) => &["referral.confirmed", "conversion.recorded"],
                };
                kinds.iter().map(|k| outgoing(k, &id, at, data.clone(), l.campaign_id, aff)).collect()
            }
            ChangeEvent::Reviewed { lead } => {
                let (id, data, aff) = (lead.id.to_string(), json_of(lead), Some(lead.affiliate_id));
                let kinds: &[&str] = match lead.status {
                    LeadStatus::Verified => &["lead.verified", "conversion.recorded"],
                    _ => &["lead.rejected"],
                };
                kinds.iter().map(|k| outgoing(k, &id, at, data.clone(), lead.campaign_id, aff)).collect()
            }
            ChangeEvent::ConversionReviewed { conversion: c } => {
                let (id, data, aff) = (c.id.to_string(), json_of(c), Some(c.affiliate_id));
                let kinds: &[&str] = match c.status {
                    ConversionStatus::Approved => &["conversion.approved", "conversion.recorded"],
                    _ => &["conversion.rejected"],
                };
                kinds.iter().map(|k| outgoing(k, &id, at, data.clone(), c.campaign_id, aff)).collect()
            }
            ChangeEvent::Moved { payout, step } => {
                let (id, aff) = (payout.id.to_string(), Some(payout.affiliate_id));
                let kind = match step {
                    Step::Escrow => "payout.escrowed",
                    Step::Release => "payout.released",
                    Step::Credit => "payout.credited",
                    Step::Cancel | Step::Clawback => {
                        let data = self.reversed(payout).await?;
                        return Ok(vec![outgoing("conversion.reversed", &id, at, data, payout.campaign_id, aff)]);
                    }
                };
                vec![outgoing(kind, &id, at, json_of(payout), payout.campaign_id, aff)]
            }
            ChangeEvent::Expired { referral: r } => {
                vec![outgoing(
                    "referral.expired",
                    &r.id.to_string(),
                    at,
                    json_of(r),
                    r.campaign_id,
                    Some(r.affiliate_id),
                )]
            }
            ChangeEvent::TrackingConfirmed { campaign: c } => {
                vec![outgoing("campaign.tracking_confirmed", &c.id.to_string(), at, json_of(c), c.id, None)]
            }
        })
    }

    /// A reversed conversion's data: the record as the API shows it, with
    /// its reversal (the payout's) under `reversal`.
    async fn reversed(&self, payout: &Payout) -> StoreResult<Value> {
        let ledger = &self.engine.ledger;
        let record = if let Ok(id) = payout.source.parse::<ConversionId>() {
            ledger.get_conversion_by_id(id).await?.map(|c| json_of(&c))
        } else if let Ok(id) = payout.source.parse::<LeadId>() {
            ledger.get_lead_by_id(id).await?.map(|l| json_of(&l))
        } else {
            None
        };
        let mut data = record.unwrap_or_else(|| json!({"id": payout.source}));
        data["reversal"] = json!({
            "payoutId": payout.id,
            "amountCents": payout.amount_cents,
            "reversedAt": payout.reversed_at,
            "reason": payout.reversal_reason,
        });
        Ok(data)
    }

    async fn deliveries_for(&self, change: &Change, endpoints: &[Endpoint]) -> StoreResult<Vec<Delivery>> {
        let mut out = Vec::new();
        for Outgoing { event, campaign, affiliate } in self.events_of(change).await? {
            let advertiser = self.engine.catalog.campaign(campaign).await?.map(|c| c.advertiser_id);
            let audience = Audience { campaign: Some(campaign), advertiser, affiliate };
            let campaign = Some(campaign);
            let now = self.engine.now();
            // An endpoint hears what happened from its creation on.
            let wanted = endpoints
                .iter()
                .filter(|e| e.wants(&event.kind) && audience.includes(e.owner) && event.created_at >= e.created_at);
            for endpoint in wanted {
                match &endpoint.kind {
                    EndpointKind::Webhook => out.push(Delivery::new(&event, endpoint.id, now)),
                    EndpointKind::Postback { campaign_id, method } => {
                        if !postback_applies(endpoints, endpoint, *campaign_id, campaign) {
                            continue;
                        }
                        let currency = &self.engine.config.webhooks.currency;
                        let url = webhook::fill(&endpoint.url, |m| webhook::macro_value(&event, m, currency));
                        let delivery = Delivery::new(&event, endpoint.id, now);
                        out.push(Delivery { url: Some(url), method: Some(*method), ..delivery });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Starts the due attempts there is room for; returns how many started.
    pub async fn send_due(self: &Arc<Self>) -> StoreResult<usize> {
        let now = self.engine.now();
        let room = self.permits.available_permits();
        if room == 0 {
            return Ok(0);
        }
        let due = self.engine.ledger.due(Queue::Deliver, now, room * 2).await?;
        metrics::outbox_due(due.len(), due.first().map_or(0, |d| now.saturating_sub(d.at)));
        let per_endpoint = self.engine.config.webhooks.max_in_flight_per_endpoint;
        let mut started = 0;
        for item in due {
            let DueItem::Delivery(endpoint, id) = item.item else {
                self.engine.ledger.remove_due(&item).await?;
                continue;
            };
            let Ok(permit) = self.permits.clone().try_acquire_owned() else { break };
            {
                let mut flight = self.in_flight.lock().expect("in-flight lock");
                let busy = flight.per_endpoint.get(&endpoint).copied().unwrap_or(0);
                if busy >= per_endpoint || !flight.deliveries.insert(id) {
                    continue;
                }
                *flight.per_endpoint.entry(endpoint).or_default() += 1;
            }
            started += 1;
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.attempt(endpoint, id, &item).await {
                    tracing::warn!(error = %e, delivery = %id, "a delivery attempt could not be recorded; it runs again");
                }
                let mut flight = me.in_flight.lock().expect("in-flight lock");
                flight.deliveries.remove(&id);
                if let Some(n) = flight.per_endpoint.get_mut(&endpoint) {
                    *n = n.saturating_sub(1);
                }
                drop(permit);
            });
        }
        Ok(started)
    }

    /// One attempt of one delivery, recorded with its next due time.
    async fn attempt(&self, endpoint_id: WebhookId, id: DeliveryId, due: &Due) -> StoreResult<()> {
        let hooks = &self.engine.hooks;
        let now_ms = unix_ms();
        // An attempt ends within the total timeout, so a lease a little
        // longer is never taken from a node still sending.
        let lease_ms = self.engine.config.webhooks.timeout_ms as i64 + 5_000;
        if !hooks.claim_delivery(endpoint_id, id, now_ms, now_ms + lease_ms).await? {
            return Ok(()); // another node is at it
        }
        let Some(mut delivery) = hooks.get_delivery(endpoint_id, id).await? else {
            return self.engine.ledger.remove_due(due).await;
        };
        // Read after the claim: a due item another node already worked (or
        // one left behind by a crash) no longer matches the delivery.
        if delivery.status != DeliveryStatus::Pending || delivery.next_attempt_at != Some(due.at) {
            hooks.release_delivery(endpoint_id, id).await?;
            return self.engine.ledger.remove_due(due).await;
        }
        let endpoint = hooks.get_endpoint(endpoint_id).await?;
        let now = self.engine.now();
        let number = delivery.attempts.len() as u32 + 1;
        let (outcome, attempt) = match &endpoint {
            Some(e) if e.enabled => {
                let sent = send::send(e, &delivery, &self.engine.config.webhooks, &self.tls).await;
                metrics::webhook_delivery(sent.outcome(), sent.duration);
                let ok = sent.ok();
                (ok, sent.into_attempt(number, now))
            }
            Some(_) => (false, Attempt::refused(number, now, "the endpoint is disabled")),
            None => (false, Attempt::refused(number, now, "the endpoint was deleted")),
        };
        delivery.attempts.push(attempt);
        let first_at = delivery.attempts.first().map_or(now, |a| a.at);
        let gone = endpoint.as_ref().is_none_or(|e| !e.enabled);
        let next = if outcome || gone {
            None
        } else {
            let r = &self.retry;
            webhook::next_attempt(&r.schedule, r.every, r.give_up_after, first_at, number, now)
                .map(|at| now + webhook::jitter(at - now, id.0))
        };
        delivery.status = match (outcome, next) {
            (true, _) => DeliveryStatus::Delivered,
            (false, Some(_)) => DeliveryStatus::Pending,
            (false, None) => DeliveryStatus::Failed,
        };
        delivery.next_attempt_at = next;
        hooks.update_delivery(&delivery, Some(due)).await?;
        if let Some(e) = endpoint.filter(|_| delivery.status != DeliveryStatus::Pending) {
            self.count_outcome(e, delivery.status == DeliveryStatus::Delivered).await?;
        }
        Ok(())
    }

    /// Consecutive events that failed for good; too many disable the endpoint.
    async fn count_outcome(&self, endpoint: Endpoint, delivered: bool) -> StoreResult<()> {
        let limit = self.engine.config.webhooks.disable_after_failures;
        for _ in 0..4 {
            let Some(current) = self.engine.hooks.get_endpoint(endpoint.id).await? else { return Ok(()) };
            let mut next = current.clone();
            next.consecutive_failures = if delivered { 0 } else { current.consecutive_failures.saturating_add(1) };
            if next.consecutive_failures == current.consecutive_failures {
                return Ok(());
            }
            if next.enabled && next.consecutive_failures >= limit {
                next.enabled = false;
                next.disabled_reason = Some(format!("disabled after {limit} events in a row failed to deliver"));
                metrics::webhook_disabled();
                tracing::warn!(webhook = %next.id, "a webhook endpoint was disabled after repeated failures");
            }
            next.version = current.version + 1;
            if self.engine.hooks.put_endpoint(&next, Some(current.version)).await? {
                return Ok(());
            }
        }
        Ok(())
    }
}

fn unix_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| d.as_millis() as i64)
}

impl Attempt {
    fn refused(attempt: u32, at: u64, why: &str) -> Self {
        Attempt { attempt, at, status_code: None, error: Some(why.into()), duration_ms: 0 }
    }
}
