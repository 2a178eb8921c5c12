//! The batch scenario: `POST /api/v1/postback/batch` with `--batch-items`
//! postbacks per request as NDJSON, the same share of repeated externalIds as
//! the postback scenario. Every item's answer is checked: a new externalId
//! must come back `recorded`, a repeat `duplicate`.

use std::time::Instant;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::json;

use super::{remember, Driver, Sample};

impl Driver {
    pub(super) async fn batch(&mut self, from: Instant, out: &mut Vec<Sample>) {
        let n = self.mix.batch_items.max(1);
        let mut items = Vec::with_capacity(n);
        let mut body = Vec::with_capacity(n * 120);
        for _ in 0..n {
            let (repeat, (c, k, external_id, revenue)) = self.next_postback();
            let code = &self.target.campaigns[c].codes[k];
            let line =
                json!({"swarm_ref": code, "externalId": external_id, "eventType": "PURCHASE", "revenueCents": revenue});
            serde_json::to_writer(&mut body, &line).expect("json");
            body.push(b'\n');
            items.push(((c, k, external_id, revenue), repeat));
        }
        let auth = format!("Bearer {}", self.target.advertiser_key);
        let headers = [("authorization", auth.as_str()), ("content-type", "application/x-ndjson")];
        let reply = self.send(Method::POST, "/api/v1/postback/batch", &headers, Bytes::from(body)).await;
        let latency = from.elapsed();
        let Some(reply) = reply.filter(|r| r.status == StatusCode::OK) else {
            // Outcome unknown for every new item: the stats check allows for it.
            for ((c, ..), _) in &items {
                self.tally.campaigns[*c].unknown += 1;
            }
            out.push(Sample { op: "batch", latency, ok: false });
            return;
        };
        let answer = reply.json();
        let results = answer["results"].as_array().cloned().unwrap_or_default();
        let mut ok = results.len() == items.len();
        for (((c, k, external_id, revenue), repeat), result) in items.into_iter().zip(&results) {
            match (result["status"].as_str().unwrap_or(""), repeat) {
                ("recorded", false) => {
                    let payout = self.target.campaigns[c].payout_for(revenue);
                    let t = &mut self.tally.campaigns[c];
                    t.postbacks_recorded += 1;
                    t.payout_cents += payout;
                    remember(&mut self.postbacks, (c, k, external_id, revenue), self.seq as usize);
                }
                ("duplicate", _) => self.tally.campaigns[c].postbacks_duplicate += 1,
                (status, _) => {
                    ok = false;
                    let what = if repeat { "a repeat" } else { "a new externalId" };
                    self.tally.problem(format!("batch item {what} {external_id} answered {status}: {result}"));
                }
            }
        }
        out.push(Sample { op: "batch", latency, ok });
    }
}
