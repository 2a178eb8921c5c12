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
pub const EVENTS: [&str; 15] = [
    "conversion.recorded",
    "conversion.held",
    "conversion.approved",
    "conversion.rejected",
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
    /// A signed webhook, or an affiliate's postback URL template.
    #[serde(default, skip_serializing_if = "EndpointKind::is_webhook")]
    pub kind: EndpointKind,
}

/// What an endpoint is: a Standard Webhooks receiver (the JSON event,
/// signed), or an ad network style postback URL whose macros are filled in
/// from each conversion, for one campaign or all of the affiliate's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EndpointKind {
    #[default]
    Webhook,
    #[serde(rename_all = "camelCase")]
    Postback {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        campaign_id: Option<CampaignId>,
        method: PostbackMethod,
    },
}

impl EndpointKind {
    pub fn is_webhook(&self) -> bool {
        *self == EndpointKind::Webhook
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PostbackMethod {
    #[default]
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
}

/// The events a partner postback may fire on.
pub const POSTBACK_EVENTS: [&str; 2] = ["conversion.recorded", "conversion.reversed"];

/// The macros a postback URL template may use.
pub const MACROS: [&str; 18] = [
    "click_id",
    "conversion_id",
    "external_id",
    "campaign_id",
    "affiliate_id",
    "event_type",
    "status",
    "payout",
    "payout_cents",
    "revenue_cents",
    "currency",
    "sub1",
    "sub2",
    "sub3",
    "sub4",
    "sub5",
    "timestamp",
    "event_id",
];

/// The `{name}` macros of `template`, in order, and whether the braces are
/// balanced (a `{` with no `}` is an error too).
fn macros_in(template: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or("has a '{' without its '}'")?;
        out.push(&after[..close]);
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err("has a '}' without its '{'".into());
    }
    Ok(out)
}

/// A postback URL template as saved: known macros only (the 400 names the
/// others), none in the scheme or host, and an absolute http(s) URL once
/// they are filled in.
pub fn postback_template(field: &str, template: &str) -> Result<url::Url, Invalid> {
    let found = macros_in(template).map_err(|why| invalid(field, why))?;
    let unknown: Vec<&str> = found.iter().copied().filter(|m| !MACROS.contains(m)).collect();
    if !unknown.is_empty() {
        let names: Vec<String> = unknown.iter().map(|m| format!("{{{}}}", super::validate::excerpt(m))).collect();
        let known: Vec<String> = MACROS.iter().map(|m| format!("{{{m}}}")).collect();
        return Err(invalid(field, format!("unknown macros {}; known: {}", names.join(", "), known.join(" "))));
    }
    let filled = fill(template, |_| "x".into());
    let url = target_url(field, &filled)?;
    let authority_end = template
        .find("://")
        .map(|i| i + 3)
        .map_or(0, |start| template[start..].find(['/', '?', '#']).map_or(template.len(), |i| start + i));
    if template[..authority_end].contains('{') {
        return Err(invalid(field, "macros may not stand in the scheme, host or port"));
    }
    Ok(url)
}

/// `template` with each `{macro}` replaced by `value(macro)`, URL-encoded.
pub fn fill(template: &str, value: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let encoded = percent_encoding::utf8_percent_encode(&value(&after[..close]), URL_VALUE).to_string();
        out.push_str(&encoded);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Everything but RFC 3986's unreserved characters is encoded, so a value
/// can never end a parameter, start a new one or leave the query.
const URL_VALUE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// A macro's value for `event` (a conversion or a lead as the API shows it).
pub fn macro_value(event: &Event, name: &str, currency: &str) -> String {
    let d = &event.data;
    let text = |key: &str| match &d[key] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    match name {
        "conversion_id" => text("id"),
        "click_id" => text("clickId"),
        "external_id" => text("externalId"),
        "campaign_id" => text("campaignId"),
        "affiliate_id" => text("affiliateId"),
        "event_type" => text("eventType"),
        "status" => event.kind.strip_prefix("conversion.").unwrap_or(&event.kind).to_string(),
        "payout_cents" => text("payoutCents"),
        "payout" => {
            let cents = d["payoutCents"].as_u64().unwrap_or(0);
            format!("{}.{:02}", cents / 100, cents % 100)
        }
        "revenue_cents" => text("revenueCents"),
        "currency" => currency.to_string(),
        "timestamp" => event.created_at.to_string(),
        "event_id" => event.id.clone(),
        sub if sub.starts_with("sub") => text(sub),
        _ => String::new(),
    }
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
    /// Partner postbacks: the URL with its macros filled in (else the
    /// endpoint's own URL), and the method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<PostbackMethod>,
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
            url: None,
            method: None,
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
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "0.0.0.0",
            "::ffff:127.0.0.1",
            "100.64.0.1",
        ] {
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
    fn postback_templates_know_their_macros_and_encode_every_value() {
        let t = "https://trk.example/pb?cid={click_id}&p={payout}&s1={sub1}";
        assert!(postback_template("url", t).is_ok());
        let err = postback_template("url", "https://t.example/?a={clickid}&b={sub9}").unwrap_err();
        assert!(err.message.contains("{clickid}") && err.message.contains("{sub9}"), "{err}");
        assert!(postback_template("url", "https://{sub1}.example/").is_err(), "no macros in the host");
        assert!(postback_template("url", "https://t.example/?a={sub1").is_err());
        let event = Event {
            id: "evt_1".into(),
            kind: "conversion.recorded".into(),
            created_at: 1_700_000_000,
            data: serde_json::json!({"id": "cnv_1", "clickId": "clk_2", "payoutCents": 305, "sub1": "a&b=c d#?/"}),
        };
        let url = fill(t, |m| macro_value(&event, m, "USD"));
        assert_eq!(url, "https://trk.example/pb?cid=clk_2&p=3.05&s1=a%26b%3Dc%20d%23%3F%2F");
        assert_eq!(macro_value(&event, "status", "USD"), "recorded");
    }

    #[test]
    fn jitter_stays_within_a_tenth() {
        for seed in 0..1000u128 {
            let d = jitter(600, seed * 7919);
            assert!((540..=660).contains(&d), "{d}");
        }
    }
}
