//! Readiness: may a load balancer send this node requests? Four parts, each
//! checked for real: the store (one cheap read), its schema (the version this
//! build expects), the campaign actors (the registry still takes work), and
//! the money supervisors (every duty has a running child). A node that has
//! begun shutting down is not ready, so traffic moves away while it drains.
//!
//! Evaluated on each `GET /readyz` and every few seconds by `spawn_watch`, so
//! the `clickledger_ready` gauge is current without anyone calling /readyz.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;

use super::supervisor::{Duty, MoneySupervisorMsg};
use super::Engine;
use crate::metrics;

/// A check that has not answered within this is failing: a probe must
/// answer well inside a load balancer's own probe timeout.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the gauge is refreshed without a /readyz call.
const WATCH_EVERY: Duration = Duration::from_secs(5);

pub struct Readiness {
    engine: Arc<Engine>,
    supervisor: ActorRef<MoneySupervisorMsg>,
    draining: AtomicBool,
}

/// One part's state.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Clone, Debug)]
pub struct Report {
    pub checks: Vec<Check>,
    /// Each money supervisor's lag in seconds (informational, never failing).
    pub lag: Vec<(Duty, u64)>,
}

impl Report {
    pub fn ready(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    pub fn failing(&self) -> Vec<&'static str> {
        self.checks.iter().filter(|c| !c.ok).map(|c| c.name).collect()
    }
}

fn check(name: &'static str, ok: bool, detail: impl Into<String>) -> Check {
    Check { name, ok, detail: detail.into() }
}

impl Readiness {
    pub fn new(engine: Arc<Engine>, supervisor: ActorRef<MoneySupervisorMsg>) -> Self {
        Self { engine, supervisor, draining: AtomicBool::new(false) }
    }

    /// Shutdown has begun: from now on the node reports not ready.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
        metrics::ready(false);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Runs every check (concurrently, each bounded) and sets the gauge.
    pub async fn evaluate(&self) -> Report {
        let (store, supervisors) = tokio::join!(self.store_checks(), self.supervisor_check());
        let actors = self.engine.registry.health();
        let draining = self.draining.load(Ordering::Relaxed);
        let mut checks = vec![check("shutdown", !draining, if draining { "draining" } else { "serving" })];
        checks.extend(store);
        checks.push(check(
            "actors",
            actors.accepting,
            if actors.accepting {
                format!("{} campaign actors running, {} dead ones reaped", actors.live, actors.reaped)
            } else {
                "the campaign registry is closed (shutting down)".to_string()
            },
        ));
        let (supervisor_check, lag) = supervisors;
        checks.push(supervisor_check);
        let report = Report { checks, lag };
        metrics::ready(report.ready());
        report
    }

    /// `store` and `schema`; a store that cannot be read has no known schema.
    async fn store_checks(&self) -> [Check; 2] {
        match tokio::time::timeout(CHECK_TIMEOUT, self.engine.store.health()).await {
            Ok(Ok(schema)) => [check("store", true, "reachable"), check("schema", schema.current, schema.detail)],
            Ok(Err(e)) => {
                [check("store", false, e.to_string()), check("schema", false, "unknown: the store is unreachable")]
            }
            Err(_) => [
                check("store", false, format!("no answer within {} ms", CHECK_TIMEOUT.as_millis())),
                check("schema", false, "unknown: the store is unreachable"),
            ],
        }
    }

    async fn supervisor_check(&self) -> (Check, Vec<(Duty, u64)>) {
        let ms = CHECK_TIMEOUT.as_millis() as u64;
        let running = ractor::call_t!(self.supervisor, MoneySupervisorMsg::Running, ms);
        let lag = ractor::call_t!(self.supervisor, MoneySupervisorMsg::Lag, ms).unwrap_or_default();
        let check = match running {
            Ok(running) => {
                let stopped: Vec<&str> = Duty::ALL.iter().filter(|d| !running.contains(d)).map(|d| d.name()).collect();
                if stopped.is_empty() {
                    check("supervisors", true, format!("{} of {} running", running.len(), Duty::ALL.len()))
                } else {
                    check("supervisors", false, format!("not running: {}", stopped.join(", ")))
                }
            }
            Err(e) => check("supervisors", false, format!("the money supervisor did not answer: {e}")),
        };
        (check, lag)
    }

    /// Re-evaluates every few seconds so Prometheus sees `clickledger_ready`
    /// change even when nothing probes /readyz. Ends when shutdown begins.
    pub fn spawn_watch(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(WATCH_EVERY);
            while !me.draining.load(Ordering::Relaxed) {
                tick.tick().await;
                let report = me.evaluate().await;
                if !report.ready() {
                    tracing::warn!(failing = ?report.failing(), "not ready");
                }
            }
        });
    }
}
