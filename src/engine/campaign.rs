//! One actor per campaign: it owns the campaign's dedup state and its pending
//! writes, so every decision about a campaign's keys happens in one place,
//! one message at a time, without locks.
//!
//! Group commit, pipelined: at most one commit per campaign is in flight. A
//! keyed event is queued and, if the store is idle, flushed at once; while a
//! commit runs, the actor keeps answering (window hits, new events) and the
//! queue grows into the next batch, which starts the moment the previous one
//! lands. Under load batches grow by themselves; when idle, a conversion waits
//! for one fsync. Clicks need no answer: they ride along, or a timer flushes
//! them within `flush_interval`.
//!
//! The actor serves from its first message: its bloom filter is rebuilt from
//! the store in the background (`rebuild.rs`), and until it arrives every new
//! key goes to the commit, whose insert-if-absent answers the same as ever.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, ActorStatus, RpcReplyPort};

use super::dedup::{Filter, Window};
use super::rebuild::{self, Rebuilt};
use crate::config::EngineConfig;
use crate::domain::caps::Claim;
use crate::domain::ids::CampaignId;
use crate::domain::model::{CampaignStats, Click};
use crate::metrics;
use crate::store::{self, Batch, DedupKey, Keyed, Outcome, Store, StoreResult};

pub struct CampaignActor;

pub enum CampaignMsg {
    /// Log a click; the visitor has already been redirected. With the keys
    /// of the capped click windows it counted against.
    Click(Click, Vec<String>),
    /// Record a conversion or lead unless its key is already on record,
    /// with the claim it makes on the campaign's caps (checked in the commit).
    Keyed(Keyed, Option<Claim>, RpcReplyPort<KeyedReply>),
    /// Count a conversion ignored for `reason` (for the campaign's stats).
    Ignored(&'static str),
    /// Start a commit if none is running and anything is pending.
    Flush,
    /// A commit finished (sent by the task that ran it).
    Flushed(Flight),
    /// Write everything pending, then answer (used at shutdown and by tests).
    Drain(RpcReplyPort<()>),
    /// The bloom filter, rebuilt from the store after the actor started.
    Rebuilt(Rebuilt),
    /// Whether the rebuilt bloom filter is in place (tests, diagnostics).
    FilterReady(RpcReplyPort<bool>),
}

#[derive(Clone, Debug)]
pub enum KeyedReply {
    Recorded(Keyed),
    /// Already on record; carries the record that won.
    Duplicate(Keyed),
    /// The store failed and nothing was recorded: the caller may retry
    /// unless the error is `Corrupt`.
    Failed(crate::store::StoreError),
}

/// A batch on its way to the store, with the callers waiting for it.
pub struct Flight {
    batch: Arc<Batch>,
    replies: Vec<RpcReplyPort<KeyedReply>>,
    result: StoreResult<Vec<Outcome>>,
    started: Instant,
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
    filter: Filter<DedupKey>,
    window: Window<DedupKey, Keyed>,
    pending: Pending,
    /// Keys queued or in flight → repeats waiting for their outcome.
    waiters: HashMap<DedupKey, Vec<RpcReplyPort<KeyedReply>>>,
    in_flight: bool,
    flush_posted: bool,
    timer_armed: bool,
    /// Extra wait before retrying after failed commits (zero when healthy).
    backoff: Duration,
    drains: Vec<RpcReplyPort<()>>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Accepted, not yet handed to the store.
#[derive(Default)]
struct Pending {
    clicks: Vec<Click>,
    keyed: Vec<(Keyed, Option<Claim>, RpcReplyPort<KeyedReply>)>,
    stats: CampaignStats,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.clicks.is_empty() && self.keyed.is_empty() && self.stats.is_empty()
    }
}

impl Actor for CampaignActor {
    type Msg = CampaignMsg;
    type State = CampaignState;
    type Arguments = CampaignArgs;

    /// Starts without a bloom filter and sets its rebuild going, so a
    /// campaign with millions of keys answers at once after a restart.
    async fn pre_start(
        &self,
        me: ActorRef<CampaignMsg>,
        args: CampaignArgs,
    ) -> Result<CampaignState, ActorProcessingErr> {
        rebuild::spawn(args.id, args.store.clone(), &args.config, me);
        let window = Window::new(args.config.window_capacity, Duration::from_secs(args.config.window_ttl_secs));
        metrics::campaign_actors(1.0);
        Ok(CampaignState {
            id: args.id,
            store: args.store,
            config: args.config,
            load: args.load,
            filter: Filter::Rebuilding(Vec::new()),
            window,
            pending: Pending::default(),
            waiters: HashMap::new(),
            in_flight: false,
            flush_posted: false,
            timer_armed: false,
            backoff: Duration::ZERO,
            drains: Vec::new(),
        })
    }

    async fn handle(
        &self,
        me: ActorRef<CampaignMsg>,
        msg: CampaignMsg,
        state: &mut CampaignState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CampaignMsg::Click(click, windows) => {
                state.received();
                for window in windows {
                    *state.pending.stats.click_windows.entry(window).or_default() += 1;
                }
                state.pending.clicks.push(click);
                state.load.pending.fetch_add(1, Ordering::Relaxed);
                if state.pending.clicks.len() >= state.config.max_batch {
                    state.post_flush(&me);
                } else {
                    state.arm_timer(&me);
                }
            }
            CampaignMsg::Keyed(keyed, claim, reply) => {
                state.received();
                state.on_keyed(keyed, claim, reply, &me).await;
            }
            CampaignMsg::Ignored(reason) => {
                state.received();
                *state.pending.stats.conversions_ignored.entry(reason.to_string()).or_default() += 1;
                state.arm_timer(&me);
            }
            CampaignMsg::Flush => {
                state.flush_posted = false;
                state.timer_armed = false;
                state.start_flush(&me);
            }
            CampaignMsg::Flushed(flight) => state.landed(flight, &me),
            CampaignMsg::Drain(reply) => {
                state.drains.push(reply);
                state.start_flush(&me);
                state.answer_drains_if_idle();
            }
            CampaignMsg::Rebuilt(rebuilt) => state.install(rebuilt),
            CampaignMsg::FilterReady(reply) => drop(reply.send(state.filter.is_ready())),
        }
        Ok(())
    }

    /// Last chance for anything still queued: written inline, since no
    /// `Flushed` message can arrive any more.
    async fn post_stop(&self, _me: ActorRef<CampaignMsg>, state: &mut CampaignState) -> Result<(), ActorProcessingErr> {
        if !state.pending.is_empty() {
            let (batch, replies) = state.take_batch();
            let result = state.store.commit(batch.clone()).await;
            state.settle(Flight { batch, replies, result, started: Instant::now() });
        }
        metrics::campaign_actors(-1.0);
        Ok(())
    }
}

impl CampaignState {
    fn received(&self) {
        self.load.mailbox.fetch_sub(1, Ordering::Relaxed);
        metrics::mailbox(-1.0);
    }

    async fn on_keyed(
        &mut self,
        keyed: Keyed,
        claim: Option<Claim>,
        reply: RpcReplyPort<KeyedReply>,
        me: &ActorRef<CampaignMsg>,
    ) {
        let key = keyed.dedup_key();
        if let Some(found) = self.window.get(&key, Instant::now()) {
            metrics::dedup_path("window_hit");
            self.answer_duplicate(reply, found, me);
            return;
        }
        if let Some(waiting) = self.waiters.get_mut(&key) {
            metrics::dedup_path("pending_batch");
            waiting.push(reply);
            return;
        }
        match self.filter.check(&key) {
            Some(true) => match store::get_keyed(&*self.store, self.id, &key).await {
                Ok(Some(found)) => {
                    metrics::dedup_path("store_hit");
                    self.window.insert(key, found.clone(), Instant::now());
                    self.answer_duplicate(reply, found, me);
                    return;
                }
                Ok(None) => metrics::dedup_path("bloom_false_positive"),
                Err(e) => {
                    let _ = reply.send(KeyedReply::Failed(e));
                    return;
                }
            },
            Some(false) => metrics::dedup_path("bloom_miss"),
            // No filter yet: the commit's insert-if-absent decides.
            None => metrics::dedup_path("bloom_rebuilding"),
        }
        self.filter.set(&key);
        self.waiters.insert(key, Vec::new());
        self.pending.keyed.push((keyed, claim, reply));
        self.load.pending.fetch_add(1, Ordering::Relaxed);
        self.post_flush(me);
    }

    fn install(&mut self, rebuilt: Rebuilt) {
        let layers = rebuilt.bloom.layers();
        let meanwhile = self.filter.install(rebuilt.bloom);
        metrics::bloom_rebuilt(rebuilt.took);
        tracing::info!(
            campaign = %self.id,
            keys = rebuilt.keys,
            meanwhile,
            layers,
            took_ms = rebuilt.took.as_millis() as u64,
            "bloom filter rebuilt"
        );
    }

    fn answer_duplicate(&mut self, reply: RpcReplyPort<KeyedReply>, found: Keyed, me: &ActorRef<CampaignMsg>) {
        self.count_duplicate(&found);
        let _ = reply.send(KeyedReply::Duplicate(found));
        self.arm_timer(me);
    }

    fn count_duplicate(&mut self, keyed: &Keyed) {
        match keyed {
            Keyed::Conversion(_) => self.pending.stats.conversions_duplicate += 1,
            Keyed::Lead(_) => self.pending.stats.postbacks_duplicate += 1,
        }
    }

    /// Asks for a flush behind everything already in the mailbox, so what
    /// arrived meanwhile joins the batch.
    fn post_flush(&mut self, me: &ActorRef<CampaignMsg>) {
        if !self.flush_posted && !self.in_flight {
            self.flush_posted = me.send_message(CampaignMsg::Flush).is_ok();
        }
    }

    /// Makes sure pending clicks and counters are written within `flush_interval`.
    fn arm_timer(&mut self, me: &ActorRef<CampaignMsg>) {
        if !self.timer_armed && !self.flush_posted && !self.in_flight {
            self.timer_armed = true;
            let delay = Duration::from_millis(self.config.flush_interval_ms).max(self.backoff);
            me.send_after(delay, || CampaignMsg::Flush);
        }
    }

    /// Moves up to `max_batch` events (keyed first: their callers wait) and the
    /// counters into a batch.
    fn take_batch(&mut self) -> (Arc<Batch>, Vec<RpcReplyPort<KeyedReply>>) {
        let take_keyed = self.pending.keyed.len().min(self.config.max_batch);
        let take_clicks = self.pending.clicks.len().min(self.config.max_batch - take_keyed);
        let clicks: Vec<Click> = self.pending.clicks.drain(..take_clicks).collect();
        let (mut keyed, mut claims, mut replies) = (Vec::new(), Vec::new(), Vec::new());
        for (i, (k, claim, reply)) in self.pending.keyed.drain(..take_keyed).enumerate() {
            keyed.push(k);
            claims.extend(claim.map(|c| (i, c)));
            replies.push(reply);
        }
        let stats = std::mem::take(&mut self.pending.stats);
        (Arc::new(Batch { clicks, keyed, claims, stats: vec![(self.id, stats)] }), replies)
    }

    /// Hands a batch to the store on its own task; the answer comes back as
    /// `Flushed`, so the actor keeps serving while the disk works.
    fn start_flush(&mut self, me: &ActorRef<CampaignMsg>) {
        if self.in_flight || self.pending.is_empty() {
            return;
        }
        let (batch, replies) = self.take_batch();
        let (store, me) = (self.store.clone(), me.clone());
        self.in_flight = true;
        tokio::spawn(async move {
            let started = Instant::now();
            let result = store.commit(batch.clone()).await;
            // If the actor is gone the callers' ports drop and they answer 503;
            // a retry then finds the record (if it landed) as a duplicate.
            let _ = me.send_message(CampaignMsg::Flushed(Flight { batch, replies, result, started }));
        });
    }

    fn landed(&mut self, flight: Flight, me: &ActorRef<CampaignMsg>) {
        self.in_flight = false;
        let ok = flight.result.is_ok();
        self.settle(flight);
        if ok {
            self.backoff = Duration::ZERO;
            self.flush_or_wait(me);
        } else {
            // Do not hammer a failing store: retry on the timer, backing off
            // up to a second, and let a waiting shutdown go on rather than hang.
            self.backoff = (self.backoff * 2).clamp(Duration::from_millis(50), MAX_BACKOFF);
            self.drains.drain(..).for_each(|d| drop(d.send(())));
            self.arm_timer(me);
        }
        self.answer_drains_if_idle();
    }

    /// After a commit lands: callers waiting (keyed events, a drain) or a
    /// full batch go at once; clicks and counters alone wait for the timer,
    /// so under click load a campaign syncs once per `flush_interval`
    /// instead of once per commit, back to back.
    fn flush_or_wait(&mut self, me: &ActorRef<CampaignMsg>) {
        let waited_for = !self.pending.keyed.is_empty() || !self.drains.is_empty();
        if waited_for || self.pending.clicks.len() >= self.config.max_batch {
            self.start_flush(me);
        } else if !self.pending.is_empty() {
            self.arm_timer(me);
        }
    }

    /// Records metrics and answers everyone waiting on a finished commit.
    fn settle(&mut self, flight: Flight) {
        let Flight { batch, replies, result, started } = flight;
        metrics::flush(batch.len(), started.elapsed(), result.is_ok());
        self.load.pending.fetch_sub(batch.len(), Ordering::Relaxed);
        match result {
            Ok(outcomes) => self.answer(&batch.keyed, replies, outcomes),
            Err(e) => self.fail(&batch, replies, &e),
        }
    }

    fn answer(&mut self, keyed: &[Keyed], replies: Vec<RpcReplyPort<KeyedReply>>, outcomes: Vec<Outcome>) {
        let now = Instant::now();
        for ((mine, reply), outcome) in keyed.iter().zip(replies).zip(outcomes) {
            let key = mine.dedup_key();
            let winner = match outcome {
                Outcome::Inserted => {
                    let _ = reply.send(KeyedReply::Recorded(mine.clone()));
                    mine.clone()
                }
                Outcome::InsertedAs(stored) => {
                    let _ = reply.send(KeyedReply::Recorded(stored.clone()));
                    stored
                }
                Outcome::Existing(found) => {
                    self.count_duplicate(&found);
                    let _ = reply.send(KeyedReply::Duplicate(found.clone()));
                    found
                }
            };
            for waiter in self.waiters.remove(&key).unwrap_or_default() {
                self.count_duplicate(&winner);
                let _ = waiter.send(KeyedReply::Duplicate(winner.clone()));
            }
            self.window.insert(key, winner, now);
        }
    }

    /// A failed commit recorded nothing: keyed callers get 503 and may retry;
    /// clicks and counters go back in the queue for the next attempt.
    fn fail(&mut self, batch: &Batch, replies: Vec<RpcReplyPort<KeyedReply>>, error: &crate::store::StoreError) {
        tracing::warn!(campaign = %self.id, error = %error, "group commit failed");
        for (keyed, reply) in batch.keyed.iter().zip(replies) {
            let _ = reply.send(KeyedReply::Failed(error.clone()));
            for waiter in self.waiters.remove(&keyed.dedup_key()).unwrap_or_default() {
                let _ = waiter.send(KeyedReply::Failed(error.clone()));
            }
        }
        let mut clicks = batch.clicks.clone();
        self.load.pending.fetch_add(clicks.len(), Ordering::Relaxed);
        clicks.append(&mut self.pending.clicks);
        self.pending.clicks = clicks;
        for (_, stats) in &batch.stats {
            self.pending.stats.add(stats);
        }
    }

    fn answer_drains_if_idle(&mut self) {
        if !self.in_flight && self.pending.is_empty() {
            self.drains.drain(..).for_each(|d| drop(d.send(())));
        }
    }
}

/// The rebuild hands the filter back as a message to the actor.
impl rebuild::Owner for ActorRef<CampaignMsg> {
    fn deliver(&self, rebuilt: Rebuilt) {
        let _ = self.send_message(CampaignMsg::Rebuilt(rebuilt));
    }

    fn gone(&self) -> bool {
        matches!(self.get_status(), ActorStatus::Stopping | ActorStatus::Stopped)
    }
}
