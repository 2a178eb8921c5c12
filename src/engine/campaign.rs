//! One actor per campaign: it owns the campaign's dedup state and its pending
//! writes, so every decision about a campaign's keys happens in one place,
//! one message at a time, without locks.
//!
//! Group commit: a keyed event is queued and the actor posts itself `Flush`.
//! Because the mailbox is FIFO, everything that arrived before that `Flush`
//! (and everything that piled up during the previous fsync) is in the batch
//! when it is handled: under load, batches grow by themselves. Clicks do not
//! wait for an answer, so they ride along or go on a timer (`flush_interval`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::dedup::{LayeredBloom, Window};
use crate::config::EngineConfig;
use crate::domain::ids::CampaignId;
use crate::domain::model::{CampaignStats, Click};
use crate::metrics;
use crate::store::{Batch, DedupKey, Keyed, Outcome, Store};

pub struct CampaignActor;

pub enum CampaignMsg {
    /// Log a click; the visitor has already been redirected.
    Click(Click),
    /// Record a conversion or lead unless its key is already on record.
    Keyed(Keyed, RpcReplyPort<KeyedReply>),
    /// Count a conversion ignored for `reason` (for the campaign's stats).
    Ignored(&'static str),
    /// Write everything pending now.
    Flush,
    /// Write everything pending, then answer (used at shutdown and by tests).
    Drain(RpcReplyPort<()>),
}

#[derive(Clone, Debug)]
pub enum KeyedReply {
    Recorded(Keyed),
    /// Already on record; carries the record that won.
    Duplicate(Keyed),
    /// The store failed; nothing was recorded and the caller may retry.
    Unavailable(String),
}

/// Counters shared with the front end, which reads them to refuse work (503)
/// before a campaign's queues grow past their bounds.
#[derive(Default)]
pub struct Load {
    pub mailbox: AtomicUsize,
    pub pending: AtomicUsize,
}

pub struct CampaignArgs {
    pub id: CampaignId,
    pub store: Arc<dyn Store>,
    pub config: EngineConfig,
    pub load: Arc<Load>,
}

pub struct CampaignState {
    id: CampaignId,
    store: Arc<dyn Store>,
    config: EngineConfig,
    load: Arc<Load>,
    bloom: LayeredBloom<DedupKey>,
    window: Window<DedupKey, Keyed>,
    pending: Pending,
    flush_posted: bool,
    timer_armed: bool,
}

/// Writes accepted but not yet durable. `waiters` holds repeats of a key that
/// is already in this batch: they are answered "duplicate" once it commits.
#[derive(Default)]
struct Pending {
    clicks: Vec<Click>,
    keyed: Vec<(Keyed, RpcReplyPort<KeyedReply>)>,
    waiters: HashMap<DedupKey, Vec<RpcReplyPort<KeyedReply>>>,
    stats: CampaignStats,
}

impl Pending {
    fn len(&self) -> usize {
        self.clicks.len() + self.keyed.len()
    }
}

pub fn dedup_key(keyed: &Keyed) -> DedupKey {
    match keyed {
        Keyed::Conversion(c) => DedupKey::Click(c.click_id),
        Keyed::Lead(l) => DedupKey::External(l.external_id.clone()),
    }
}

impl Actor for CampaignActor {
    type Msg = CampaignMsg;
    type State = CampaignState;
    type Arguments = CampaignArgs;

    /// Rebuilds the bloom filter from the store so that no duplicate slips
    /// through after a restart.
    async fn pre_start(
        &self,
        _me: ActorRef<CampaignMsg>,
        args: CampaignArgs,
    ) -> Result<CampaignState, ActorProcessingErr> {
        let mut bloom = LayeredBloom::new(args.config.bloom_expected_keys, args.config.bloom_fp_rate);
        for key in args.store.dedup_keys(args.id).await? {
            bloom.set(&key);
        }
        let window = Window::new(args.config.window_capacity, Duration::from_secs(args.config.window_ttl_secs));
        metrics::campaign_actors(1.0);
        Ok(CampaignState {
            id: args.id,
            store: args.store,
            config: args.config,
            load: args.load,
            bloom,
            window,
            pending: Pending::default(),
            flush_posted: false,
            timer_armed: false,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<CampaignMsg>,
        msg: CampaignMsg,
        state: &mut CampaignState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CampaignMsg::Click(click) => {
                state.received();
                state.on_click(click, &me);
            }
            CampaignMsg::Keyed(keyed, reply) => {
                state.received();
                state.on_keyed(keyed, reply, &me).await;
            }
            CampaignMsg::Ignored(reason) => {
                state.received();
                *state.pending.stats.conversions_ignored.entry(reason.to_string()).or_default() += 1;
                state.arm_timer(&me);
            }
            CampaignMsg::Flush => {
                state.flush_posted = false;
                state.timer_armed = false;
                state.flush(&me).await;
            }
            CampaignMsg::Drain(reply) => {
                while state.pending.len() > 0 || !state.pending.stats.is_empty() {
                    if !state.flush(&me).await {
                        break;
                    }
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn post_stop(&self, me: ActorRef<CampaignMsg>, state: &mut CampaignState) -> Result<(), ActorProcessingErr> {
        state.flush(&me).await;
        metrics::campaign_actors(-1.0);
        Ok(())
    }
}

impl CampaignState {
    fn received(&self) {
        self.load.mailbox.fetch_sub(1, Ordering::Relaxed);
        metrics::mailbox(-1.0);
    }

    fn on_click(&mut self, click: Click, me: &ActorRef<CampaignMsg>) {
        self.pending.clicks.push(click);
        self.load.pending.fetch_add(1, Ordering::Relaxed);
        if self.pending.len() >= self.config.max_batch {
            self.post_flush(me);
        } else {
            self.arm_timer(me);
        }
    }

    async fn on_keyed(&mut self, keyed: Keyed, reply: RpcReplyPort<KeyedReply>, me: &ActorRef<CampaignMsg>) {
        let key = dedup_key(&keyed);
        if let Some(found) = self.window.get(&key, Instant::now()) {
            metrics::dedup_path("window_hit");
            self.count_duplicate(&found);
            let _ = reply.send(KeyedReply::Duplicate(found));
            self.arm_timer(me);
            return;
        }
        if let Some(waiters) = self.pending.waiters.get_mut(&key) {
            metrics::dedup_path("pending_batch");
            waiters.push(reply);
            return;
        }
        if self.bloom.check(&key) {
            match self.lookup(&keyed).await {
                Ok(Some(found)) => {
                    metrics::dedup_path("store_hit");
                    self.window.insert(key, found.clone(), Instant::now());
                    self.count_duplicate(&found);
                    let _ = reply.send(KeyedReply::Duplicate(found));
                    self.arm_timer(me);
                    return;
                }
                Ok(None) => metrics::dedup_path("bloom_false_positive"),
                Err(e) => {
                    let _ = reply.send(KeyedReply::Unavailable(e.to_string()));
                    return;
                }
            }
        } else {
            metrics::dedup_path("bloom_miss");
        }
        self.bloom.set(&key);
        self.pending.waiters.insert(key, Vec::new());
        self.pending.keyed.push((keyed, reply));
        self.load.pending.fetch_add(1, Ordering::Relaxed);
        self.post_flush(me);
    }

    async fn lookup(&self, keyed: &Keyed) -> Result<Option<Keyed>, crate::store::StoreError> {
        Ok(match keyed {
            Keyed::Conversion(c) => self.store.get_conversion(self.id, c.click_id).await?.map(Keyed::Conversion),
            Keyed::Lead(l) => self.store.get_lead(self.id, &l.external_id).await?.map(Keyed::Lead),
        })
    }

    fn count_duplicate(&mut self, keyed: &Keyed) {
        match keyed {
            Keyed::Conversion(_) => self.pending.stats.conversions_duplicate += 1,
            Keyed::Lead(_) => self.pending.stats.postbacks_duplicate += 1,
        }
    }

    /// Asks for a flush behind everything already in the mailbox.
    fn post_flush(&mut self, me: &ActorRef<CampaignMsg>) {
        if !self.flush_posted {
            self.flush_posted = me.send_message(CampaignMsg::Flush).is_ok();
        }
    }

    /// Makes sure pending clicks and counters are written within `flush_interval`.
    fn arm_timer(&mut self, me: &ActorRef<CampaignMsg>) {
        if !self.timer_armed && !self.flush_posted {
            self.timer_armed = true;
            me.send_after(Duration::from_millis(self.config.flush_interval_ms), || CampaignMsg::Flush);
        }
    }

    /// Writes up to `max_batch` pending events in one durable commit, then
    /// answers their callers. Returns whether the store accepted the batch.
    async fn flush(&mut self, me: &ActorRef<CampaignMsg>) -> bool {
        if self.pending.len() == 0 && self.pending.stats.is_empty() {
            return true;
        }
        // Keyed events first: their callers are waiting.
        let take_keyed = self.pending.keyed.len().min(self.config.max_batch);
        let take_clicks = self.pending.clicks.len().min(self.config.max_batch - take_keyed);
        let clicks: Vec<Click> = self.pending.clicks.drain(..take_clicks).collect();
        let (keyed, replies): (Vec<Keyed>, Vec<_>) = self.pending.keyed.drain(..take_keyed).unzip();
        let stats = std::mem::take(&mut self.pending.stats);
        let batch = Arc::new(Batch { clicks, keyed, stats: vec![(self.id, stats)] });
        let events = batch.len();
        let started = Instant::now();
        let result = self.store.commit(batch.clone()).await;
        metrics::flush(events, started.elapsed(), result.is_ok());
        self.load.pending.fetch_sub(events, Ordering::Relaxed);
        let ok = result.is_ok();
        match result {
            Ok(outcomes) => self.answer(&batch.keyed, replies, outcomes),
            Err(e) => self.fail(&batch, replies, &e.to_string()),
        }
        if self.pending.len() > 0 || !self.pending.stats.is_empty() {
            if self.pending.keyed.is_empty() {
                self.arm_timer(me)
            } else {
                self.post_flush(me)
            }
        }
        ok
    }

    fn answer(&mut self, keyed: &[Keyed], replies: Vec<RpcReplyPort<KeyedReply>>, outcomes: Vec<Outcome>) {
        let now = Instant::now();
        for ((mine, reply), outcome) in keyed.iter().zip(replies).zip(outcomes) {
            let key = dedup_key(mine);
            let (winner, first) = match outcome {
                Outcome::Inserted => (mine.clone(), KeyedReply::Recorded as fn(Keyed) -> KeyedReply),
                Outcome::Existing(found) => {
                    self.count_duplicate(&found);
                    (found, KeyedReply::Duplicate as fn(Keyed) -> KeyedReply)
                }
            };
            let _ = reply.send(first(winner.clone()));
            for waiter in self.pending.waiters.remove(&key).unwrap_or_default() {
                self.count_duplicate(&winner);
                let _ = waiter.send(KeyedReply::Duplicate(winner.clone()));
            }
            self.window.insert(key, winner, now);
        }
    }

    /// A failed commit recorded nothing: keyed callers get 503 and may retry;
    /// clicks and counters go back in the queue for the next attempt.
    fn fail(&mut self, batch: &Batch, replies: Vec<RpcReplyPort<KeyedReply>>, error: &str) {
        tracing::warn!(campaign = %self.id, error, "group commit failed");
        for (keyed, reply) in batch.keyed.iter().zip(replies) {
            let key = dedup_key(keyed);
            let _ = reply.send(KeyedReply::Unavailable(error.to_string()));
            for waiter in self.pending.waiters.remove(&key).unwrap_or_default() {
                let _ = waiter.send(KeyedReply::Unavailable(error.to_string()));
            }
        }
        let requeued = batch.clicks.len();
        let mut clicks = batch.clicks.clone();
        clicks.append(&mut self.pending.clicks);
        self.pending.clicks = clicks;
        for (_, stats) in &batch.stats {
            self.pending.stats.add(stats);
        }
        self.load.pending.fetch_add(requeued, Ordering::Relaxed);
    }
}
