//! Every metric name lives here, with the `clickledger_` prefix, base units and
//! bounded labels (route templates, outcomes, reason codes; never ids).

use std::collections::HashMap;
use std::time::Duration;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter, Histogram, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "clickledger_http_requests_total";
pub const HTTP_DURATION: &str = "clickledger_http_request_duration_seconds";
pub const HTTP_CONNECTIONS: &str = "clickledger_http_open_connections";
pub const CLICKS: &str = "clickledger_clicks_total";
pub const CONVERSIONS: &str = "clickledger_conversions_total";
pub const POSTBACKS: &str = "clickledger_postbacks_total";
pub const DEDUP_PATH: &str = "clickledger_dedup_path_total";
pub const BLOOM_REBUILD_DURATION: &str = "clickledger_bloom_rebuild_duration_seconds";
pub const STORE_BATCH_SIZE: &str = "clickledger_store_batch_size";
pub const STORE_FLUSH_DURATION: &str = "clickledger_store_flush_duration_seconds";
pub const STORE_FLUSH_ERRORS: &str = "clickledger_store_flush_errors_total";
pub const MAILBOX_DEPTH: &str = "clickledger_actor_mailbox_depth";
pub const CAMPAIGN_ACTORS: &str = "clickledger_campaign_actors";
pub const OVERLOAD: &str = "clickledger_overload_rejections_total";
pub const MONEY_CENTS: &str = "clickledger_money_moved_cents_total";
pub const PAYOUTS: &str = "clickledger_payouts_total";
pub const REFERRALS: &str = "clickledger_referrals_total";
pub const LEADS: &str = "clickledger_leads_total";
pub const SUPERVISOR_RESTARTS: &str = "clickledger_supervisor_restarts_total";
pub const SUPERVISOR_LAG: &str = "clickledger_supervisor_lag_seconds";
pub const SUPERVISOR_ERRORS: &str = "clickledger_supervisor_errors_total";
pub const READY: &str = "clickledger_ready";
pub const BATCH_REQUESTS: &str = "clickledger_batch_requests_total";
pub const BATCH_ITEMS: &str = "clickledger_batch_items";
pub const BATCH_ITEM_OUTCOMES: &str = "clickledger_batch_item_outcomes_total";
pub const LOG_LINES_DROPPED: &str = "clickledger_log_lines_dropped_total";
pub const WEBHOOK_DELIVERIES: &str = "clickledger_webhook_deliveries_total";
pub const WEBHOOK_DURATION: &str = "clickledger_webhook_delivery_duration_seconds";
pub const WEBHOOKS_DISABLED: &str = "clickledger_webhook_endpoints_disabled_total";
pub const OUTBOX_ENQUEUED: &str = "clickledger_outbox_enqueued_total";
pub const OUTBOX_DUE: &str = "clickledger_outbox_due_deliveries";
pub const OUTBOX_OLDEST: &str = "clickledger_outbox_oldest_due_seconds";
pub const CONVERSION_STATUSES: &str = "clickledger_conversion_statuses_total";
pub const CAPS_REACHED: &str = "clickledger_caps_reached_total";
pub const RULE_HITS: &str = "clickledger_rule_hits_total";

/// Request latency: a redirect takes tens of microseconds, a conversion waits
/// for an fsync (hundreds of microseconds to milliseconds), so the buckets
/// span 50 µs to 2.5 s.
const LATENCY_BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
/// Group-commit sizes: powers of two up to the largest configurable batch.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0];

/// Bloom rebuilds after an actor start: milliseconds for a small campaign,
/// seconds for ten million keys, so the buckets span 1 ms to 2 min.
/// Items per batch request: 1 to the largest configurable batch.
const ITEM_BUCKETS: &[f64] = &[1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10000.0, 100000.0];

const REBUILD_BUCKETS: &[f64] = &[0.001, 0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// Installs the global recorder. Called from `main` only.
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), LATENCY_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(STORE_FLUSH_DURATION.into()), LATENCY_BUCKETS))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(WEBHOOK_DURATION.into()), LATENCY_BUCKETS))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(STORE_BATCH_SIZE.into()), BATCH_BUCKETS))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(BLOOM_REBUILD_DURATION.into()), REBUILD_BUCKETS))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(BATCH_ITEMS.into()), ITEM_BUCKETS))
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())?;
    describe();
    register_at_zero();
    Ok(handle)
}

/// Runs the exporter's upkeep (drains histogram buffers) off the scrape path.
pub fn spawn_upkeep(handle: PrometheusHandle) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
}

fn describe() {
    describe_counter!(HTTP_REQUESTS, "HTTP requests by route template, method and status.");
    describe_counter!(
        CONVERSION_STATUSES,
        "Recorded conversions and leads by status (approved, pending_review, rejected) and reason."
    );
    describe_counter!(CAPS_REACHED, "Conversions rejected by a cap, by kind (conversions, payout_cents) and period.");
    describe_counter!(RULE_HITS, "Fraud rule hits by rule and action (flag, reject).");
    describe_counter!(LOG_LINES_DROPPED, "Log lines dropped: the log queue was full or stderr refused them.");
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "HTTP request duration by route template.");
    describe_gauge!(HTTP_CONNECTIONS, "Open HTTP connections.");
    describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook delivery attempts by outcome (delivered, rejected, timeout, refused, error)."
    );
    describe_histogram!(WEBHOOK_DURATION, Unit::Seconds, "Duration of one webhook delivery attempt.");
    describe_counter!(WEBHOOKS_DISABLED, "Webhook endpoints disabled after consecutive failed events.");
    describe_counter!(OUTBOX_ENQUEUED, "Deliveries the outbox enqueued from the change feed.");
    describe_gauge!(
        OUTBOX_DUE,
        "Deliveries due now as of the outbox's last pass (capped at twice webhooks.max_in_flight)."
    );
    describe_gauge!(OUTBOX_OLDEST, Unit::Seconds, "How long the oldest due delivery has been waiting: the outbox lag.");
    describe_counter!(CLICKS, "Redirect clicks by kind (human, bot).");
    describe_counter!(CONVERSIONS, "Conversions by outcome and reason.");
    describe_counter!(POSTBACKS, "Postbacks by outcome and reason.");
    describe_counter!(BATCH_REQUESTS, "Batch ingestion requests answered 200, by route template.");
    describe_histogram!(BATCH_ITEMS, "Items per answered batch request, by route template.");
    describe_counter!(BATCH_ITEM_OUTCOMES, "Batch items by route template and status.");
    describe_counter!(DEDUP_PATH, "Which dedup path answered a keyed event.");
    describe_histogram!(
        BLOOM_REBUILD_DURATION,
        Unit::Seconds,
        "Time to rebuild a campaign actor's bloom filter from the store after it started."
    );
    describe_histogram!(STORE_BATCH_SIZE, "Events per group commit.");
    describe_histogram!(STORE_FLUSH_DURATION, Unit::Seconds, "Duration of one durable group commit.");
    describe_counter!(STORE_FLUSH_ERRORS, "Group commits the store failed.");
    describe_gauge!(MAILBOX_DEPTH, "Messages waiting in campaign actor mailboxes, summed.");
    describe_gauge!(CAMPAIGN_ACTORS, "Live campaign actors.");
    describe_counter!(OVERLOAD, "Requests refused with 503 because a bound was reached.");
    describe_counter!(
        MONEY_CENTS,
        Unit::Count,
        "Cents moved by step: fund, escrow, release, credit, cancel, clawback."
    );
    describe_counter!(PAYOUTS, "Payout transitions: created, escrowed, released, credited, reversed.");
    describe_counter!(REFERRALS, "Referral events: created, confirmed, expired.");
    describe_counter!(LEADS, "Direct lead events: submitted, verified, rejected.");
    describe_counter!(SUPERVISOR_RESTARTS, "Money supervisor children restarted after a failure.");
    describe_gauge!(
        SUPERVISOR_LAG,
        Unit::Seconds,
        "Age of the oldest due item each money supervisor has not done yet."
    );
    describe_counter!(SUPERVISOR_ERRORS, "Ticks of a money supervisor child that failed.");
    describe_gauge!(READY, "1 while the node would answer GET /readyz with 200, else 0.");
}

/// Series that alerts compute `rate`/`increase` over exist from the start at
/// 0: a counter born at its first failure hides that failure from them.
/// (The supervisors' counters: `supervisor_started`.)
fn register_at_zero() {
    counter!(LOG_LINES_DROPPED).absolute(0);
    counter!(STORE_FLUSH_ERRORS).increment(0);
    // The bounds engine::registry refuses requests at.
    for bound in ["mailbox", "pending_writes"] {
        counter!(OVERLOAD, "bound" => bound).increment(0);
    }
    for outcome in ["delivered", "rejected", "timeout", "refused", "error"] {
        counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(0);
    }
    counter!(WEBHOOKS_DISABLED).increment(0);
    counter!(OUTBOX_ENQUEUED).increment(0);
    gauge!(OUTBOX_OLDEST).set(0.0);
    ready(false);
}

/// Readiness as a gauge, so Prometheus can alert on a node that is up but
/// not ready. Set by whoever decides readiness (start-up, /readyz, shutdown).
pub fn log_lines_dropped(n: u64) {
    counter!(LOG_LINES_DROPPED).increment(n);
}

pub fn ready(ok: bool) {
    gauge!(READY).set(if ok { 1.0 } else { 0.0 });
}

/// Registers a money supervisor's failure counters at 0 (see `register_at_zero`).
pub fn supervisor_started(name: &'static str) {
    counter!(SUPERVISOR_RESTARTS, "supervisor" => name).increment(0);
    counter!(SUPERVISOR_ERRORS, "supervisor" => name).increment(0);
}

/// One money movement of `cents` (step: fund, escrow, release, credit, cancel, clawback).
pub fn money_moved(step: &'static str, cents: u64) {
    counter!(MONEY_CENTS, "step" => step).increment(cents);
    if step != "fund" {
        let event = match step {
            "escrow" => "escrowed",
            "release" => "released",
            "credit" => "credited",
            _ => "reversed",
        };
        counter!(PAYOUTS, "event" => event).increment(1);
    }
}

pub fn payout_created() {
    counter!(PAYOUTS, "event" => "created").increment(1);
}

pub fn referral(event: &'static str) {
    counter!(REFERRALS, "event" => event).increment(1);
}

pub fn lead(event: &'static str) {
    counter!(LEADS, "event" => event).increment(1);
}

pub fn supervisor_restart(name: &'static str) {
    counter!(SUPERVISOR_RESTARTS, "supervisor" => name).increment(1);
}

pub fn supervisor_error(name: &'static str) {
    counter!(SUPERVISOR_ERRORS, "supervisor" => name).increment(1);
}

pub fn supervisor_lag(name: &'static str, seconds: u64) {
    gauge!(SUPERVISOR_LAG, "supervisor" => name).set(seconds as f64);
}

/// One answered request. The handles are registered on first use and kept
/// per worker thread, so a request costs a small map lookup and two atomic
/// updates instead of the recorder's lookup by name and formatted labels.
pub fn http_request(route: &'static str, method: &str, status: u16, elapsed: Duration) {
    const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"];
    let method = METHODS.iter().position(|m| *m == method).unwrap_or(METHODS.len());
    let key = (identity(route), method as u8, status);
    HTTP_HANDLES.with_borrow_mut(|handles| {
        let (requests, duration) = handles.entry(key).or_insert_with(|| {
            let method = METHODS.get(method).copied().unwrap_or("OTHER");
            let requests =
                counter!(HTTP_REQUESTS, "route" => route, "method" => method, "status" => status.to_string());
            (requests, histogram!(HTTP_DURATION, "route" => route))
        });
        requests.increment(1);
        duration.record(elapsed.as_secs_f64());
    });
}

type HttpKey = (usize, u8, u16);

/// A `&'static str` label value named by its address and length: as good a
/// key as its text (every value is a literal in the code), without hashing it.
fn identity(value: &'static str) -> usize {
    value.as_ptr() as usize ^ (value.len() << 48)
}

thread_local! {
    /// Bounded by routes × methods × statuses the code answers: a few hundred.
    static HTTP_HANDLES: std::cell::RefCell<HashMap<HttpKey, (Counter, Histogram), BuildFast>> =
        const { std::cell::RefCell::new(HashMap::with_hasher(BuildFast)) };
}

/// A multiply-xor hasher for `HttpKey`: its parts are chosen by the code (route
/// templates, methods, status codes), never by a client, so SipHash's
/// flooding resistance buys nothing here.
#[derive(Clone, Copy, Default)]
struct BuildFast;

#[derive(Default)]
struct FastHasher(u64);

impl std::hash::BuildHasher for BuildFast {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }
}

pub fn connections(delta: f64) {
    thread_local!(static OPEN: metrics::Gauge = gauge!(HTTP_CONNECTIONS));
    OPEN.with(|g| g.increment(delta));
}

pub fn click(bot: bool) {
    cached(CLICKS, ("kind", if bot { "bot" } else { "human" }), None).increment(1);
}

/// Outcome of a conversion (`postback == false`) or postback; `reason` is
/// "none" unless the event was ignored or rejected.
pub fn keyed_outcome(postback: bool, outcome: &'static str, reason: &'static str) {
    let name = if postback { POSTBACKS } else { CONVERSIONS };
    cached(name, ("outcome", outcome), Some(("reason", reason))).increment(1);
}

/// One answered batch of `items` items.
pub fn batch(route: &'static str, items: usize) {
    counter!(BATCH_REQUESTS, "route" => route).increment(1);
    histogram!(BATCH_ITEMS, "route" => route).record(items as f64);
}

pub fn batch_item(route: &'static str, status: &'static str) {
    cached(BATCH_ITEM_OUTCOMES, ("route", route), Some(("status", status))).increment(1);
}

pub fn dedup_path(path: &'static str) {
    cached(DEDUP_PATH, ("path", path), None).increment(1);
}

type Label = (&'static str, &'static str);

thread_local! {
    /// Counters of the per-event paths by (name, label values), as
    /// `HTTP_HANDLES`; bounded by the outcomes and reasons the code names.
    static COUNTERS: std::cell::RefCell<HashMap<(usize, usize, usize), Counter, BuildFast>> =
        const { std::cell::RefCell::new(HashMap::with_hasher(BuildFast)) };
}

/// The counter `name{a, b}`, registered on first use per thread.
fn cached(name: &'static str, a: Label, b: Option<Label>) -> Counter {
    let key = (identity(name), identity(a.1), b.map_or(0, |b| identity(b.1)));
    COUNTERS.with_borrow_mut(|counters| {
        let make = || match b {
            Some(b) => counter!(name, a.0 => a.1, b.0 => b.1),
            None => counter!(name, a.0 => a.1),
        };
        counters.entry(key).or_insert_with(make).clone()
    })
}

pub fn bloom_rebuilt(took: Duration) {
    histogram!(BLOOM_REBUILD_DURATION).record(took.as_secs_f64());
}

pub fn flush(events: usize, elapsed: Duration, ok: bool) {
    histogram!(STORE_BATCH_SIZE).record(events as f64);
    histogram!(STORE_FLUSH_DURATION).record(elapsed.as_secs_f64());
    if !ok {
        counter!(STORE_FLUSH_ERRORS).increment(1);
    }
}

pub fn mailbox(delta: f64) {
    thread_local!(static DEPTH: metrics::Gauge = gauge!(MAILBOX_DEPTH));
    DEPTH.with(|g| g.increment(delta));
}

pub fn campaign_actors(delta: f64) {
    gauge!(CAMPAIGN_ACTORS).increment(delta);
}

pub fn overload(what: &'static str) {
    counter!(OVERLOAD, "bound" => what).increment(1);
}

pub fn webhook_delivery(outcome: &'static str, took: Duration) {
    counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(1);
    histogram!(WEBHOOK_DURATION).record(took.as_secs_f64());
}

pub fn webhook_disabled() {
    counter!(WEBHOOKS_DISABLED).increment(1);
}

pub fn outbox_enqueued(n: usize) {
    counter!(OUTBOX_ENQUEUED).increment(n as u64);
}

/// What the outbox's last send pass saw: deliveries due, and the wait of the oldest.
pub fn outbox_due(due: usize, oldest_secs: u64) {
    gauge!(OUTBOX_DUE).set(due as f64);
    gauge!(OUTBOX_OLDEST).set(oldest_secs as f64);
}

/// A newly recorded conversion or lead's status; `reason` "none" unless rejected.
pub fn conversion_status(status: &'static str, reason: &str) {
    counter!(CONVERSION_STATUSES, "status" => status, "reason" => reason.to_string()).increment(1);
}

pub fn cap_reached(kind: &'static str, period: &'static str) {
    counter!(CAPS_REACHED, "kind" => kind, "period" => period).increment(1);
}

pub fn rule_hit(rule: &'static str, action: &'static str) {
    counter!(RULE_HITS, "rule" => rule, "action" => action).increment(1);
}
