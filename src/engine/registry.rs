//! Campaign id → that campaign's actor, spawned on first use.
//!
//! Two requests racing to create the same actor: the `DashMap` entry holds an
//! `Arc<OnceCell>` inserted under the shard lock, so both get the same cell;
//! `get_or_try_init` lets exactly one of them run the spawn while the other
//! awaits its result. No second actor for a campaign can exist.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use ractor::{Actor, ActorRef, ActorStatus};
use tokio::sync::OnceCell;

use super::campaign::{CampaignActor, CampaignArgs, CampaignMsg, Load};
use crate::config::EngineConfig;
use crate::domain::ids::CampaignId;
use crate::metrics;
use crate::store::Store;

#[derive(Clone)]
pub struct CampaignHandle {
    actor: ActorRef<CampaignMsg>,
    load: Arc<Load>,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// A bound was reached; the caller should answer 503 + Retry-After.
    #[error("the campaign's queue is full")]
    Full,
    /// The actor is gone (stopping, or failed to start).
    #[error("the campaign actor is not running: {0}")]
    Down(String),
}

pub struct Registry {
    actors: DashMap<CampaignId, Arc<OnceCell<CampaignHandle>>>,
    store: Arc<dyn Store>,
    config: EngineConfig,
    /// Set when shutdown starts draining: no new actor is spawned after it.
    closed: AtomicBool,
    /// Campaigns whose drain has not finished (what a late shutdown reports).
    draining: AtomicUsize,
}

/// What readiness learns about the campaign actors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActorsHealth {
    /// False once shutdown has started draining the actors.
    pub accepting: bool,
    pub live: usize,
    /// Dead actors found and forgotten (the next request spawns a fresh one).
    pub reaped: usize,
}

impl Registry {
    pub fn new(store: Arc<dyn Store>, config: EngineConfig) -> Self {
        Self { actors: DashMap::new(), store, config, closed: AtomicBool::new(false), draining: AtomicUsize::new(0) }
    }

    /// Sends `msg` to the campaign's actor, refusing when its mailbox or its
    /// unflushed writes are at their bounds (so memory stays bounded).
    pub async fn send(&self, campaign: CampaignId, msg: CampaignMsg) -> Result<(), SendError> {
        let handle = self.handle(campaign).await?;
        if handle.load.pending.load(Ordering::Relaxed) >= self.config.max_pending_writes {
            metrics::overload("pending_writes");
            return Err(SendError::Full);
        }
        if handle.load.mailbox.fetch_add(1, Ordering::Relaxed) >= self.config.mailbox_capacity {
            handle.load.mailbox.fetch_sub(1, Ordering::Relaxed);
            metrics::overload("mailbox");
            return Err(SendError::Full);
        }
        metrics::mailbox(1.0);
        if let Err(e) = handle.actor.send_message(msg) {
            handle.load.mailbox.fetch_sub(1, Ordering::Relaxed);
            metrics::mailbox(-1.0);
            // A dead actor is forgotten so the next request spawns a fresh one.
            self.actors.remove(&campaign);
            return Err(SendError::Down(e.to_string()));
        }
        Ok(())
    }

    async fn handle(&self, campaign: CampaignId) -> Result<CampaignHandle, SendError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(SendError::Down("the engine is shutting down".into()));
        }
        // Read lock first: the hot path must not serialize on a shard's write lock.
        let existing = self.actors.get(&campaign).map(|e| e.value().clone());
        let cell = match existing {
            Some(cell) => cell,
            None => self.actors.entry(campaign).or_default().clone(),
        };
        // A failed spawn leaves nothing behind: the next request tries afresh.
        let handle = cell.get_or_try_init(|| self.spawn(campaign)).await.inspect_err(|_| {
            self.actors.remove(&campaign);
        })?;
        Ok(handle.clone())
    }

    async fn spawn(&self, id: CampaignId) -> Result<CampaignHandle, SendError> {
        let load = Arc::new(Load::default());
        let args = CampaignArgs { id, store: self.store.clone(), config: self.config.clone(), load: load.clone() };
        let (actor, _join) =
            Actor::spawn(None, CampaignActor, args).await.map_err(|e| SendError::Down(e.to_string()))?;
        Ok(CampaignHandle { actor, load })
    }

    /// Readiness: forgets actors that died (so the next request for their
    /// campaign spawns a fresh one instead of failing once) and counts the rest.
    pub fn health(&self) -> ActorsHealth {
        let before = self.actors.len();
        self.actors.retain(|_, cell| {
            cell.get().is_none_or(|h| !matches!(h.actor.get_status(), ActorStatus::Stopping | ActorStatus::Stopped))
        });
        let live = self.actors.len();
        ActorsHealth { accepting: !self.closed.load(Ordering::Relaxed), live, reaped: before.saturating_sub(live) }
    }

    /// Campaigns whose shutdown flush has not finished yet.
    pub fn draining(&self) -> usize {
        self.draining.load(Ordering::Relaxed)
    }

    /// Closes the registry, then flushes every campaign's pending writes and
    /// stops its actor, all campaigns at once.
    pub async fn drain(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let handles: Vec<CampaignHandle> = self.actors.iter().filter_map(|e| e.value().get().cloned()).collect();
        self.draining.store(handles.len(), Ordering::Relaxed);
        futures::future::join_all(handles.into_iter().map(|handle| async move {
            let _ = ractor::call!(handle.actor, CampaignMsg::Drain);
            handle.actor.stop_and_wait(Some("shutdown".into()), None).await.ok();
            self.draining.fetch_sub(1, Ordering::Relaxed);
        }))
        .await;
        self.actors.clear();
    }
}
