//! Webhooks as the Standard Webhooks specification defines them: endpoints
//! a tenant registers, the event catalogue, the signature, and the pure rules
//! of delivery (which URLs may be targets, when to try again).
//!
//! The signature: `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed with the base64-decoded
//! part of the endpoint's `whsec_…` secret, over the exact bytes sent.

use std::net::IpAddr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::ids::{random_bytes, CampaignId, DeliveryId, WebhookId};
use super::keys::Owner;
use super::validate::{invalid, Invalid};

/// Every event type an endpoint may subscribe to.
pub const EVENTS: [&str; 12] = [
    "conversion.recorded",
    "conversion.reversed",
    "lead.submitted",
    "lead.verified",
    "lead.rejected",
    "payout.escrowed",
    "payout.released",
    "payout.credited",
    "referral.confirmed",
    "referral.expired",
    "campaign.tracking_confirmed",
    "webhook.test",
];

pub const MAX_URL_LEN: usize = 2048;
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// A registered endpoint. `secret` is the whole `whsec_…` text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub id: WebhookId,
    pub owner: Owner,
    pub url: String,
    pub events: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub enabled: bool,
    /// Why the engine turned it off (consecutive failures), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    pub secret: String,
    pub created_at: u64,
    /// Events in a row whose delivery failed for good.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Bumped on every change; changes are compare-and-set on it.
    #[serde(default)]
    pub version: u64,
}

impl Endpoint {
    /// Whether this endpoint wants `event` (a test goes to the one it names).
    pub fn wants(&self, event: &str) -> bool {
        self.enabled && self.events.iter().any(|e| e == event)
    }

    /// The object the API returns: everything but the secret.
    pub fn public(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("an endpoint serializes");
        let map = v.as_object_mut().expect("an object");
        map.remove("secret");
        map.remove("version");
        v
    }
}

/// A fresh `whsec_` secret: 24 random bytes, base64.
pub fn new_secret() -> String {
    format!("whsec_{}", STANDARD.encode(random_bytes::<24>()))
}

/// The signature header's value for one attempt.
pub fn sign(secret: &str, msg_id: &str, timestamp: u64, body: &[u8]) -> String {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).unwrap_or_default();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// A target URL as saved: absolute http(s), at most [`MAX_URL_LEN`].
pub fn target_url(field: &str, value: &str) -> Result<url::Url, Invalid> {
    if value.len() > MAX_URL_LEN {
        return Err(invalid(field, format!("must be at most {MAX_URL_LEN} characters")));
    }
    let url = url::Url::parse(value).map_err(|e| invalid(field, format!("must be an absolute http(s) URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(field, "must be an absolute http(s) URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(field, "must not carry a user name or password"));
    }
    Ok(url)
}

/// The subscribed events: at least one, each from the catalogue.
pub fn event_list(field: &str, events: &[String]) -> Result<Vec<String>, Invalid> {
    if events.is_empty() {
        return Err(invalid(field, format!("must name at least one event of: {}", EVENTS.join(", "))));
    }
    let mut out: Vec<String> = Vec::with_capacity(events.len());
    for event in events {
        if !EVENTS.contains(&event.as_str()) {
            let shown = super::validate::excerpt(event);
            return Err(invalid(field, format!("unknown event '{shown}'; the catalogue: {}", EVENTS.join(", "))));
        }
        if !out.contains(event) {
            out.push(event.clone());
        }
    }
    Ok(out)
}

/// Whether an address may receive deliveries when private targets are not
/// allowed: loopback, private, link-local (cloud metadata lives there),
/// unspecified, multicast, shared and documentation ranges are refused.
pub fn public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public_address(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || first == 0x2001 && v6.segments()[1] == 0xdb8) // documentation
        }
    }
}

/// When to try again: after attempt `n` (1-based) failed, the `n`th delay
/// of `schedule`, then every `tail` seconds, until `give_up_after` seconds
/// after the first attempt. `None`: give up.
pub fn next_attempt(schedule: &[u64], tail: u64, give_up_after: u64, first_at: u64, n: u32, now: u64) -> Option<u64> {
    let delay = schedule.get(n as usize - 1).copied().unwrap_or(tail);
    let at = now.checked_add(delay)?;
    (at <= first_at.saturating_add(give_up_after)).then_some(at)
}

/// Up to ±10 % of `delay`, from `seed`, so endpoints that failed together do
/// not all come back in the same second.
pub fn jitter(delay: u64, seed: u128) -> u64 {
    let spread = delay / 10;
    if spread == 0 {
        return delay;
    }
    delay - spread + (seed % u128::from(2 * spread + 1)) as u64
}

/// Parses `5s,1m,10m,1h,6h` into seconds.
pub fn parse_schedule(text: &str) -> Result<Vec<u64>, String> {
    text.split(',').map(|part| parse_duration(part.trim())).collect()
}

pub fn parse_duration(text: &str) -> Result<u64, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("'{text}' is not a duration like 30s, 10m, 6h or 1d"))?;
    let scale = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{text}' is not a duration like 30s, 10m, 6h or 1d")),
    };
    n.checked_mul(scale).filter(|&s| s > 0).ok_or_else(|| format!("'{text}' must be above zero and sane"))
}

/// An event about to go out: its id (the `webhook-id` of every attempt),
/// type, time and the object it is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "createdAt")]
    pub created_at: u64,
    pub data: serde_json::Value,
}

/// Who an event concerns: the campaign's advertiser and the affiliate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Audience {
    pub campaign: Option<CampaignId>,
    pub advertiser: Option<super::ids::AdvertiserId>,
    pub affiliate: Option<super::ids::AffiliateId>,
}

impl Audience {
    pub fn includes(&self, owner: Owner) -> bool {
        match owner {
            Owner::Advertiser(id) => self.advertiser == Some(id),
            Owner::Affiliate(id) => self.affiliate == Some(id),
        }
    }
}

/// Where one event's delivery to one endpoint stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// The retry schedule ran out.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed].into_iter().find(|s| s.as_str() == text)
    }
}

/// One try at sending: what came back, or why nothing did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub attempt: u32,
    pub at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// One event on its way to one endpoint: the body is fixed when it is
/// enqueued, so every attempt sends the same bytes under the same id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: DeliveryId,
    pub endpoint_id: WebhookId,
    pub event_id: String,
    pub event_type: String,
    pub body: String,
    pub created_at: u64,
    pub status: DeliveryStatus,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<u64>,
}

impl Delivery {
    /// `event` for `endpoint`, first tried at `at`. Its id is derived from
    /// the two (time-ordered by the event), so enqueueing it again finds it.
    pub fn new(event: &Event, endpoint: WebhookId, at: u64) -> Self {
        let body = serde_json::to_string(event).expect("an event serializes");
        let digest = <Sha256 as sha2::Digest>::digest(format!("{}|{endpoint}", event.id).as_bytes());
        let low = u128::from_be_bytes(digest[..16].try_into().expect("16 bytes")) & ((1 << 80) - 1);
        let id = DeliveryId(u128::from(event.created_at.saturating_mul(1000) & 0xFFFF_FFFF_FFFF) << 80 | low);
        Delivery {
            id,
            endpoint_id: endpoint,
            event_id: event.id.clone(),
            event_type: event.kind.clone(),
            body,
            created_at: at,
            status: DeliveryStatus::Pending,
            attempts: vec![],
            next_attempt_at: Some(at),
        }
    }
}

/// A deterministic `evt_` id for the event `kind` about the object `about`.
pub fn event_id(kind: &str, about: &str) -> String {
    let digest = <Sha256 as sha2::Digest>::digest(format!("{kind}|{about}").as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("evt_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_specifications_example() {
        // The example in the Standard Webhooks specification's README.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn targets_must_be_absolute_http_urls_without_credentials() {
        assert!(target_url("url", "https://hooks.example.com/in?x=1").is_ok());
        for bad in ["ftp://a.example/", "/relative", "https://u:p@a.example/", "mailto:x@y.z"] {
            assert!(target_url("url", bad).is_err(), "{bad}");
        }
        assert!(target_url("url", &format!("https://a.example/{}", "x".repeat(2048))).is_err());
    }

    #[test]
    fn private_and_metadata_addresses_are_not_public() {
        for ip in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "::1", "fd00::1", "0.0.0.0", "::ffff:127.0.0.1", "100.64.0.1"] {
            assert!(!public_address(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            assert!(public_address(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn retries_follow_the_schedule_then_the_tail_until_the_deadline() {
        let s = [5, 60];
        assert_eq!(next_attempt(&s, 43_200, 259_200, 0, 1, 0), Some(5));
        assert_eq!(next_attempt(&s, 43_200, 259_200, 0, 2, 5), Some(65));
        assert_eq!(next_attempt(&s, 43_200, 259_200, 0, 3, 65), Some(43_265));
        assert_eq!(next_attempt(&s, 43_200, 259_200, 0, 9, 250_000), None);
        assert_eq!(parse_schedule("5s, 1m,10m,1h,6h"), Ok(vec![5, 60, 600, 3600, 21_600]));
        assert!(parse_schedule("5s,soon").is_err() && parse_schedule("0s").is_err());
    }

    #[test]
    fn unknown_events_are_refused_with_the_catalogue() {
        let err = event_list("events", &["conversion.recorded".into(), "nope".into()]).unwrap_err();
        assert!(err.message.contains("payout.credited"), "{err}");
        assert!(event_list("events", &[]).is_err());
    }

    #[test]
    fn jitter_stays_within_a_tenth() {
        for seed in 0..1000u128 {
            let d = jitter(600, seed * 7919);
            assert!((540..=660).contains(&d), "{d}");
        }
    }
}
