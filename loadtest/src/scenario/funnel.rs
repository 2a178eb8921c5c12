//! The funnel scenario: click, take irw_id from the redirect, convert; or
//! repeat an acknowledged token (a duplicate) or send a forged one (ignored).

use std::time::Instant;

use bytes::Bytes;
use hyper::Method;
use serde_json::json;

use super::{remember, Driver, Sample};

impl Driver {
    pub(super) async fn funnel(&mut self, from: Instant, out: &mut Vec<Sample>) {
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
    use super::forge;

    #[test]
    fn a_forged_token_differs_from_the_original() {
        assert_ne!(forge("abcdefAgh"), "abcdefAgh");
        assert_ne!(forge("abcdefBgh"), "abcdefBgh");
    }
}
