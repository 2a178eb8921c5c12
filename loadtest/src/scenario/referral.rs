//! The referral scenario: an affiliate creates a referral, the advertiser
//! confirms it; a repeated confirmation must be refused.

use std::time::Instant;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::json;

use super::{remember, Driver, Sample};

impl Driver {
    /// Creates a referral as a random affiliate and confirms it as the
    /// advertiser, or repeats the confirmation of an earlier one.
    pub(super) async fn referral(&mut self, from: Instant, out: &mut Vec<Sample>) {
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
}
