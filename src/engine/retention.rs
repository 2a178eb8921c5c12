//! Raw click retention: every hour (and once at start), click log records
//! older than the retention are dropped whole; counters and stats stay.
//! The change feed's rows older than `retention.change_days` go too.
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

/// One pass: returns how many click records went (and expires changes).
pub async fn expire_once(engine: &Engine) -> crate::store::StoreResult<usize> {
    let days = keep_days(engine);
    let total = drain(|| engine.store.expire_clicks(days, engine.now(), PER_WRITE)).await?;
    // The feed's cursor is wall-clock time on CQL, so its age is too.
    let change_days = engine.config.retention.change_days;
    drain(|| engine.feed.expire_changes(change_days, crate::domain::unix_now(), PER_WRITE)).await?;
    Ok(total)
}

/// Calls `step` until it removes fewer than `PER_WRITE`; the total removed.
async fn drain<F, Fut>(mut step: F) -> crate::store::StoreResult<usize>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::store::StoreResult<usize>>,
{
    let mut total = 0;
    loop {
        let removed = step().await?;
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
