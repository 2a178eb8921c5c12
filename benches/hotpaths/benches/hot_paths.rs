//! Hot paths of a click and a postback, one at a time, without I/O:
//! click-token signing and verification (every redirect signs, every
//! conversion verifies), the bloom filter's check of a new key (every keyed
//! event) at one and at ten layers, bot detection (every click) and the
//! postback body's decoding.
//!
//! Not here yet: the bloom's set. The campaign actor's round trip and the
//! embedded store's group commit, which need a runtime and a data
//! directory, are in `actor_round_trip.rs` and `group_commit.rs`.
//!
//! `cargo bench -p clickledger-benches`

use std::hint::black_box;

use clickledger::http::ingest::PostbackBody;
use criterion::{criterion_group, criterion_main, Criterion};

use clickledger::domain::bot::is_bot;
use clickledger::domain::ids::{AffiliateId, CampaignId, ClickId};
use clickledger::domain::token::{ClickClaims, TokenKeys};
use clickledger::engine::dedup::LayeredBloom;

fn claims() -> ClickClaims {
    ClickClaims {
        click: ClickId::random(),
        campaign: CampaignId::random(),
        affiliate: AffiliateId::random(),
        issued_at: 1_790_000_000,
        flagged: false,
        paid: false,
    }
}

fn tokens(c: &mut Criterion) {
    let keys = TokenKeys::new(vec![b"bench-token-key-0123456789abcdef".to_vec()]);
    let token = keys.sign(&claims());
    let mut forged = token.clone().into_bytes();
    let i = forged.len() - 3;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let fixed = claims();
    c.bench_function("token sign", |b| b.iter(|| keys.sign(black_box(&fixed))));
    c.bench_function("token verify", |b| b.iter(|| keys.verify(black_box(&token)).is_ok()));
    c.bench_function("token verify, forged", |b| b.iter(|| keys.verify(black_box(&forged)).is_err()));
}

fn bloom(c: &mut Criterion) {
    // The engine's defaults: 100 000 keys per layer at 0.1 % false positives;
    // past that, a new layer with half the rate, and every check asks every
    // layer. A new key is always absent: the check that costs the most.
    for keys in [50_000u128, 1_000_000] {
        let mut bloom: LayeredBloom<u128> = LayeredBloom::new(100_000, 0.001);
        for k in 0..keys {
            bloom.set(&k);
        }
        let layers = bloom.layers();
        let mut key = u128::MAX / 2;
        c.bench_function(&format!("bloom check, new key, {keys} keys in {layers} layers"), |b| {
            b.iter(|| {
                key += 1;
                bloom.check(black_box(&key))
            })
        });
    }
}

fn bots(c: &mut Criterion) {
    let ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
    c.bench_function("bot check, browser user agent", |b| b.iter(|| is_bot(black_box(ua))));
}

fn postback_parse(c: &mut Criterion) {
    let body = br#"{"swarm_ref":"v6UAJsMk","externalId":"order_12345","eventType":"PURCHASE","revenueCents":1499,"metadata":{"orderId":"order_12345"}}"#;
    c.bench_function("postback body decode", |b| {
        b.iter(|| serde_json::from_slice::<PostbackBody>(black_box(body)).unwrap())
    });
}

criterion_group!(benches, tokens, bloom, bots, postback_parse);
criterion_main!(benches);
