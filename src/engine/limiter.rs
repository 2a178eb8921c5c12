//! Token buckets. The browser path has one per (publishable key, client
//! network): publishable keys are public, so without it anyone could replay
//! a page's calls at the store. Writes with a secret key have one per key
//! (`limits.*_writes_per_sec`), so one leaked or runaway key cannot flood
//! the store. Over a limit the answer is 429 with the wait in Retry-After.
//! Limits are per node.

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Beyond this many tracked buckets, idle ones are swept (at most once a
/// second, so a flood of new clients cannot make every call a sweep).
const MAX_BUCKETS: usize = 100_000;
const IDLE: Duration = Duration::from_secs(60);
const SWEEP_EVERY: Duration = Duration::from_secs(1);

pub struct Limiter<K: Hash + Eq> {
    buckets: DashMap<K, (f64, Instant)>,
    per_sec: f64,
    burst: f64,
    last_sweep: Mutex<Instant>,
}

impl<K: Hash + Eq> Limiter<K> {
    /// `per_sec` of 0 turns the limit off.
    pub fn new(per_sec: f64, burst: f64) -> Self {
        Self { buckets: DashMap::new(), per_sec, burst: burst.max(1.0), last_sweep: Mutex::new(Instant::now()) }
    }

    /// Takes one token, or says how long until one is there.
    pub fn take(&self, key: K, now: Instant) -> Result<(), Duration> {
        if self.per_sec <= 0.0 {
            return Ok(());
        }
        if self.buckets.len() > MAX_BUCKETS {
            self.sweep(now);
        }
        let mut entry = self.buckets.entry(key).or_insert((self.burst, now));
        let (tokens, at) = *entry;
        let refilled = (tokens + now.saturating_duration_since(at).as_secs_f64() * self.per_sec).min(self.burst);
        if refilled < 1.0 {
            *entry = (refilled, now);
            return Err(Duration::from_secs_f64((1.0 - refilled) / self.per_sec));
        }
        *entry = (refilled - 1.0, now);
        Ok(())
    }

    fn sweep(&self, now: Instant) {
        let Ok(mut last) = self.last_sweep.try_lock() else { return };
        if now.saturating_duration_since(*last) >= SWEEP_EVERY {
            *last = now;
            self.buckets.retain(|_, (_, at)| now.saturating_duration_since(*at) < IDLE);
        }
    }
}

/// The part of a client address a bucket is keyed by: the whole IPv4
/// address, the /64 of an IPv6 one (one subscriber's network: rotating
/// through it must not buy fresh buckets).
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds_and_clients_are_separate() {
        let limiter = Limiter::new(2.0, 3.0);
        let t = Instant::now();
        assert!((0..3).all(|_| limiter.take("a", t).is_ok()));
        let wait = limiter.take("a", t).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500), "{wait:?}");
        assert!(limiter.take("b", t).is_ok(), "another key has its own bucket");
        assert!(limiter.take("a", t + Duration::from_millis(500)).is_ok(), "half a second refills one token");
        assert!(limiter.take("a", t + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn a_rate_of_zero_is_no_limit() {
        let limiter = Limiter::new(0.0, 0.0);
        assert!((0..10_000).all(|_| limiter.take(1, Instant::now()).is_ok()));
    }

    #[test]
    fn addresses_of_one_ipv6_network_share_a_bucket() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(client_network(a), client_network(b));
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(client_network(v4), v4);
    }
}
