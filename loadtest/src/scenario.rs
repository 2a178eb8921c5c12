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
    /// Per iteration one of the above: redirect 40 %, postback 30 %,
    /// funnel 20 %, referral 10 % (without affiliate keys in the target
    /// file, its share goes to postbacks).
    Mixed,
}

impl Scenario {
    /// Whether this scenario sends postbacks, conversions, referrals.
    pub fn sends(self) -> (bool, bool, bool) {
        match self {
            Scenario::Redirect => (false, false, false),
            Scenario::Postback => (true, false, false),
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

    /// Creates a referral as a random affiliate and confirms it as the
    /// advertiser, or repeats the confirmation of an earlier one.
    async fn referral(&mut self, from: Instant, out: &mut Vec<Sample>) {
        let adv = format!("Bearer {}", self.target.advertiser_key);
        let json = [("authorization", adv.as_str()), ("content-type", "application/json")];
        if !self.referrals.is_empty() && self.unit() < self.mix.duplicates {
            let i = self.below(self.referrals.len());
            let (c, id) = self.referrals[i].clone();
            let body = Bytes::from_static(b"{\"revenueCents\":1000}");
            let reply = self.send(Method::POST, &format!("/api/v1/referrals/{id}/confirm"), &json, body).await;
            let latency = from.elapsed();
            let ok = match reply.as_ref().map(|r| (r.status.as_u16(), r.json()["error"].as_str().map(str::to_string))) {
                Some((409, Some(e))) if e == "already_confirmed" => {
                    self.tally.campaigns[c].referrals_repeat_refused += 1;
                    true
                }
                Some((s, _)) if (200..300).contains(&s) => {
                    self.tally.problem(format!("referral {id} confirmed twice ({s})"));
                    false
                }
                _ => false,
            };
            out.push(Sample { op: "confirm", latency, ok });
            return;
        }
        let (c, _) = self.choose();
        let aff = self.below(self.target.affiliate_keys.len());
        let auth = format!("Bearer {}", self.target.affiliate_keys[aff]);
        let body = Bytes::from(serde_json::to_vec(&json!({"campaignId": self.target.campaigns[c].id})).expect("json"));
        let created = self
            .send(
                Method::POST,
                "/api/v1/referrals",
                &[("authorization", &auth), ("content-type", "application/json")],
                body,
            )
            .await;
        let ok = created.as_ref().is_some_and(|r| r.status == StatusCode::CREATED);
        out.push(Sample { op: "referral", latency: from.elapsed(), ok });
        let Some(id) = created.filter(|_| ok).and_then(|r| r.json()["id"].as_str().map(str::to_string)) else { return };
        let revenue = 100 + self.next() % 20_000;
        let expected = self.target.campaigns[c].payout_for(revenue);
        let body = Bytes::from(serde_json::to_vec(&json!({"revenueCents": revenue})).expect("json"));
        let sent = Instant::now();
        let reply = self.send(Method::POST, &format!("/api/v1/referrals/{id}/confirm"), &json, body).await;
        let latency = sent.elapsed();
        let Some(reply) = reply else {
            self.tally.campaigns[c].unknown += 1;
            out.push(Sample { op: "confirm", latency, ok: false });
            return;
        };
        let ok = reply.status == StatusCode::CREATED;
        if ok {
            let payout = reply.json()["lead"]["payoutCents"].as_u64().unwrap_or(u64::MAX);
            if payout != expected {
                self.tally.problem(format!("referral {id}: payoutCents {payout}, expected {expected}"));
            }
            let t = &mut self.tally.campaigns[c];
            t.referrals_confirmed += 1;
            t.payout_cents += payout.min(expected);
            self.seq += 1;
            remember(&mut self.referrals, (c, id), self.seq as usize);
        }
        out.push(Sample { op: "confirm", latency, ok });
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

    async fn postback(&mut self, from: Instant, out: &mut Vec<Sample>) {
        let repeat = !self.postbacks.is_empty() && self.unit() < self.mix.duplicates;
        let (c, k, external_id, revenue) = if repeat {
            let i = self.below(self.postbacks.len());
            self.postbacks[i].clone()
        } else {
            let (c, k) = self.choose();
            self.seq += 1;
            let revenue = 100 + self.next() % 20_000;
            (c, k, format!("{}-{}", self.prefix, self.seq), revenue)
        };
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

    async fn funnel(&mut self, from: Instant, out: &mut Vec<Sample>) {
        let roll = self.unit();
        if !self.tokens.is_empty() && roll < self.mix.forged + self.mix.duplicates {
            let i = self.below(self.tokens.len());
            let (c, token) = self.tokens[i].clone();
            if roll < self.mix.forged {
                self.convert(c, &forge(&token), Expect::Forged, from, out).await;
            } else {
                self.convert(c, &token, Expect::Duplicate, from, out).await;
            }
            return;
        }
        let (c, k) = self.choose();
        let Some(token) = self.click(c, k, from, out).await else { return };
        self.convert(c, &token, Expect::Recorded, Instant::now(), out).await;
    }

    async fn convert(&mut self, c: usize, token: &str, expect: Expect, from: Instant, out: &mut Vec<Sample>) {
        let body = Bytes::from(serde_json::to_vec(&json!({"clickId": token})).expect("json"));
        let key = self.target.advertiser_key.clone();
        let reply = self
            .send(
                Method::POST,
                "/api/v1/affiliate/conversions",
                &[("x-api-key", &key), ("content-type", "application/json")],
                body,
            )
            .await;
        let latency = from.elapsed();
        let Some(reply) = reply else {
            if expect != Expect::Forged {
                self.tally.campaigns[c].unknown += 1;
            }
            out.push(Sample { op: "conversion", latency, ok: false });
            return;
        };
        let answer = reply.json();
        let got =
            (reply.status.as_u16(), answer["status"].as_str().unwrap_or(""), answer["reason"].as_str().unwrap_or(""));
        let t = &mut self.tally.campaigns[c];
        let ok = match (expect, got) {
            (Expect::Recorded, (201, "recorded", _)) => {
                t.conversions_recorded += 1;
                t.payout_cents += self.target.campaigns[c].conversion_payout();
                remember(&mut self.tokens, (c, token.to_string()), self.seq as usize);
                self.seq += 1;
                true
            }
            (Expect::Duplicate, (200, "duplicate", _)) => {
                t.conversions_duplicate += 1;
                true
            }
            (Expect::Forged, (200, "ignored", "bad_signature")) => {
                t.forged_ignored += 1;
                true
            }
            (_, (s @ (200 | 201), status, reason)) => {
                self.tally.problem(format!("{expect:?} token answered {s} {status} {reason}"));
                false
            }
            _ => false,
        };
        out.push(Sample { op: "conversion", latency, ok });
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Recorded,
    Duplicate,
    Forged,
}

/// Keeps at most `REMEMBERED` keys, replacing old ones round-robin.
fn remember<T>(list: &mut Vec<T>, item: T, seq: usize) {
    if list.len() < REMEMBERED {
        list.push(item);
    } else {
        list[seq % REMEMBERED] = item;
    }
}

/// The same token with one character of its signature changed.
fn forge(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    if let Some(last) = bytes.len().checked_sub(3) {
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    }
    String::from_utf8(bytes).unwrap_or_default()
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

    #[test]
    fn a_forged_token_differs_from_the_original() {
        assert_ne!(forge("abcdefAgh"), "abcdefAgh");
        assert_ne!(forge("abcdefBgh"), "abcdefBgh");
    }
}
