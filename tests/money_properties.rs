//! Property test of the money path: random sequences of conversions,
//! replays, reversals, deposits, clock jumps and supervisor passes, with the
//! ledger's invariants checked after every step and an exact model of the
//! final state checked once the supervisors have caught up.
//!
//! Conversions count against the campaign's caps (edited at random too):
//! a model of every window's usage says which must be admitted and which
//! rejected with `cap_reached`, and the stores must agree after every step,
//! reversals giving capacity back.
//!
//! Runs on the embedded store, and on a CQL node too when
//! CLICKLEDGER_TEST_CQL is set (fewer cases: each is a fresh keyspace).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use proptest::prelude::*;

#[path = "common/keyspaces.rs"]
mod keyspaces;

use clickledger::config::{Config, Overrides};
use clickledger::domain::caps::{Caps, Claim, Limits, Usage};
use clickledger::domain::ids::*;
use clickledger::domain::model::*;
use clickledger::domain::money::{Balance, Payout, PayoutStatus, WalletKind, SECONDS_PER_DAY};
use clickledger::domain::payout::MAX_CENTS;
use clickledger::engine::clock::Clock;
use clickledger::engine::money::Money;
use clickledger::store::cql::ScyllaStore;
use clickledger::store::embedded::EmbeddedStore;
use clickledger::store::*;

/// Fresh ids per case, so CQL cases can share one keyspace.
struct Ids {
    campaign: CampaignId,
    affiliates: [AffiliateId; 2],
}

impl Ids {
    fn fresh() -> Self {
        Self { campaign: CampaignId::random(), affiliates: [AffiliateId::random(), AffiliateId::random()] }
    }
}

struct TestClock(AtomicU64);

impl Clock for TestClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Convert {
        affiliate: usize,
        cents: u64,
    },
    Fund {
        cents: u64,
        key: u8,
    },
    Reverse {
        pick: usize,
    },
    Replay {
        pick: usize,
    },
    Advance {
        hours: u64,
    },
    Work,
    /// Two engine nodes: a reversal racing a supervisor pass on another node.
    ReverseDuringWork {
        pick: usize,
    },
    /// New caps for the conversions that follow (earlier claims keep theirs).
    CapEdit {
        daily: Limits,
        total: Limits,
    },
}

fn limits() -> impl Strategy<Value = Limits> {
    (prop::option::of(0..6u64), prop::option::of(cents(0..15_000))).prop_map(|(conversions, payout_cents)| Limits {
        clicks: None,
        conversions,
        payout_cents,
    })
}

/// Mostly everyday amounts, sometimes the largest one accepted from outside
/// (`MAX_CENTS`): every sum must stay exact at the bounds too.
fn cents(everyday: std::ops::Range<u64>) -> impl Strategy<Value = u64> {
    prop_oneof![4 => everyday, 1 => (MAX_CENTS - 3)..=MAX_CENTS]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize, cents(1..5_000)).prop_map(|(affiliate, cents)| Op::Convert { affiliate, cents }),
        2 => (cents(1..12_001), 0..4u8).prop_map(|(cents, key)| Op::Fund { cents, key }),
        1 => any::<usize>().prop_map(|pick| Op::Reverse { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Replay { pick }),
        2 => (0..96u64).prop_map(|hours| Op::Advance { hours }),
        3 => Just(Op::Work),
        1 => any::<usize>().prop_map(|pick| Op::ReverseDuringWork { pick }),
        1 => (limits(), limits()).prop_map(|(daily, total)| Op::CapEdit { daily, total }),
    ]
}

fn campaign(id: CampaignId, hold_days: u32) -> Campaign {
    Campaign {
        id,
        advertiser_id: AdvertiserId(1),
        name: "c".into(),
        landing_url: "https://a.example/".into(),
        compensation_model: CompensationModel::Fixed,
        payout_cents: Some(100),
        payout_bp: None,
        promo_code: None,
        allowed_origins: vec![],
        field_mapping: Default::default(),
        attribution_window_days: 90,
        hold_days,
        status: CampaignStatus::Active,
        test_tracking_code: "TEST0077".into(),
        publishable_key: "pk_aff_x".into(),
        tracking_confirmed_at: None,
        created_at: 0,
        version: 0,
        rules: Default::default(),
        caps: Default::default(),
        affiliate_caps: Default::default(),
        fallback_url: None,
        removed_affiliates: Default::default(),
    }
}

fn lead(campaign: CampaignId, affiliate: AffiliateId, cents: u64, now: u64) -> Lead {
    let id = LeadId::new();
    Lead { id, payout_cents: cents, ..Lead::verified(campaign, affiliate, "CODE".into(), format!("order-{id}"), now) }
}

struct Run {
    ids: Ids,
    money: Money,
    clock: Arc<TestClock>,
    /// The approved leads (the ones that pay).
    leads: Vec<Lead>,
    caps: Caps,
    /// The model: every window's usage, and each counted lead's claim until
    /// a reversal gives it back.
    usage: HashMap<String, Usage>,
    windows: HashMap<String, clickledger::domain::caps::Window>,
    claims: HashMap<LeadId, Claim>,
}

impl Run {
    async fn step(&mut self, op: &Op) {
        let m = &self.money;
        match op {
            Op::Convert { affiliate, cents } => {
                let (aff, now) = (self.ids.affiliates[*affiliate], self.clock.now());
                let lead = lead(self.ids.campaign, aff, *cents, now);
                let claim = Claim::for_conversion(&self.caps, None, aff, now, *cents);
                let admitted = claim.as_ref().is_none_or(|c| self.model_admits(c));
                let claims: Vec<(usize, Claim)> = claim.clone().map(|c| (0, c)).into_iter().collect();
                let batch = Batch { keyed: vec![Keyed::Lead(lead.clone())], claims, ..Default::default() };
                let out = m.store.commit(Arc::new(batch)).await.unwrap();
                let stored = match &out[0] {
                    Outcome::Inserted => Keyed::Lead(lead.clone()),
                    Outcome::InsertedAs(k) => k.clone(),
                    Outcome::Existing(k) => panic!("a fresh key is new: {k:?}"),
                };
                assert_eq!(stored.status() == "approved", admitted, "the model and the store agree: {stored:?}");
                if let (true, Some(claim)) = (admitted, claim) {
                    for b in &claim.bounds {
                        let u = self.usage.entry(b.window.key()).or_default();
                        *u = u.plus(claim.cents);
                        self.windows.insert(b.window.key(), b.window);
                    }
                    self.claims.insert(lead.id, claim);
                }
                if admitted {
                    self.leads.push(lead);
                }
            }
            Op::CapEdit { daily, total } => {
                self.caps = Caps { daily: *daily, total: *total, timezone: None };
            }
            Op::Fund { cents, key } => {
                m.fund(self.ids.campaign, &format!("k{key}-{cents}"), *cents).await.unwrap();
            }
            Op::Reverse { pick } if !self.leads.is_empty() => {
                let lead = self.leads[pick % self.leads.len()].clone();
                m.reverse(&Keyed::Lead(lead.clone()), "refund").await.unwrap();
                self.gave_back(lead.id);
            }
            Op::Replay { pick } if !self.leads.is_empty() => {
                m.pay(&Keyed::Lead(self.leads[pick % self.leads.len()].clone())).await.unwrap();
            }
            Op::Advance { hours } => {
                self.clock.0.fetch_add(hours * 3600, Ordering::SeqCst);
            }
            Op::Work => {
                let (a, b) = tokio::join!(self.work_once(), self.work_once());
                let _ = (a, b);
            }
            Op::ReverseDuringWork { pick } if !self.leads.is_empty() => {
                let id = self.leads[pick % self.leads.len()].id;
                let lead = Keyed::Lead(self.leads[pick % self.leads.len()].clone());
                let (reversed, _) = tokio::join!(m.reverse(&lead, "chargeback"), self.work_once());
                reversed.unwrap();
                self.gave_back(id);
            }
            _ => {}
        }
    }

    /// Whether every window of `claim` has room in the model.
    fn model_admits(&self, claim: &Claim) -> bool {
        let used: Vec<Usage> =
            claim.bounds.iter().map(|b| self.usage.get(&b.window.key()).copied().unwrap_or_default()).collect();
        claim.bounds.iter().zip(used).all(|(b, u)| b.admits(u, claim.cents))
    }

    /// A reversal gives the lead's claim back, once.
    fn gave_back(&mut self, lead: LeadId) {
        if let Some(claim) = self.claims.remove(&lead) {
            for b in &claim.bounds {
                let u = self.usage.entry(b.window.key()).or_default();
                *u = u.minus(claim.cents);
            }
        }
    }

    async fn work_once(&self) -> usize {
        let mut done = 0;
        for queue in Queue::ALL {
            done += self.money.work(queue).await.unwrap().done;
        }
        done
    }

    async fn payouts(&self) -> Vec<Payout> {
        let mut out = Vec::new();
        for lead in &self.leads {
            if let Some(p) = self.money.ledger.get_payout(PayoutId(lead.id.0)).await.unwrap() {
                out.push(p);
            }
        }
        out
    }

    /// Invariants that hold after every step on every backend.
    async fn check_always(&self) {
        let ledger = &self.money.ledger;
        let balance = ledger.get_balance(self.ids.campaign).await.unwrap();
        assert!(balance.available_cents >= 0, "escrow never exceeds deposits: {balance:?}");
        assert!(balance.escrowed_cents >= 0 && balance.clearing_cents >= 0, "{balance:?}");
        let entries = ledger.campaign_entries(self.ids.campaign).await.unwrap();
        let folded = Balance::default().after(&entries).expect("bounded deposits bound the balance");
        assert_eq!(folded, balance, "the balance row is the fold of its entries");
        for aff in self.ids.affiliates {
            let lines = all_lines(ledger.as_ref(), aff).await;
            let page = ledger.get_wallet(aff, None, 1).await.unwrap();
            let money: i128 = lines.iter().filter(|l| l.kind.is_money()).map(|l| i128::from(l.amount_cents)).sum();
            assert_eq!(page.totals.available_cents, money, "a wallet equals the sum of its entries");
            let mut credits: HashMap<PayoutId, usize> = HashMap::new();
            for l in lines.iter().filter(|l| l.kind == WalletKind::Credit) {
                *credits.entry(l.payout_id).or_default() += 1;
            }
            assert!(credits.values().all(|n| *n == 1), "no payout is credited twice");
        }
        let windows: Vec<_> = self.windows.values().copied().collect();
        let stored = ledger.cap_usage(self.ids.campaign, &windows).await.unwrap();
        for (w, used) in windows.iter().zip(stored) {
            assert_eq!(used, self.usage[&w.key()], "the store's usage of {} is the model's", w.key());
        }
    }

    /// Once nothing is due: the ledger sums to zero and matches the payouts.
    async fn check_settled(&self) {
        let ledger = &self.money.ledger;
        let entries = ledger.campaign_entries(self.ids.campaign).await.unwrap();
        let mut wallet_money = 0;
        let mut credited_by_aff: HashMap<AffiliateId, i128> = HashMap::new();
        for aff in self.ids.affiliates {
            let page = ledger.get_wallet(aff, None, 1).await.unwrap();
            wallet_money += page.totals.available_cents;
            credited_by_aff.insert(aff, page.totals.available_cents);
        }
        let campaign_sum: i128 = entries.iter().map(|e| i128::from(e.amount_cents)).sum();
        assert_eq!(campaign_sum + wallet_money, 0, "the ledger sums to zero");

        let balance = ledger.get_balance(self.ids.campaign).await.unwrap();
        let payouts = self.payouts().await;
        let sum =
            |status| payouts.iter().filter(|p| p.status == status).map(|p| i128::from(p.amount_cents)).sum::<i128>();
        assert_eq!(i128::from(balance.escrowed_cents), sum(PayoutStatus::Escrowed));
        assert_eq!(balance.clearing_cents, 0, "every released payout was credited");
        assert_eq!(sum(PayoutStatus::Released), 0);
        for aff in self.ids.affiliates {
            let expected: i128 = payouts
                .iter()
                .filter(|p| p.affiliate_id == aff && p.status == PayoutStatus::Credited)
                .map(|p| i128::from(p.amount_cents))
                .sum();
            assert_eq!(credited_by_aff[&aff], expected, "wallet = credited payouts, clawbacks netted");
        }
        let paid = sum(PayoutStatus::Credited);
        assert_eq!(i128::from(balance.paid_cents()), paid, "paid = what reached wallets and stayed");
        for p in payouts.iter().filter(|p| p.status == PayoutStatus::AwaitingFunds) {
            assert!(i128::from(p.amount_cents) > balance.available_cents.into(), "{p:?} waits only if it does not fit");
        }
        assert_eq!(payouts.len(), self.leads.len(), "every paying record got exactly one payout");
        let stats = self.money.store.get_stats(self.ids.campaign).await.unwrap();
        let recorded: u128 = self.leads.iter().map(|l| u128::from(l.payout_cents)).sum();
        assert_eq!(stats.payout_cents, recorded, "stats count every recorded payout exactly");
    }
}

async fn all_lines(ledger: &dyn Ledger, aff: AffiliateId) -> Vec<clickledger::domain::money::WalletEntry> {
    let mut lines = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = ledger.get_wallet(aff, before.as_deref(), 7).await.unwrap();
        lines.extend(page.entries);
        match page.next {
            Some(next) => before = Some(next),
            None => return lines,
        }
    }
}

async fn run_case(backend: Arc<dyn Backend>, hold_days: u32, ops: Vec<Op>) {
    let ids = Ids::fresh();
    backend.put_campaign(&campaign(ids.campaign, hold_days)).await.unwrap();
    let clock = Arc::new(TestClock(AtomicU64::new(1_700_000_000)));
    let mut config = Config::load_from(None, &[], &Overrides::default()).unwrap().money;
    config.batch = 64;
    let store: Arc<dyn Store> = backend.clone();
    let money = Money { ledger: backend, store, clock: clock.clone(), config };
    let mut run = Run {
        ids,
        money,
        clock,
        leads: Vec::new(),
        caps: Caps::default(),
        usage: HashMap::new(),
        windows: HashMap::new(),
        claims: HashMap::new(),
    };
    for op in &ops {
        run.step(op).await;
        run.check_always().await;
    }
    // Catch up: past the record grace, then past every hold that escrow
    // during the catch-up itself starts, until nothing moves.
    for days in [1, 10, 10] {
        run.clock.0.fetch_add(days * SECONDS_PER_DAY, Ordering::SeqCst);
        for _ in 0..50 {
            if run.work_once().await == 0 {
                break;
            }
        }
    }
    run.check_always().await;
    run.check_settled().await;
}

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), ..ProptestConfig::default() })]

    #[test]
    fn the_ledger_invariants_hold_on_the_embedded_store(hold in 0..3u32, ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let backend: Arc<dyn Backend> = Arc::new(EmbeddedStore::open(dir.path(), 64).unwrap());
            run_case(backend, hold, ops).await;
        });
    }
}

/// One migrated keyspace for every CQL case (each keyspace costs the node
/// heap for its tables; the cases use fresh ids instead).
static KEYSPACE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

async fn cql_backend(node: String) -> Arc<dyn Backend> {
    keyspaces::prune_once(&node).await;
    let keyspace = KEYSPACE.get_or_init(|| keyspaces::name("p_")).clone();
    let env = [("CLICKLEDGER_SCYLLA_NODES".to_string(), node), ("CLICKLEDGER_SCYLLA_KEYSPACE".to_string(), keyspace)];
    let config = Config::load_from(None, &env, &Overrides::default()).unwrap().scylla;
    ScyllaStore::migrate(&config).await.unwrap();
    Arc::new(ScyllaStore::connect(&config).await.unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(6), ..ProptestConfig::default() })]

    #[test]
    fn the_ledger_invariants_hold_on_the_cql_store(hold in 0..3u32, ops in prop::collection::vec(op(), 1..30)) {
        let Some(node) = std::env::var("CLICKLEDGER_TEST_CQL").ok().filter(|n| !n.is_empty()) else {
            return Ok(());
        };
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async { run_case(cql_backend(node).await, hold, ops).await });
    }
}
