//! The embedded store's group commit (`Store::commit`): one redb write
//! transaction and one fsync for the whole batch, whatever its size. A batch
//! of 1,000 new rows against a batch of one shows what a row costs once the
//! fsync is shared. Every batch holds new keys (new postback leads, with
//! their escrow due items, or new clicks), built outside the timed part, and
//! the tables grow as the bench runs, as they would under load.
//!
//! `cargo bench -p clickledger-benches --bench group_commit`

mod fixtures;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use clickledger::domain::model::{CampaignStats, Click, Lead};
use clickledger::store::{Batch, Keyed, Outcome, Store};
use fixtures::{click, lead, runtime, store, CAMPAIGN};

/// Times `iters` commits of the batches `make` builds (untimed), checking
/// that each wrote what it was given.
fn commits(c: &mut Criterion, name: &str, rows: u64, mut make: impl FnMut(u64) -> Batch) {
    let rt = runtime();
    let (store, _dir) = store();
    let mut group = c.benchmark_group("group commit");
    group.throughput(Throughput::Elements(rows));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let batch = Arc::new(make(rows));
                    let start = Instant::now();
                    let outcomes = store.commit(batch.clone()).await.expect("commit");
                    spent += start.elapsed();
                    assert_eq!(outcomes.len(), batch.keyed.len());
                    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Inserted)), "new keys only");
                }
                spent
            })
        })
    });
    group.finish();
}

/// The actor's batches always carry its campaign's counters (empty when
/// nothing was a duplicate or ignored); the store rewrites them once per batch.
fn batch(clicks: Vec<Click>, leads: Vec<Lead>) -> Batch {
    let keyed = leads.into_iter().map(Keyed::Lead).collect();
    Batch { clicks, keyed, stats: vec![(CAMPAIGN, CampaignStats::default())], claims: vec![] }
}

fn leads(c: &mut Criterion) {
    let mut n = 0u64;
    let mut leads = |rows: u64| {
        batch(
            vec![],
            (0..rows)
                .map(|_| {
                    n += 1;
                    lead(format!("order-{n}"))
                })
                .collect(),
        )
    };
    commits(c, "1 new postback lead", 1, &mut leads);
    commits(c, "1000 new postback leads", 1000, &mut leads);
}

fn clicks(c: &mut Criterion) {
    let clicks = |rows: u64| batch((0..rows).map(|_| click()).collect(), vec![]);
    commits(c, "1 click", 1, clicks);
    commits(c, "1000 clicks", 1000, clicks);
}

criterion_group!(benches, leads, clicks);
criterion_main!(benches);
