//! What one iteration of each scenario sends, and what each answer must be.
//! Every answer is checked as it arrives and counted per campaign, so that
//! `verify` can compare the counts with the engine's own stats afterwards.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Serialize;
use serde_json::json;

use crate::http::{query_param, Conn, Reply};

mod batch;
mod funnel;
mod referral;
use crate::target::Target;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// GET /r/{code}; the 302 is not followed.
    Redirect,
    /// POST /api/v1/postback with a share of repeated externalIds.
    Postback,
    /// Click, take irw_id from the redirect, convert; a share of repeated
    /// and of forged tokens.
    Funnel,
    /// An affiliate creates a referral, the advertiser confirms it; a share
    /// of confirmations repeated (answered 409 `already_confirmed`).
    Referral,
    /// POST /api/v1/postback/batch, `--batch-items` postbacks per request
    /// (NDJSON), the same share of repeats as `postback`.
    Batch,
    /// Per iteration one of the above but `batch`: redirect 40 %, postback 30 %,
    /// funnel 20 %, referral 10 % (without affiliate keys in the target
    /// file, its share goes to postbacks).
    Mixed,
}

impl Scenario {
    /// Whether this scenario sends postbacks, conversions, referrals.
    pub fn sends(self) -> (bool, bool, bool) {
        match self {
            Scenario::Redirect => (false, false, false),
            Scenario::Postback | Scenario::Batch => (true, false, false),
            Scenario::Funnel => (false, true, false),
            Scenario::Referral => (false, false, true),
            Scenario::Mixed => (true, true, true),
        }
    }
}

/// A browser's user agent, so clicks count as human.
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
/// How many acknowledged keys a worker remembers for repeats.
const REMEMBERED: usize = 4096;

#[derive(Clone, Debug)]
pub struct Mix {
    pub duplicates: f64,
    pub forged: f64,
    /// Zipf exponent of the campaign choice (0 = uniform).
    pub zipf: f64,
    /// Against the bare baseline server: only the status is checked.
    pub baseline: bool,
    /// Postbacks per request of the batch scenario.
    pub batch_items: usize,
}

/// Zipf-skewed choice of a campaign: campaign k has weight 1/(k+1)^s.
pub struct Picker {
    cumulative: Vec<f64>,
}

impl Picker {
    pub fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (0..n)
            .map(|k| {
                total += 1.0 / ((k + 1) as f64).powf(s);
                total
            })
            .collect::<Vec<_>>();
        Self { cumulative: cumulative.iter().map(|c| c / total).collect() }
    }

    fn pick(&self, u: f64) -> usize {
        self.cumulative.partition_point(|&c| c < u).min(self.cumulative.len() - 1)
    }
}

/// What the target acknowledged for one campaign.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignTally {
    pub clicks: u64,
    pub conversions_recorded: u64,
    pub conversions_duplicate: u64,
    pub forged_ignored: u64,
    pub postbacks_recorded: u64,
    pub postbacks_duplicate: u64,
    pub referrals_confirmed: u64,
    pub referrals_repeat_refused: u64,
    pub payout_cents: u64,
    /// Keyed requests whose outcome is unknown (transport error after send).
    pub unknown: u64,
}

impl CampaignTally {
    pub fn add(&mut self, o: &CampaignTally) {
        self.clicks += o.clicks;
        self.conversions_recorded += o.conversions_recorded;
        self.conversions_duplicate += o.conversions_duplicate;
        self.forged_ignored += o.forged_ignored;
        self.postbacks_recorded += o.postbacks_recorded;
        self.postbacks_duplicate += o.postbacks_duplicate;
        self.referrals_confirmed += o.referrals_confirmed;
        self.referrals_repeat_refused += o.referrals_repeat_refused;
        self.payout_cents += o.payout_cents;
        self.unknown += o.unknown;
    }
}

#[derive(Debug, Default)]
pub struct Tally {
    pub campaigns: Vec<CampaignTally>,
    pub statuses: BTreeMap<u16, u64>,
    pub transport_errors: u64,
    /// Answers that contradict exactly-once (a repeat recorded, a forged
    /// token accepted, a wrong payout): the first few, and how many.
    pub problems: Vec<String>,
    pub problem_count: u64,
}

impl Tally {
    pub fn merge(&mut self, o: Tally) {
        if self.campaigns.len() < o.campaigns.len() {
            self.campaigns.resize(o.campaigns.len(), CampaignTally::default());
        }
        for (a, b) in self.campaigns.iter_mut().zip(&o.campaigns) {
            a.add(b);
        }
        for (s, n) in o.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        self.transport_errors += o.transport_errors;
        self.problem_count += o.problem_count;
        self.problems.extend(o.problems);
        self.problems.truncate(20);
    }

    fn problem(&mut self, what: String) {
        self.problem_count += 1;
        if self.problems.len() < 20 {
            self.problems.push(what);
        }
    }
}

/// One request's measurement.
pub struct Sample {
    pub op: &'static str,
    pub latency: Duration,
    /// The answer was the expected kind (counted as an error otherwise).
    pub ok: bool,
}

/// One worker's scenario state: its connection, its random stream and the
/// keys it may repeat.
pub struct Driver {
    pub scenario: Scenario,
    target: Arc<Target>,
    mix: Mix,
    picker: Arc<Picker>,
    conn: Conn,
    rng: u64,
    prefix: String,
    seq: u64,
    postbacks: Vec<(usize, usize, String, u64)>,
    tokens: Vec<(usize, String)>,
    referrals: Vec<(usize, String)>,
    pub tally: Tally,
}

impl Driver {
    pub fn new(
        scenario: Scenario,
        target: Arc<Target>,
        mix: Mix,
        picker: Arc<Picker>,
        conn: Conn,
        run_id: &str,
        worker: usize,
    ) -> Self {
        let campaigns = vec![CampaignTally::default(); target.campaigns.len()];
        let salt = run_id.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        let rng = (0x9E37_79B9_7F4A_7C15u64 ^ (worker as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ salt).max(1);
        Self {
            scenario,
            target,
            mix,
            picker,
            conn,
            rng,
            prefix: format!("lt-{run_id}-{worker}"),
            seq: 0,
            postbacks: Vec::new(),
            tokens: Vec::new(),
            referrals: Vec::new(),
            tally: Tally { campaigns, ..Tally::default() },
        }
    }

    fn next(&mut self) -> u64 {
        // xorshift64*: plenty for choosing keys, and no dependency.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn choose(&mut self) -> (usize, usize) {
        let u = self.unit();
        let c = self.picker.pick(u);
        let codes = self.target.campaigns[c].codes.len();
        (c, self.below(codes))
    }

    /// One iteration; the first request's latency counts from `from` (the
    /// intended send time in open loop).
    pub async fn iteration(&mut self, from: Instant, out: &mut Vec<Sample>) {
        match self.scenario {
            Scenario::Redirect => {
                let (c, k) = self.choose();
                self.click(c, k, from, out).await;
            }
            Scenario::Postback => self.postback(from, out).await,
            Scenario::Batch => self.batch(from, out).await,
            Scenario::Funnel => self.funnel(from, out).await,
            Scenario::Referral => self.referral(from, out).await,
            Scenario::Mixed => {
                let roll = self.unit();
                if roll < 0.4 {
                    let (c, k) = self.choose();
                    self.click(c, k, from, out).await;
                } else if roll < 0.6 {
                    Box::pin(self.funnel(from, out)).await;
                } else if roll < 0.7 && !self.target.affiliate_keys.is_empty() {
                    Box::pin(self.referral(from, out)).await;
                } else {
                    Box::pin(self.postback(from, out)).await;
                }
            }
        }
    }

    async fn send(&mut self, method: Method, path: &str, headers: &[(&str, &str)], body: Bytes) -> Option<Reply> {
        match self.conn.send(method, path, headers, body).await {
            Ok(r) => {
                *self.tally.statuses.entry(r.status.as_u16()).or_default() += 1;
                Some(r)
            }
            Err(_) => {
                self.tally.transport_errors += 1;
                None
            }
        }
    }

    /// GET /r/{code}: returns the click token when the answer was a 302.
    async fn click(&mut self, c: usize, k: usize, from: Instant, out: &mut Vec<Sample>) -> Option<String> {
        let path = format!("/r/{}", self.target.campaigns[c].codes[k]);
        let reply = self.send(Method::GET, &path, &[("user-agent", UA)], Bytes::new()).await;
        let ok = reply.as_ref().is_some_and(|r| r.status == StatusCode::FOUND);
        out.push(Sample { op: "redirect", latency: from.elapsed(), ok });
        if !ok || self.mix.baseline {
            return None;
        }
        self.tally.campaigns[c].clicks += 1;
        let location = reply?.headers.get("location")?.to_str().ok()?.to_string();
        let token = query_param(&location, "irw_id");
        if token.is_none() {
            self.tally.problem(format!("302 without irw_id: {location}"));
        }
        token
    }

    /// The next postback's (campaign, code, externalId, revenue): a repeat of
    /// an acknowledged one with the `duplicates` share, else a new one.
    fn next_postback(&mut self) -> (bool, (usize, usize, String, u64)) {
        let repeat = !self.postbacks.is_empty() && self.unit() < self.mix.duplicates;
        if repeat {
            let i = self.below(self.postbacks.len());
            return (true, self.postbacks[i].clone());
        }
        let (c, k) = self.choose();
        self.seq += 1;
        let revenue = 100 + self.next() % 20_000;
        (false, (c, k, format!("{}-{}", self.prefix, self.seq), revenue))
    }

    async fn postback(&mut self, from: Instant, out: &mut Vec<Sample>) {
        let (repeat, (c, k, external_id, revenue)) = self.next_postback();
        let campaign = &self.target.campaigns[c];
        let body = json!({
            "swarm_ref": campaign.codes[k], "externalId": external_id,
            "eventType": "PURCHASE", "revenueCents": revenue,
        });
        let expected_payout = campaign.payout_for(revenue);
        let auth = format!("Bearer {}", self.target.advertiser_key);
        let body = Bytes::from(serde_json::to_vec(&body).expect("json"));
        let reply = self
            .send(
                Method::POST,
                "/api/v1/postback",
                &[("authorization", &auth), ("content-type", "application/json")],
                body,
            )
            .await;
        let latency = from.elapsed();
        let Some(reply) = reply else {
            self.tally.campaigns[c].unknown += 1;
            out.push(Sample { op: "postback", latency, ok: false });
            return;
        };
        if self.mix.baseline {
            out.push(Sample { op: "postback", latency, ok: reply.status == StatusCode::NO_CONTENT });
            return;
        }
        let answer = reply.json();
        let status = answer["status"].as_str().unwrap_or("");
        let ok = match (reply.status.as_u16(), status, repeat) {
            (201, "recorded", false) => {
                let payout = answer["lead"]["payoutCents"].as_u64().unwrap_or(u64::MAX);
                if payout != expected_payout {
                    self.tally.problem(format!("{external_id}: payoutCents {payout}, expected {expected_payout}"));
                }
                let t = &mut self.tally.campaigns[c];
                t.postbacks_recorded += 1;
                t.payout_cents += payout.min(expected_payout);
                remember(&mut self.postbacks, (c, k, external_id, revenue), self.seq as usize);
                true
            }
            (200, "duplicate", true) => {
                self.tally.campaigns[c].postbacks_duplicate += 1;
                true
            }
            (201 | 200, _, _) => {
                let what = if repeat { "a repeat" } else { "a new externalId" };
                self.tally.problem(format!("{what} {external_id} answered {} {status}", reply.status.as_u16()));
                false
            }
            _ => false,
        };
        out.push(Sample { op: "postback", latency, ok });
    }
}

/// Keeps at most `REMEMBERED` keys, replacing old ones round-robin.
fn remember<T>(list: &mut Vec<T>, item: T, seq: usize) {
    if list.len() < REMEMBERED {
        list.push(item);
    } else {
        list[seq % REMEMBERED] = item;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zipf_picker_favours_the_first_campaign_and_reaches_the_last() {
        let p = Picker::new(4, 1.0);
        assert_eq!(p.pick(0.0), 0);
        assert_eq!(p.pick(0.47), 0);
        assert_eq!(p.pick(0.999_999), 3);
        assert_eq!(Picker::new(4, 0.0).pick(0.3), 1);
    }
}
