//! The money supervisors: one top-level `MoneySupervisor` with three linked
//! children, one per duty. Each child reads its due-time queues on a timer
//! and does the work through `engine::money`; a failed pass fails the child,
//! and the supervisor restarts it after a backoff that doubles while the
//! failures continue. Every step is idempotent, so a child killed half-way
//! through a pass simply redoes it.
//!
//! Every engine node runs one. Two nodes working the same queue is safe (the
//! store's conditional writes decide each step once); it only costs reads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::money::Money;
use crate::metrics;
use crate::store::Queue;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Duty {
    ReferralExpiry,
    EscrowRelease,
    WalletCrediting,
}

impl Duty {
    pub const ALL: [Duty; 3] = [Duty::ReferralExpiry, Duty::EscrowRelease, Duty::WalletCrediting];

    pub fn name(self) -> &'static str {
        match self {
            Duty::ReferralExpiry => "referral_expiry",
            Duty::EscrowRelease => "escrow_release",
            Duty::WalletCrediting => "wallet_crediting",
        }
    }

    fn index(self) -> usize {
        Duty::ALL.iter().position(|d| *d == self).expect("every duty is in ALL")
    }

    fn queues(self) -> &'static [Queue] {
        match self {
            Duty::ReferralExpiry => &[Queue::Expire],
            Duty::EscrowRelease => &[Queue::Escrow, Queue::Release],
            Duty::WalletCrediting => &[Queue::Credit],
        }
    }
}

pub struct MoneySupervisor;

/// Each duty's lag (seconds) as of its child's last pass, indexed like `Duty::ALL`.
type Lags = Arc<[AtomicU64; 3]>;

pub struct MoneySupervisorState {
    money: Arc<Money>,
    children: HashMap<ActorId, Duty>,
    /// Per duty: the current restart delay and when it last failed.
    backoff: HashMap<Duty, (Duration, Instant)>,
    lags: Lags,
    /// Set by `Shutdown`: children that stop now are not restarted.
    stopping: bool,
}

pub enum MoneySupervisorMsg {
    Respawn(Duty),
    /// Which duties have a running child (readiness).
    Running(RpcReplyPort<Vec<Duty>>),
    /// Each duty's lag in seconds as of its last pass (readiness, informational).
    Lag(RpcReplyPort<Vec<(Duty, u64)>>),
    /// Stops every child between two passes (a pass always completes) and
    /// restarts none; answers once they have all stopped.
    Shutdown(RpcReplyPort<()>),
}

impl Actor for MoneySupervisor {
    type Msg = MoneySupervisorMsg;
    type State = MoneySupervisorState;
    type Arguments = Arc<Money>;

    async fn pre_start(&self, me: ActorRef<Self::Msg>, money: Arc<Money>) -> Result<Self::State, ActorProcessingErr> {
        let mut state = MoneySupervisorState {
            money,
            children: HashMap::new(),
            backoff: HashMap::new(),
            lags: Arc::new(Default::default()),
            stopping: false,
        };
        for duty in Duty::ALL {
            metrics::supervisor_started(duty.name());
            state.spawn(&me, duty).await?;
        }
        Ok(state)
    }

    async fn post_stop(&self, _: ActorRef<Self::Msg>, _: &mut Self::State) -> Result<(), ActorProcessingErr> {
        // Shutting down: the node must leave load balancers' and alerts' view of "ready".
        metrics::ready(false);
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MoneySupervisorMsg::Respawn(_) if state.stopping => {}
            MoneySupervisorMsg::Respawn(duty) => {
                if let Err(e) = state.spawn(&me, duty).await {
                    tracing::error!(duty = duty.name(), error = %e, "could not restart a money supervisor");
                    state.schedule_restart(&me, duty);
                }
            }
            MoneySupervisorMsg::Running(reply) => {
                let _ = reply.send(state.children.values().copied().collect());
            }
            MoneySupervisorMsg::Lag(reply) => {
                let _ = reply.send(Duty::ALL.map(|d| (d, state.lags[d.index()].load(Ordering::Relaxed))).to_vec());
            }
            MoneySupervisorMsg::Shutdown(reply) => {
                state.stopping = true;
                // `stop` (unlike `kill`) waits for the message being handled,
                // so a child mid-pass finishes its pass first.
                me.stop_children_and_wait(Some("shutdown".into()), None).await;
                state.children.clear();
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match event {
            SupervisionEvent::ActorFailed(cell, e) => (cell, e.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (cell, reason.unwrap_or_else(|| "stopped".into())),
            _ => return Ok(()),
        };
        if state.stopping {
            return Ok(());
        }
        if let Some(duty) = state.children.remove(&cell.get_id()) {
            tracing::warn!(duty = duty.name(), why, "money supervisor child stopped; restarting after backoff");
            metrics::supervisor_restart(duty.name());
            state.schedule_restart(&me, duty);
        }
        Ok(())
    }
}

impl MoneySupervisorState {
    async fn spawn(&mut self, me: &ActorRef<MoneySupervisorMsg>, duty: Duty) -> Result<(), ActorProcessingErr> {
        let args = (duty, self.money.clone(), self.lags.clone());
        let (child, _) = me.get_cell().spawn_linked(None, DutyActor, args).await?;
        self.children.insert(child.get_id(), duty);
        Ok(())
    }

    fn schedule_restart(&mut self, me: &ActorRef<MoneySupervisorMsg>, duty: Duty) {
        let (min, max) = (self.money.config.restart_min_ms, self.money.config.restart_max_ms);
        let (min, max) = (Duration::from_millis(min), Duration::from_millis(max.max(min)));
        let now = Instant::now();
        let delay = match self.backoff.get(&duty) {
            // Failing again soon after the last failure: back off further.
            Some((last, at)) if now.duration_since(*at) < max * 2 => (*last * 2).min(max),
            _ => min,
        };
        self.backoff.insert(duty, (delay, now));
        me.send_after(delay, move || MoneySupervisorMsg::Respawn(duty));
    }
}

/// One duty's worker: a pass over its queues per tick, then the next tick
/// is scheduled (at once while a backlog drains), so a slow pass never piles
/// ticks up in the mailbox.
pub struct DutyActor;

pub struct DutyState {
    duty: Duty,
    money: Arc<Money>,
    lags: Lags,
}

pub enum DutyMsg {
    Tick,
}

impl Actor for DutyActor {
    type Msg = DutyMsg;
    type State = DutyState;
    type Arguments = (Duty, Arc<Money>, Lags);

    async fn pre_start(
        &self,
        me: ActorRef<DutyMsg>,
        (duty, money, lags): (Duty, Arc<Money>, Lags),
    ) -> Result<DutyState, ActorProcessingErr> {
        me.send_message(DutyMsg::Tick)?;
        Ok(DutyState { duty, money, lags })
    }

    async fn handle(&self, me: ActorRef<DutyMsg>, _: DutyMsg, state: &mut DutyState) -> Result<(), ActorProcessingErr> {
        let (mut lag, mut more) = (0, false);
        for &queue in state.duty.queues() {
            let pass = state.money.work(queue).await.inspect_err(|_| metrics::supervisor_error(state.duty.name()))?;
            lag = lag.max(pass.lag);
            // Full and moving: a backlog. Go again at once rather than cap
            // the duty at `batch` items per tick.
            more |= pass.full && pass.done > 0;
            if pass.done > 0 {
                tracing::debug!(duty = state.duty.name(), queue = queue.as_str(), done = pass.done, "due items done");
            }
        }
        metrics::supervisor_lag(state.duty.name(), lag);
        state.lags[state.duty.index()].store(lag, Ordering::Relaxed);
        if more {
            me.send_message(DutyMsg::Tick)?;
        } else {
            me.send_after(Duration::from_millis(state.money.config.tick_ms), || DutyMsg::Tick);
        }
        Ok(())
    }
}

/// Starts the supervisor tree; stopping the returned actor stops its children.
pub async fn start(money: Arc<Money>) -> Result<ActorRef<MoneySupervisorMsg>, String> {
    let (sup, _) = Actor::spawn(None, MoneySupervisor, money).await.map_err(|e| e.to_string())?;
    // The last part of start-up: the store is open, the catalog loaded and
    // every duty running, which is what /readyz checks. /readyz keeps the
    // gauge current afterwards (`metrics::ready`).
    metrics::ready(true);
    Ok(sup)
}

#[cfg(test)]
#[path = "supervisor_tests.rs"]
mod tests;
