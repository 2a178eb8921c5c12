//! The load models. Open loop: each worker has a fixed schedule of intended
//! send times (together they make the arrival rate), and latency counts from
//! the intended time, so a stalled server is charged for the requests it
//! kept waiting (no coordinated omission). Closed loop: each worker sends
//! its next request as soon as the previous answer arrives (max throughput).
//!
//! Open-loop latencies include the timer's own lateness: tokio sleeps in
//! whole milliseconds, so a request can leave up to ~1 ms after its intended
//! time and is charged for it. That is the honest side to err on, and the
//! baseline run pays it too; compare sub-millisecond figures in closed loop.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::http::{Base, Conn};
use crate::scenario::{Driver, Mix, Picker, Sample, Scenario, Tally};
use crate::target::Target;

#[derive(Clone, Debug)]
pub struct Load {
    pub scenario: Scenario,
    /// Iterations per second across all connections; `None` = closed loop.
    pub rate: Option<f64>,
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub mix: Mix,
    /// Print the live progress line to stderr.
    pub progress: bool,
}

/// Latencies in microseconds, 1 µs to 60 s, 3 significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// One second of the measured window: completions and their p99.
fn second_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 2).expect("histogram bounds")
}

pub struct Outcome {
    pub load: Load,
    pub base: String,
    /// Iterations whose intended start fell in the measured window.
    pub iterations: u64,
    /// From the end of the warm-up to the last measured answer: the
    /// duration, or longer when an open loop fell behind its schedule.
    pub elapsed: Duration,
    /// Open loop: iterations never sent because the run was already one
    /// duration past its end when their turn came (the target fell behind).
    pub dropped: u64,
    pub ops: BTreeMap<&'static str, Histogram<u64>>,
    pub op_errors: BTreeMap<&'static str, u64>,
    pub timeline: Vec<(u64, Histogram<u64>)>,
    /// Every answer, warm-up included (verification needs them all).
    pub tally: Tally,
}

struct Shared {
    done: AtomicU64,
    errors: AtomicU64,
    timeline: Mutex<BTreeMap<u64, Histogram<u64>>>,
}

struct WorkerResult {
    iterations: u64,
    dropped: u64,
    last_answer: Option<Instant>,
    ops: BTreeMap<&'static str, Histogram<u64>>,
    op_errors: BTreeMap<&'static str, u64>,
    tally: Tally,
}

pub async fn run(load: &Load, target: Arc<Target>, run_id: &str) -> Result<Outcome, String> {
    let base = Base::parse(&target.base)?;
    if target.campaigns.is_empty() || target.campaigns.iter().any(|c| c.codes.is_empty()) {
        return Err("the target file needs campaigns, each with at least one tracking code".into());
    }
    let picker = Arc::new(Picker::new(target.campaigns.len(), load.mix.zipf));
    let shared =
        Arc::new(Shared { done: AtomicU64::new(0), errors: AtomicU64::new(0), timeline: Mutex::new(BTreeMap::new()) });
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + load.warmup;
    let end = measure_from + load.duration;
    let progress = load.progress.then(|| tokio::spawn(progress_line(shared.clone(), start, measure_from, end)));
    let mut workers = Vec::new();
    for w in 0..load.connections {
        let driver = Driver::new(
            load.scenario,
            target.clone(),
            load.mix.clone(),
            picker.clone(),
            Conn::new(base.clone()),
            run_id,
            w,
        );
        let schedule = Schedule { start, measure_from, end, rate: load.rate, worker: w, workers: load.connections };
        workers.push(tokio::spawn(worker(driver, schedule, shared.clone())));
    }
    let mut outcome = Outcome {
        load: load.clone(),
        base: base.url.clone(),
        iterations: 0,
        elapsed: load.duration,
        dropped: 0,
        ops: BTreeMap::new(),
        op_errors: BTreeMap::new(),
        timeline: Vec::new(),
        tally: Tally::default(),
    };
    for w in workers {
        let r = w.await.map_err(|e| format!("worker panicked: {e}"))?;
        outcome.iterations += r.iterations;
        outcome.dropped += r.dropped;
        if let Some(last) = r.last_answer {
            outcome.elapsed = outcome.elapsed.max(last.saturating_duration_since(measure_from));
        }
        for (op, h) in r.ops {
            outcome.ops.entry(op).or_insert_with(histogram).add(&h).expect("same bounds");
        }
        for (op, n) in r.op_errors {
            *outcome.op_errors.entry(op).or_default() += n;
        }
        outcome.tally.merge(r.tally);
    }
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    outcome.timeline = std::mem::take(&mut *shared.timeline.lock().expect("timeline")).into_iter().collect();
    Ok(outcome)
}

struct Schedule {
    start: Instant,
    measure_from: Instant,
    end: Instant,
    rate: Option<f64>,
    worker: usize,
    workers: usize,
}

impl Schedule {
    /// The intended send time of this worker's `k`-th iteration: the
    /// workers interleave, so together they send one every 1/rate seconds.
    fn intended(&self, k: u64) -> Option<Instant> {
        let rate = self.rate?;
        let slot = k as f64 * self.workers as f64 + self.worker as f64;
        Some(self.start + Duration::from_secs_f64(slot / rate))
    }
}

async fn worker(mut driver: Driver, s: Schedule, shared: Arc<Shared>) -> WorkerResult {
    let mut ops: BTreeMap<&'static str, Histogram<u64>> = BTreeMap::new();
    let mut op_errors: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut iterations = 0;
    let mut dropped = 0;
    let mut last_answer = None;
    // An open loop that falls behind keeps sending late (and is charged for
    // it) for at most one more duration; what is left after that is dropped.
    let give_up = s.end + (s.end - s.measure_from);
    let mut samples: Vec<Sample> = Vec::with_capacity(2);
    let mut second = (u64::MAX, second_histogram());
    tokio::time::sleep_until(s.start.into()).await;
    for k in 0.. {
        let from = match s.intended(k) {
            Some(t) => {
                tokio::time::sleep_until(t.into()).await;
                t
            }
            None => Instant::now(),
        };
        if from >= s.end {
            break;
        }
        if Instant::now() >= give_up {
            dropped += 1;
            continue;
        }
        samples.clear();
        driver.iteration(from, &mut samples).await;
        shared.done.fetch_add(1, Ordering::Relaxed);
        let failed = samples.iter().filter(|x| !x.ok).count() as u64;
        shared.errors.fetch_add(failed, Ordering::Relaxed);
        if from < s.measure_from {
            continue;
        }
        iterations += 1;
        last_answer = Some(Instant::now());
        let now_second = (Instant::now().saturating_duration_since(s.measure_from)).as_secs();
        if now_second != second.0 {
            flush_second(&shared, &mut second);
            second.0 = now_second;
        }
        for x in &samples {
            let micros = (x.latency.as_micros() as u64).clamp(1, 60_000_000);
            ops.entry(x.op).or_insert_with(histogram).saturating_record(micros);
            second.1.saturating_record(micros);
            if !x.ok {
                *op_errors.entry(x.op).or_default() += 1;
            }
        }
    }
    flush_second(&shared, &mut second);
    WorkerResult { iterations, dropped, last_answer, ops, op_errors, tally: std::mem::take(&mut driver.tally) }
}

fn flush_second(shared: &Shared, second: &mut (u64, Histogram<u64>)) {
    if second.0 == u64::MAX || second.1.is_empty() {
        return;
    }
    let mut timeline = shared.timeline.lock().expect("timeline");
    timeline.entry(second.0).or_insert_with(second_histogram).add(&second.1).expect("same bounds");
    second.1.reset();
}

async fn progress_line(shared: Arc<Shared>, start: Instant, measure_from: Instant, end: Instant) {
    tokio::time::sleep_until(start.into()).await;
    let mut last = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let done = shared.done.load(Ordering::Relaxed);
        let now = Instant::now();
        let phase = if now < measure_from { "warm-up" } else { "measuring" };
        let left = end.saturating_duration_since(now).as_secs();
        eprint!(
            "\r[{phase:>9}] {:>8} it/s  {:>10} done  {:>6} errors  {left:>4} s left ",
            done - last,
            done,
            shared.errors.load(Ordering::Relaxed)
        );
        let _ = std::io::stderr().flush();
        last = done;
    }
}
