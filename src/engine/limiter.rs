//! Abuse limit for the browser path: a token bucket per (publishable key,
//! client address). Publishable keys are public, so without it anyone could
//! replay a page's calls at the store; with it they get 429 first.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::domain::keys::KeyHash;

/// Beyond this many tracked clients, idle buckets are swept.
const MAX_BUCKETS: usize = 100_000;
const IDLE: Duration = Duration::from_secs(60);

pub struct Limiter {
    buckets: DashMap<(KeyHash, IpAddr), (f64, Instant)>,
    per_sec: f64,
    burst: f64,
}

impl Limiter {
    pub fn new(per_sec: f64, burst: f64) -> Self {
        Self { buckets: DashMap::new(), per_sec, burst }
    }

    /// Takes one token; `false` means the caller is over its limit.
    pub fn allow(&self, key: KeyHash, client: IpAddr, now: Instant) -> bool {
        if self.buckets.len() > MAX_BUCKETS {
            self.buckets.retain(|_, (_, at)| now.duration_since(*at) < IDLE);
        }
        let mut entry = self.buckets.entry((key, client)).or_insert((self.burst, now));
        let (tokens, at) = *entry;
        let refilled = (tokens + now.duration_since(at).as_secs_f64() * self.per_sec).min(self.burst);
        if refilled < 1.0 {
            *entry = (refilled, now);
            return false;
        }
        *entry = (refilled - 1.0, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds_and_clients_are_separate() {
        let limiter = Limiter::new(2.0, 3.0);
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t = Instant::now();
        assert!((0..3).all(|_| limiter.allow([0; 32], a, t)));
        assert!(!limiter.allow([0; 32], a, t), "the burst is spent");
        assert!(limiter.allow([0; 32], b, t), "another client has its own bucket");
        assert!(limiter.allow([0; 32], a, t + Duration::from_millis(500)), "half a second refills one token");
        assert!(!limiter.allow([0; 32], a, t + Duration::from_millis(500)));
    }
}
