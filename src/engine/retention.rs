//! Raw click retention: every hour (and once at start), click log records
//! older than the retention are dropped whole; counters and stats stay.
//! `retention.click_days = 0` (the default) keeps clicks as long as the
//! longest attribution window of any campaign (90 days while there is
//! none), since no click is attributed after its window.

use std::sync::Arc;
use std::time::Duration;

use super::Engine;

const EVERY: Duration = Duration::from_secs(3600);
/// Records deleted per write, so expiry never holds the writer for long.
const PER_WRITE: usize = 1000;
/// Without any campaign: the default attribution window.
const DEFAULT_DAYS: u32 = 90;

/// The retention in days the engine applies now.
pub fn keep_days(engine: &Engine) -> u32 {
    match engine.config.retention.click_days {
        0 => engine.catalog.longest_window_days().unwrap_or(DEFAULT_DAYS).max(1),
        days => days,
    }
}

/// One pass: returns how many records went.
pub async fn expire_once(engine: &Engine) -> crate::store::StoreResult<usize> {
    let days = keep_days(engine);
    let mut total = 0;
    loop {
        let removed = engine.store.expire_clicks(days, engine.now(), PER_WRITE).await?;
        total += removed;
        if removed < PER_WRITE {
            return Ok(total);
        }
    }
}

pub fn spawn(engine: Arc<Engine>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            match expire_once(&engine).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(records = n, keep_days = keep_days(&engine), "expired old click batches"),
                Err(e) => tracing::warn!(error = %e, "click expiry failed; next try in an hour"),
            }
        }
    });
}
