//! A campaign actor's bloom filter, rebuilt from the store off the actor.
//!
//! The filter only spares the store work: a bloom miss skips the read that a
//! hit needs, but the commit is insert-if-absent on every backend and decides
//! "new" or "duplicate" by itself. So the actor serves from its first message
//! (every key goes to the commit meanwhile) instead of waiting for millions
//! of keys to be read, and gets the filter as a message when it is built. The
//! keys stream in chunks, so the rebuild never holds them all at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::dedup::LayeredBloom;
use crate::config::EngineConfig;
use crate::domain::ids::CampaignId;
use crate::store::{DedupKey, Store, StoreResult};

/// A finished rebuild, sent to the actor it was built for.
pub struct Rebuilt {
    pub bloom: LayeredBloom<DedupKey>,
    pub keys: u64,
    pub took: Duration,
}

/// Whoever the filter is built for (the campaign actor): the rebuild
/// hands its result back through this instead of knowing the actor's
/// message type.
pub trait Owner: Send + Sync + 'static {
    fn deliver(&self, rebuilt: Rebuilt);
    /// The owner stopped: the rebuild gives up.
    fn gone(&self) -> bool;
}

/// Chunks buffered between the store's reader and the filter being filled.
const CHANNEL_CHUNKS: usize = 4;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Starts the rebuild for `me`. A store failure is retried with back-off (the
/// actor serves without the filter meanwhile); the task ends when the filter
/// is delivered or the actor is gone.
pub fn spawn(id: CampaignId, store: Arc<dyn Store>, config: &EngineConfig, owner: impl Owner) {
    let (per_layer, fp_rate) = (config.bloom_expected_keys, config.bloom_fp_rate);
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let started = Instant::now();
            match build(&*store, id, per_layer, fp_rate, &owner).await {
                Ok(Some((bloom, keys))) => {
                    owner.deliver(Rebuilt { bloom, keys, took: started.elapsed() });
                    return;
                }
                Ok(None) => return,
                Err(e) => tracing::warn!(campaign = %id, error = %e, "bloom rebuild failed; retrying"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            if owner.gone() {
                return;
            }
        }
    });
}

/// The filled filter and its key count, or `None` if the actor went away
/// (dropping the receiver then stops the store's reader too).
async fn build(
    store: &dyn Store,
    id: CampaignId,
    per_layer: usize,
    fp_rate: f64,
    owner: &impl Owner,
) -> StoreResult<Option<(LayeredBloom<DedupKey>, u64)>> {
    let (tx, mut rx) = mpsc::channel::<Vec<DedupKey>>(CHANNEL_CHUNKS);
    let fill = async move {
        let mut bloom = LayeredBloom::new(per_layer, fp_rate);
        while let Some(chunk) = rx.recv().await {
            if owner.gone() {
                return None;
            }
            chunk.iter().for_each(|k| bloom.set(k));
        }
        Some(bloom)
    };
    let (read, bloom) = tokio::join!(store.dedup_keys(id, tx), fill);
    let keys = read?;
    Ok(bloom.map(|b| (b, keys)))
}
