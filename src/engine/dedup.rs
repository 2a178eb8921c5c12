//! A campaign actor's hot dedup state: a layered bloom filter that says "new"
//! without a store read, and a window of recent answers that says "duplicate"
//! without one. Neither ever decides that a key is new when it is not: the
//! bloom filter has no false negatives, and the store decides every bloom hit
//! the window cannot answer.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use bloomfilter::Bloom;

/// A scalable bloom filter: when a layer holds its expected number of keys a
/// new one is added, so the false-positive rate stays near the configured one
/// however large a campaign grows (the rate sums over layers; we halve it per
/// layer so the sum stays bounded by twice the configured rate).
pub struct LayeredBloom<K: Hash> {
    layers: Vec<Bloom<K>>,
    in_last: usize,
    per_layer: usize,
    fp_rate: f64,
}

impl<K: Hash> LayeredBloom<K> {
    pub fn new(per_layer: usize, fp_rate: f64) -> Self {
        let first = Bloom::new_for_fp_rate(per_layer, fp_rate).expect("sizes checked at config load");
        Self { layers: vec![first], in_last: 0, per_layer, fp_rate }
    }

    pub fn check(&self, key: &K) -> bool {
        self.layers.iter().any(|l| l.check(key))
    }

    pub fn set(&mut self, key: &K) {
        if self.in_last >= self.per_layer {
            let rate = self.fp_rate / 2f64.powi(self.layers.len() as i32);
            let layer = Bloom::new_for_fp_rate(self.per_layer, rate.max(1e-12)).expect("sizes checked at config load");
            self.layers.push(layer);
            self.in_last = 0;
        }
        self.layers.last_mut().expect("one layer at least").set(key);
        self.in_last += 1;
    }

    pub fn layers(&self) -> usize {
        self.layers.len()
    }
}

/// The campaign's bloom filter, or, while it is being rebuilt, the keys set
/// since the rebuild began, which it may not have read.
pub enum Filter<K: Hash> {
    Rebuilding(Vec<K>),
    Ready(LayeredBloom<K>),
}

impl<K: Hash + Clone> Filter<K> {
    /// `None` while rebuilding: the filter cannot say "new" yet.
    pub fn check(&self, key: &K) -> Option<bool> {
        match self {
            Filter::Rebuilding(_) => None,
            Filter::Ready(bloom) => Some(bloom.check(key)),
        }
    }

    pub fn set(&mut self, key: &K) {
        match self {
            Filter::Rebuilding(meanwhile) => meanwhile.push(key.clone()),
            Filter::Ready(bloom) => bloom.set(key),
        }
    }

    /// Installs a rebuilt filter with the keys set meanwhile added to it;
    /// returns how many those were. A second rebuild replaces nothing.
    pub fn install(&mut self, mut bloom: LayeredBloom<K>) -> usize {
        let Filter::Rebuilding(meanwhile) = self else { return 0 };
        meanwhile.iter().for_each(|k| bloom.set(k));
        let added = meanwhile.len();
        *self = Filter::Ready(bloom);
        added
    }

    pub fn is_ready(&self) -> bool {
        matches!(self, Filter::Ready(_))
    }
}

/// Recent key → answer, bounded by count and by age (oldest evicted first).
pub struct Window<K, V> {
    entries: HashMap<K, (V, Instant)>,
    order: VecDeque<(K, Instant)>,
    capacity: usize,
    ttl: Duration,
}

impl<K: Hash + Eq + Clone, V: Clone> Window<K, V> {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self { entries: HashMap::new(), order: VecDeque::new(), capacity, ttl }
    }

    pub fn get(&self, key: &K, now: Instant) -> Option<V> {
        self.entries.get(key).filter(|(_, at)| now.duration_since(*at) <= self.ttl).map(|(v, _)| v.clone())
    }

    pub fn insert(&mut self, key: K, value: V, now: Instant) {
        self.entries.insert(key.clone(), (value, now));
        self.order.push_back((key, now));
        while self.order.len() > self.capacity
            || self.order.front().is_some_and(|(_, at)| now.duration_since(*at) > self.ttl)
        {
            let (old, at) = self.order.pop_front().expect("checked non-empty");
            // Only drop the entry if this queue slot is its latest insertion.
            if self.entries.get(&old).is_some_and(|(_, t)| *t == at) {
                self.entries.remove(&old);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bloom_filter_never_forgets_a_key_even_past_its_expected_size() {
        let mut bloom = LayeredBloom::new(10, 0.01);
        for i in 0..100u32 {
            bloom.set(&i);
        }
        assert!((0..100u32).all(|i| bloom.check(&i)));
        assert_eq!(bloom.layers(), 10);
    }

    #[test]
    fn a_rebuilt_filter_holds_the_keys_set_while_it_was_built() {
        let mut filter = Filter::Rebuilding(Vec::new());
        filter.set(&1u32);
        assert_eq!(filter.check(&1), None, "no answer before the rebuild lands");
        let mut rebuilt = LayeredBloom::new(100, 0.01);
        rebuilt.set(&2u32);
        assert_eq!(filter.install(rebuilt), 1);
        assert_eq!((filter.check(&1), filter.check(&2)), (Some(true), Some(true)));
        filter.set(&3);
        assert_eq!(filter.check(&3), Some(true));
        assert_eq!(filter.install(LayeredBloom::new(100, 0.01)), 0, "a ready filter is kept");
        assert_eq!(filter.check(&2), Some(true));
    }

    #[test]
    fn the_window_forgets_the_oldest_keys_past_its_capacity() {
        let now = Instant::now();
        let mut w = Window::new(2, Duration::from_secs(60));
        w.insert("a", 1, now);
        w.insert("b", 2, now);
        w.insert("c", 3, now);
        assert_eq!(w.get(&"a", now), None);
        assert_eq!(w.get(&"c", now), Some(3));
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn the_window_forgets_keys_older_than_its_ttl() {
        let start = Instant::now();
        let mut w = Window::new(10, Duration::from_secs(5));
        w.insert("a", 1, start);
        assert_eq!(w.get(&"a", start + Duration::from_secs(5)), Some(1));
        assert_eq!(w.get(&"a", start + Duration::from_secs(6)), None);
        w.insert("b", 2, start + Duration::from_secs(6));
        assert!(w.get(&"a", start).is_none() && w.len() == 1);
    }
}
