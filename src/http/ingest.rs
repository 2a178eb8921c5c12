//! The edge: the redirect, the conversions endpoint and the postback.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{header, Request, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Number, Value};

use super::auth::{presented_key, require_principal};
use super::batch::{self, ItemResult};
use super::body::{json_response, text_response, Resp};
use super::{read_body, Ctx};
use crate::domain::ids::{ConversionId, LeadId};
use crate::domain::keys::{hash_key, KeyHash, Principal};
use crate::domain::model::{Conversion, ConversionStatus};
use crate::domain::subids::SubIds;
use crate::domain::validate::invalid;
use crate::engine::ingest::{ClickInput, ConversionAnswer, ConversionInput, PostbackAnswer, PostbackInput};
use crate::engine::Engine;
use crate::error::{Error, Result};

const NOT_FOUND_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Link not found</title></head>\
<body style=\"font-family:sans-serif;text-align:center;margin-top:15vh\"><h1>This link is not active</h1>\
<p>The partner link you followed is unknown or its campaign is not running.</p></body></html>";

pub async fn redirect(ctx: &Ctx, req: &Request<Incoming>, code: &str, remote: SocketAddr) -> Result<Resp> {
    let header_str = |name: header::HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let input = ClickInput {
        code,
        ip: client_ip(ctx, req, remote),
        user_agent: header_str(header::USER_AGENT),
        referer: header_str(header::REFERER),
        head: req.method() == hyper::Method::HEAD,
        subs: link_subs(req.uri().query()),
        paid: crate::engine::clickguard::has_paid_click_id(req.uri().query()),
    };
    match ctx.engine.click(input).await {
        Ok(location) => {
            let mut resp = text_response(StatusCode::FOUND, "text/plain; charset=utf-8", "");
            let h = resp.headers_mut();
            // The Location's buffer becomes the header as it is, uncopied.
            let location = header::HeaderValue::from_maybe_shared(bytes::Bytes::from(location));
            h.insert(header::LOCATION, location.map_err(|_| Error::NotFound(code.into()))?);
            // Every click must reach us: no caching of the redirect anywhere.
            h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
            h.insert(header::REFERRER_POLICY, header::HeaderValue::from_static("no-referrer-when-downgrade"));
            Ok(resp)
        }
        Err(Error::NotFound(_)) => Ok(text_response(StatusCode::NOT_FOUND, "text/html; charset=utf-8", NOT_FOUND_PAGE)),
        Err(e) => Err(e),
    }
}

/// The link's sub-IDs, leniently: a visitor never sees an error for them.
fn link_subs(query: Option<&str>) -> SubIds {
    let Some(query) = query.filter(|q| q.contains("sub")) else { return SubIds::default() };
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    // The first occurrence of a name wins, as everywhere else we read a query.
    SubIds::lenient(|name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()))
}

fn client_ip(ctx: &Ctx, req: &Request<Incoming>, remote: SocketAddr) -> IpAddr {
    if ctx.engine.config.http.trust_forwarded_for {
        let forwarded = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
        if let Some(ip) = forwarded.and_then(|v| v.split(',').next()).and_then(|v| v.trim().parse().ok()) {
            return ip;
        }
    }
    remote.ip()
}

/// The abuse-limit bucket shared by every not-yet-known key from one client.
const UNKNOWN_KEYS: KeyHash = [0; 32];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConversionBody {
    click_id: Option<String>,
    email: Option<String>,
    properties: Option<Map<String, Value>>,
    /// The snippet sends its publishable key in the body, so its request is a
    /// CORS "simple request" (text/plain, no custom header, no preflight).
    publishable_key: Option<String>,
}

pub async fn conversion(ctx: &Ctx, req: Request<Incoming>, remote: SocketAddr) -> Result<Resp> {
    let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(String::from);
    let client = client_ip(ctx, &req, remote);
    let header_key = presented_key(req.headers()).map(String::from);
    let body: ConversionBody = read_body(ctx, req).await?;
    let (key, who) = conversion_caller(ctx, header_key, body.publishable_key, client).await?;
    let input = ConversionInput {
        click_id: body.click_id,
        email: body.email,
        properties: body.properties,
        origin: origin.clone(),
        client,
        key: hash_key(&key),
    };
    let answer = ctx.engine.convert(&who, input).await?;
    let allowed = !matches!(answer, ConversionAnswer::Ignored("origin_not_allowed"));
    let resp = match answer {
        ConversionAnswer::Recorded(c) => recorded_json(&c),
        ConversionAnswer::Duplicate(id) => {
            json_response(StatusCode::OK, &json!({"status": "duplicate", "conversionId": id}))
        }
        ConversionAnswer::Ignored(reason) => {
            json_response(StatusCode::OK, &json!({"status": "ignored", "reason": reason}))
        }
    };
    Ok(if allowed { cors(resp, origin.as_deref()) } else { resp })
}

/// A key in the headers (secret or publishable), else a publishable key in
/// the body. Secret keys are refused in bodies: they belong to servers.
async fn conversion_caller(
    ctx: &Ctx,
    header: Option<String>,
    body: Option<String>,
    client: IpAddr,
) -> Result<(String, Principal)> {
    let from_body = header.is_none();
    let key = header.or(body).filter(|k| !k.trim().is_empty()).ok_or(Error::Unauthorized(
        "send a secret key (x-api-key or Authorization: Bearer) or a publishable key (publishableKey)",
    ))?;
    // Anyone can send a page a made-up key; each one not yet known would cost
    // a store read, so unknown body keys spend a per-client bucket first.
    let engine = &ctx.engine;
    if from_body && !engine.catalog.knows_key(key.trim()) {
        let bucket = (UNKNOWN_KEYS, crate::engine::limiter::client_network(client));
        engine.limiter.take(bucket, Instant::now()).map_err(|retry_after| Error::RateLimited { retry_after })?;
    }
    // Secret keys spend their write bucket here; publishable ones are
    // limited per client in `Engine::convert`.
    let who = engine.authenticate(key.trim(), true).await?;
    if from_body && !matches!(who, Principal::Publishable { .. }) {
        return Err(Error::Unauthorized("only publishable keys may be sent in the body; send secret keys in a header"));
    }
    Ok((key, who))
}

/// CORS for the conversions endpoint: the page's origin is echoed (never
/// `*`), no credentials are involved, and caches are told the answer varies.
pub fn cors(mut resp: Resp, origin: Option<&str>) -> Resp {
    if let Some(value) = origin.and_then(|o| header::HeaderValue::from_str(o).ok()) {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        h.insert(header::VARY, header::HeaderValue::from_static("Origin"));
    }
    resp
}

/// Answers a CORS preflight for integrations that call the conversions
/// endpoint from a page with JSON and custom headers.
pub fn preflight(req: &Request<Incoming>) -> Resp {
    let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let mut resp = cors(text_response(StatusCode::NO_CONTENT, "text/plain; charset=utf-8", ""), origin);
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, header::HeaderValue::from_static("POST, OPTIONS"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        header::HeaderValue::from_static("content-type, authorization, x-api-key"),
    );
    h.insert(header::ACCESS_CONTROL_MAX_AGE, header::HeaderValue::from_static("86400"));
    resp
}

/// Field names as the tracking document fixes them (`swarm_ref` included).
/// Public only so the hot-path bench decodes this very struct.
#[derive(Deserialize)]
pub struct PostbackBody {
    swarm_ref: Option<String>,
    #[serde(rename = "externalId")]
    external_id: Option<Value>,
    #[serde(rename = "eventType")]
    event_type: Option<String>,
    #[serde(rename = "revenueCents")]
    revenue_cents: Option<Number>,
    metadata: Option<Map<String, Value>>,
    sub1: Option<String>,
    sub2: Option<String>,
    sub3: Option<String>,
    sub4: Option<String>,
    sub5: Option<String>,
}

fn postback_input(body: PostbackBody) -> Result<PostbackInput> {
    Ok(PostbackInput {
        subs: SubIds::strict([body.sub1, body.sub2, body.sub3, body.sub4, body.sub5])?,
        swarm_ref: body.swarm_ref,
        external_id: external_id(body.external_id)?,
        event_type: body.event_type,
        revenue_cents: body.revenue_cents.map(|n| whole_cents(&n)).transpose()?,
        metadata: body.metadata,
    })
}

pub async fn postback(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    let who = require_principal(&ctx.engine, &req).await?;
    let body: PostbackBody = read_body(ctx, req).await?;
    let input = postback_input(body)?;
    Ok(match ctx.engine.postback(&who, input).await? {
        PostbackAnswer::Test { campaign, confirmed_at } => json_response(
            StatusCode::OK,
            &json!({
                "status": "test",
                "test": true,
                "campaignId": campaign,
                "trackingConfirmedAt": confirmed_at,
                "message": "Tracking confirmed. This was a test postback: no lead was created. You can now activate the campaign.",
            }),
        ),
        PostbackAnswer::Recorded(lead) => {
            json_response(StatusCode::CREATED, &json!({"status": "recorded", "leadId": lead.id, "lead": lead}))
        }
        PostbackAnswer::Duplicate(lead) => {
            json_response(StatusCode::OK, &json!({"status": "duplicate", "leadId": lead.id, "lead": lead}))
        }
        PostbackAnswer::Reversed { lead, payout } => json_response(
            StatusCode::OK,
            &json!({"status": "reversed", "reversed": true, "leadId": lead.id, "payout": payout}),
        ),
    })
}

/// `POST /api/v1/postback/batch`: the single postback's path for each item
/// (see `batch`). The key spends one request of its write limit.
pub async fn postback_batch(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    let who = require_principal(&ctx.engine, &req).await?;
    Engine::postback_sender(&who)?;
    let items = read_batch::<PostbackBody>(ctx, req).await?;
    let key = |b: &PostbackBody| external_id(b.external_id.clone()).ok().flatten();
    let results = batch::run_all(items, key, |b| postback_item(ctx, &who, b)).await;
    batch::answer("/api/v1/postback/batch", results)
}

async fn postback_item(ctx: &Ctx, who: &Principal, body: PostbackBody) -> Result<ItemResult> {
    let lead = |status, id: LeadId| ItemResult { status, id: Some(("leadId", id.to_string())), reason: None };
    Ok(match ctx.engine.postback(who, postback_input(body)?).await? {
        PostbackAnswer::Test { .. } => ItemResult { status: "test", id: None, reason: None },
        // Recorded, but rejected by a rule or a cap: the item says why.
        PostbackAnswer::Recorded(l) if l.status == crate::domain::model::LeadStatus::Rejected => {
            ItemResult { reason: Some(static_reason(l.rejection_reason.as_deref())), ..lead("recorded", l.id) }
        }
        PostbackAnswer::Recorded(l) => lead("recorded", l.id),
        PostbackAnswer::Duplicate(l) => lead("duplicate", l.id),
        PostbackAnswer::Reversed { lead: l, .. } => lead("reversed", l.id),
    })
}

/// One item of `POST /api/v1/affiliate/conversions/batch`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ServerConversion {
    click_id: Option<String>,
    email: Option<String>,
    properties: Option<Map<String, Value>>,
}

/// `POST /api/v1/affiliate/conversions/batch`: server-to-server conversions
/// with a secret key that has `affiliate:write` (publishable keys belong to
/// pages, which send one conversion at a time).
pub async fn conversion_batch(ctx: &Ctx, req: Request<Incoming>, remote: SocketAddr) -> Result<Resp> {
    let who = require_principal(&ctx.engine, &req).await?;
    Engine::conversion_server(&who)?;
    let key = hash_key(presented_key(req.headers()).unwrap_or_default().trim());
    let client = client_ip(ctx, &req, remote);
    let items = read_batch::<ServerConversion>(ctx, req).await?;
    let click_key = |c: &ServerConversion| c.click_id.as_deref().map(|t| t.trim().to_string());
    let who = &who;
    let results = batch::run_all(items, click_key, |c| async move {
        let input = ConversionInput {
            click_id: c.click_id,
            email: c.email,
            properties: c.properties,
            origin: None,
            client,
            key,
        };
        Ok(match ctx.engine.convert(who, input).await? {
            ConversionAnswer::Recorded(c) if c.status == ConversionStatus::Rejected => ItemResult {
                status: "ignored",
                id: Some(("conversionId", c.id.to_string())),
                reason: Some(static_reason(c.reason.as_deref())),
            },
            ConversionAnswer::Recorded(c) => conversion_item("recorded", c.id),
            ConversionAnswer::Duplicate(id) => conversion_item("duplicate", id),
            ConversionAnswer::Ignored(reason) => ItemResult { status: "ignored", id: None, reason: Some(reason) },
        })
    })
    .await;
    batch::answer("/api/v1/affiliate/conversions/batch", results)
}

fn conversion_item(status: &'static str, id: ConversionId) -> ItemResult {
    ItemResult { status, id: Some(("conversionId", id.to_string())), reason: None }
}

/// A batch body within `ingest.batch_max_bytes`, split into its items.
async fn read_batch<T: serde::de::DeserializeOwned>(ctx: &Ctx, req: Request<Incoming>) -> Result<Vec<Result<T>>> {
    let config = &ctx.engine.config;
    let content_type = batch::content_type(&req);
    let timeout = std::time::Duration::from_millis(config.http.body_read_timeout_ms);
    let bytes = super::body::read_bytes(req, config.ingest.batch_max_bytes, timeout).await?;
    batch::split_items(content_type.as_deref(), &bytes, config.ingest.batch_max_items)
}

/// Order ids are often numbers in the caller's code (`externalId: order.id`),
/// so integers are accepted and kept as their decimal text.
fn external_id(value: Option<Value>) -> Result<Option<String>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
        Some(_) => Err(invalid("externalId", "must be a string (or an integer)").into()),
    }
}

/// `Math.round(total * 100)` can arrive as `9900` or `9900.0`; both are whole
/// cents. Fractions of a cent are refused rather than rounded silently.
pub(crate) fn whole_cents(n: &Number) -> Result<i64> {
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        _ => Err(invalid("revenueCents", "must be a whole number of cents").into()),
    }
}

/// A recorded conversion's answer: 201 `recorded` (with `review` and
/// `flags` when held for review), or, when the rules or a cap rejected it,
/// the lenient 200 `ignored` with its reason (a browser never sees an error).
fn recorded_json(c: &Conversion) -> Resp {
    match c.status {
        ConversionStatus::Approved => {
            json_response(StatusCode::CREATED, &json!({"status": "recorded", "conversionId": c.id}))
        }
        ConversionStatus::PendingReview => json_response(
            StatusCode::CREATED,
            &json!({"status": "recorded", "conversionId": c.id, "review": "pending_review", "flags": c.flags}),
        ),
        ConversionStatus::Rejected => json_response(
            StatusCode::OK,
            &json!({"status": "ignored", "reason": c.reason, "conversionId": c.id, "flags": c.flags}),
        ),
    }
}

/// A rejection reason as the batch answer's static text.
fn static_reason(reason: Option<&str>) -> &'static str {
    crate::domain::rules::Reason::ALL.iter().map(|r| r.as_str()).find(|r| Some(*r) == reason).unwrap_or("rejected")
}
