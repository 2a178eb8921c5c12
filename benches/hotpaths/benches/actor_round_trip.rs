//! A request routed to its campaign actor and back, through the engine's own
//! `Registry` (what `Engine::postback` and `Engine::click` call after their
//! catalog lookups), against an embedded store in a temporary directory:
//!
//! - a repeated postback, answered from the actor's idempotency window (no
//!   store I/O on the request's path);
//! - the same message shape over a bare tokio channel to a task that answers
//!   at once: what the registry and the actor add on top of two hops;
//! - a new postback, answered once its one-row group commit is on disk;
//! - a click handed to the actor (the visitor does not wait for more).
//!
//! The timed loops run as a task on the runtime, as a request handler does.
//! The window hit and the bare round trip run twice: on the server's
//! multi-threaded runtime (two hops may each wake a thread on another core)
//! and on a current-thread runtime (no cross-thread wake-ups: the CPU cost of
//! the path itself). No metrics recorder is installed, so the engine's
//! counters are no-ops here.
//!
//! `cargo bench -p clickledger-benches --bench actor_round_trip`

mod fixtures;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

use clickledger::engine::campaign::{CampaignMsg, KeyedReply};
use clickledger::engine::registry::Registry;
use clickledger::store::{Keyed, Store};
use fixtures::{click, engine_config, lead, runtime, store, CAMPAIGN};

/// Runs `timed` as a task on `rt` and returns the time it reports.
fn on_task<F: Future<Output = Duration> + Send + 'static>(rt: &Runtime, timed: F) -> Duration {
    rt.block_on(rt.spawn(timed)).expect("the timed task finishes")
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// The two runtimes the short round trips are measured on.
fn runtimes() -> [(&'static str, Runtime); 2] {
    [("multi-thread", runtime()), ("current-thread", current_thread())]
}

/// What `Engine::record` does: send, then wait for the actor's answer.
async fn record(registry: &Registry, keyed: Keyed) -> KeyedReply {
    let (tx, rx) = oneshot::channel();
    registry.send(CAMPAIGN, CampaignMsg::Keyed(keyed, None, tx.into())).await.expect("the actor takes it");
    rx.await.expect("the actor answers")
}

fn postbacks(c: &mut Criterion) {
    for (flavour, rt) in runtimes() {
        let (store, _dir) = store();
        let registry = Arc::new(Registry::new(store as Arc<dyn Store>, engine_config()));
        let repeat = Keyed::Lead(lead("order-repeated".into()));
        let first = rt.block_on(record(&registry, repeat.clone()));
        assert!(matches!(first, KeyedReply::Recorded(_)), "the first one is written: {first:?}");
        c.bench_function(&format!("actor round trip, repeated postback (window hit), {flavour}"), |b| {
            b.iter_custom(|iters| {
                let (registry, repeat) = (registry.clone(), repeat.clone());
                on_task(&rt, async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let reply = record(&registry, repeat.clone()).await;
                        assert!(matches!(reply, KeyedReply::Duplicate(_)), "answered as a repeat: {reply:?}");
                    }
                    start.elapsed()
                })
            })
        });
    }
}

fn new_postbacks(c: &mut Criterion) {
    let rt = runtime();
    let (store, _dir) = store();
    let registry = Arc::new(Registry::new(store as Arc<dyn Store>, engine_config()));
    let mut n = 0u64;
    c.bench_function("actor round trip, new postback (one-row commit, durable)", |b| {
        b.iter_custom(|iters| {
            let registry = registry.clone();
            let first = n;
            n += iters;
            on_task(&rt, async move {
                let mut spent = Duration::ZERO;
                for i in first..first + iters {
                    let fresh = Keyed::Lead(lead(format!("order-{i}")));
                    let start = Instant::now();
                    let reply = record(&registry, fresh).await;
                    spent += start.elapsed();
                    assert!(matches!(reply, KeyedReply::Recorded(_)), "a new key is written: {reply:?}");
                }
                spent
            })
        })
    });
}

/// The baseline: the same record sent over an unbounded channel (ractor's
/// mailbox is one) to a task that sends it straight back on a oneshot.
fn bare(c: &mut Criterion) {
    for (flavour, rt) in runtimes() {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Keyed, oneshot::Sender<Keyed>)>();
        rt.spawn(async move {
            while let Some((keyed, reply)) = rx.recv().await {
                let _ = reply.send(keyed);
            }
        });
        let repeat = Keyed::Lead(lead("order-repeated".into()));
        c.bench_function(&format!("bare round trip, tokio mpsc + oneshot to a task, {flavour}"), |b| {
            b.iter_custom(|iters| {
                let (tx, repeat) = (tx.clone(), repeat.clone());
                on_task(&rt, async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let (reply, answer) = oneshot::channel();
                        tx.send((repeat.clone(), reply)).expect("the task runs");
                        answer.await.expect("the task answers");
                    }
                    start.elapsed()
                })
            })
        });
    }
}

/// Clicks are sent in runs shorter than a batch, each run followed (untimed)
/// by a new postback whose answer means the run's clicks are on disk too: a
/// batch takes keyed writes first, then up to `max_batch - 1` clicks. So the
/// actor keeps up and the mailbox and pending bounds are never reached.
fn clicks(c: &mut Criterion) {
    const RUN: u64 = 1000;
    let rt = runtime();
    let (store, _dir) = store();
    let config = engine_config();
    assert!(RUN < config.max_batch as u64, "a run fits in one batch behind its barrier");
    let registry = Arc::new(Registry::new(store as Arc<dyn Store>, config));
    let mut barriers = 0u64;
    c.bench_function("click handed to the actor (sender's side)", |b| {
        b.iter_custom(|iters| {
            let registry = registry.clone();
            let first = barriers;
            barriers += iters.div_ceil(RUN);
            on_task(&rt, async move {
                let mut spent = Duration::ZERO;
                let (mut left, mut barrier) = (iters, first);
                while left > 0 {
                    let run: Vec<_> = (0..left.min(RUN)).map(|_| click()).collect();
                    left -= run.len() as u64;
                    let start = Instant::now();
                    for click in run {
                        registry.send(CAMPAIGN, CampaignMsg::Click(click, vec![])).await.expect("within bounds");
                    }
                    spent += start.elapsed();
                    barrier += 1;
                    let reply = record(&registry, Keyed::Lead(lead(format!("barrier-{barrier}")))).await;
                    assert!(matches!(reply, KeyedReply::Recorded(_)), "{reply:?}");
                }
                spent
            })
        })
    });
}

criterion_group!(benches, postbacks, bare, new_postbacks, clicks);
criterion_main!(benches);
