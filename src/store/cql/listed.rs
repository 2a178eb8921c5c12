//! Directory rows this process has written (`due_buckets`,
//! `change_buckets`), so each is written once per process rather than
//! once per item. A row is marked only after its write succeeded: a failed
//! one is written again with the next item, so an item never sits in a
//! bucket its readers cannot find. Bounded: past `CAP` the set starts over
//! (rewriting a directory row is harmless).

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Mutex;

const CAP: usize = 4096;

pub struct Listed<K> {
    seen: Mutex<HashSet<K>>,
}

impl<K> Default for Listed<K> {
    fn default() -> Self {
        Self { seen: Mutex::new(HashSet::new()) }
    }
}

impl<K: Hash + Eq + Copy> Listed<K> {
    /// The keys of `keys` whose directory rows this process has not written.
    pub fn unlisted(&self, keys: impl IntoIterator<Item = K>) -> Vec<K> {
        let seen = self.seen.lock().expect("not poisoned");
        keys.into_iter().filter(|k| !seen.contains(k)).collect()
    }

    /// Records that the rows of `keys` were written.
    pub fn mark(&self, keys: &[K]) {
        let mut seen = self.seen.lock().expect("not poisoned");
        if seen.len() + keys.len() > CAP {
            seen.clear();
        }
        seen.extend(keys.iter().copied());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_listed_only_once_marked_and_the_set_stays_bounded() {
        let listed = Listed::default();
        assert_eq!(listed.unlisted([1, 2]), vec![1, 2], "nothing is listed before its write");
        listed.mark(&[1u64]);
        assert_eq!(listed.unlisted([1, 2]), vec![2], "an unmarked (failed) write is tried again");
        listed.mark(&(10..10 + CAP as u64).collect::<Vec<_>>());
        assert_eq!(listed.unlisted([1]), vec![1], "past the bound the set starts over");
        assert!(listed.seen.lock().unwrap().len() <= CAP);
    }
}
