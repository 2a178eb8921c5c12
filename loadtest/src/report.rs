//! The run's report: a stdout summary, a JSON file and a Markdown table.

use std::collections::BTreeMap;
use std::fmt::Write;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::runner::Outcome;
use crate::scenario::Scenario;
use crate::verify::Verification;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    pub count: u64,
    pub rate_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Second {
    pub second: u64,
    pub requests: u64,
    pub p99_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ratio {
    /// Engine requests/s divided by the baseline's (higher is better).
    pub throughput: f64,
    /// Engine p99 divided by the baseline's (lower is better).
    pub p99: f64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub scenario: Scenario,
    pub target: String,
    /// `open` (constant arrival rate, latency from the intended send time)
    /// or `closed` (each connection sends as soon as it has an answer).
    pub model: &'static str,
    pub rate_target: Option<f64>,
    pub connections: usize,
    pub duration_secs: f64,
    pub warmup_secs: f64,
    pub iterations: u64,
    pub iterations_per_sec: f64,
    /// Open loop: scheduled iterations never sent (the target fell behind).
    pub dropped: u64,
    /// From the end of the warm-up to the last measured answer.
    pub elapsed_secs: f64,
    pub ops: BTreeMap<&'static str, Latency>,
    pub errors: BTreeMap<&'static str, u64>,
    /// Every answer by status, warm-up included.
    pub statuses: BTreeMap<String, u64>,
    pub transport_errors: u64,
    pub timeline: Vec<Second>,
    pub verification: Option<Verification>,
    pub baseline: Option<Box<Report>>,
    pub ratio: Option<Ratio>,
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn latency(h: &Histogram<u64>, secs: f64) -> Latency {
    Latency {
        count: h.len(),
        rate_per_sec: h.len() as f64 / secs,
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
        mean_ms: h.mean() / 1000.0,
    }
}

impl Report {
    pub fn new(o: &Outcome, verification: Option<Verification>) -> Self {
        let secs = o.elapsed.as_secs_f64();
        Self {
            scenario: o.load.scenario,
            target: o.base.clone(),
            model: if o.load.rate.is_some() { "open" } else { "closed" },
            rate_target: o.load.rate,
            connections: o.load.connections,
            duration_secs: o.load.duration.as_secs_f64(),
            warmup_secs: o.load.warmup.as_secs_f64(),
            iterations: o.iterations,
            iterations_per_sec: o.iterations as f64 / secs,
            dropped: o.dropped,
            elapsed_secs: secs,
            ops: o.ops.iter().map(|(k, h)| (*k, latency(h, secs))).collect(),
            errors: o.op_errors.clone(),
            statuses: o.tally.statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
            transport_errors: o.tally.transport_errors,
            timeline: o
                .timeline
                .iter()
                .map(|(s, h)| Second { second: *s, requests: h.len(), p99_ms: ms(h.value_at_quantile(0.99)) })
                .collect(),
            verification,
            baseline: None,
            ratio: None,
        }
    }

    /// The op a baseline is compared on: the redirect or the postback.
    fn main_op(&self) -> &'static str {
        match self.scenario {
            Scenario::Redirect | Scenario::Funnel | Scenario::Mixed => "redirect",
            Scenario::Postback => "postback",
            Scenario::Referral => "referral",
            Scenario::Batch => "batch",
        }
    }

    pub fn with_baseline(mut self, baseline: Report) -> Self {
        let op = self.main_op();
        if let (Some(e), Some(b)) = (self.ops.get(op), baseline.ops.get(op)) {
            self.ratio = Some(Ratio { throughput: e.rate_per_sec / b.rate_per_sec, p99: e.p99_ms / b.p99_ms });
        }
        self.baseline = Some(Box::new(baseline));
        self
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        let rate = self.rate_target.map(|r| format!(" at {r}/s")).unwrap_or_default();
        let _ = writeln!(
            s,
            "{:?} against {}: {} loop{rate}, {} connections, {} s measured after {} s warm-up",
            self.scenario, self.target, self.model, self.connections, self.duration_secs, self.warmup_secs
        );
        let _ = writeln!(
            s,
            "  iterations: {} ({:.0}/s over {:.1} s){}",
            self.iterations,
            self.iterations_per_sec,
            self.elapsed_secs,
            if self.dropped > 0 {
                format!("; {} not sent: the target fell behind the schedule", self.dropped)
            } else {
                String::new()
            }
        );
        for (op, l) in &self.ops {
            let _ = writeln!(
                s,
                "  {op:<10} {:>9.0}/s  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  errors {}",
                l.rate_per_sec, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, self.errors.get(op).copied().unwrap_or(0)
            );
        }
        let statuses: Vec<String> = self.statuses.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(
            s,
            "  statuses (warm-up included): {}; transport errors: {}",
            statuses.join(", "),
            self.transport_errors
        );
        if let (Some(b), Some(r)) = (&self.baseline, &self.ratio) {
            let op = self.main_op();
            let bl = &b.ops[op];
            let _ = writeln!(
                s,
                "  baseline {}: {op} {:.0}/s p99 {:.3} ms -> engine/baseline: throughput {:.2}, p99 {:.2}",
                b.target, bl.rate_per_sec, bl.p99_ms, r.throughput, r.p99
            );
        }
        if let Some(v) = &self.verification {
            let _ = writeln!(s, "  verification: {}", if v.passed { "PASSED" } else { "FAILED" });
            for line in &v.checked {
                let _ = writeln!(s, "    {line}");
            }
            for f in &v.failures {
                let _ = writeln!(s, "    FAIL {f}");
            }
        }
        s
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let rate = self.rate_target.map(|r| format!(" at {r}/s")).unwrap_or_default();
        let _ = writeln!(
            s,
            "### `{:?}` against {}\n\n{} loop{rate}, {} connections, {} s measured after {} s warm-up; {} iterations ({:.0}/s).\n",
            self.scenario, self.target, self.model, self.connections, self.duration_secs, self.warmup_secs, self.iterations, self.iterations_per_sec
        );
        let _ = writeln!(s, "| run | op | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors |");
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
        let mut rows = vec![("engine", self)];
        if let Some(b) = &self.baseline {
            rows.push(("baseline", b));
        }
        for (name, r) in rows {
            for (op, l) in &r.ops {
                let _ = writeln!(
                    s,
                    "| {name} | {op} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} |",
                    l.rate_per_sec,
                    l.p50_ms,
                    l.p90_ms,
                    l.p99_ms,
                    l.p999_ms,
                    l.max_ms,
                    r.errors.get(op).copied().unwrap_or(0)
                );
            }
        }
        if let Some(r) = &self.ratio {
            let _ = writeln!(s, "\nEngine / baseline: throughput **{:.2}**, p99 **{:.2}**.", r.throughput, r.p99);
        }
        if let Some(v) = &self.verification {
            let _ = writeln!(s, "\nVerification: **{}**.", if v.passed { "passed" } else { "FAILED" });
            for line in v.checked.iter().chain(&v.failures) {
                let _ = writeln!(s, "- {line}");
            }
        }
        s
    }
}
