//! Heap bytes per tracked dedup key, counted by a wrapping global allocator
//! (exact, unlike RSS, which the store's page cache dominates): a campaign's
//! bloom filter holding N keys, and its idempotency window filled to its
//! configured capacity with postback leads. Uses the default config's sizes.
//!
//!     mem_per_key 1000000 10000000

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clickledger::config::{Config, Overrides};
use clickledger::domain::ids::{AffiliateId, CampaignId};
use clickledger::domain::model::Lead;
use clickledger::engine::dedup::{LayeredBloom, Window};
use clickledger::store::{DedupKey, Keyed};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn lead(i: u64) -> Keyed {
    Keyed::Lead(Lead {
        revenue_cents: Some(1000),
        payout_cents: 200,
        ..Lead::verified(CampaignId(1), AffiliateId(1), "TxPIrTDA".into(), format!("seed-{i:09}"), 0)
    })
}

fn main() {
    let engine = Config::load_from(None, &[], &Overrides::default()).expect("default config").engine;
    for n in std::env::args().skip(1).map(|a| a.parse::<u64>().expect("a key count")) {
        let (before, started) = (live(), Instant::now());
        let mut bloom = LayeredBloom::new(engine.bloom_expected_keys, engine.bloom_fp_rate);
        (0..n).for_each(|i| bloom.set(&DedupKey::External(format!("seed-{i:09}"))));
        let bytes = live() - before;
        let took = started.elapsed().as_secs_f64();
        println!(
            "bloom, {n} keys: {} layers, {bytes} bytes, {:.2} bytes/key, set {:.0} ns/key",
            bloom.layers(),
            bytes as f64 / n as f64,
            took * 1e9 / n as f64
        );
    }
    let capacity = engine.window_capacity;
    let before = live();
    let mut window = Window::new(capacity, Duration::from_secs(engine.window_ttl_secs));
    let now = Instant::now();
    for i in 0..capacity as u64 {
        let keyed = lead(i);
        window.insert(keyed.dedup_key(), keyed, now);
    }
    let bytes = live() - before;
    println!(
        "window, {capacity} entries (its capacity): {bytes} bytes, {:.0} bytes/entry",
        bytes as f64 / capacity as f64
    );
}
