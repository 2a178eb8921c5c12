//! The edge: the redirect, the conversions endpoint and the postback.

use std::net::{IpAddr, SocketAddr};

use hyper::body::Incoming;
use hyper::{header, Request, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Number, Value};

use super::auth::require_principal;
use super::body::{json_response, text_response, Resp};
use super::{read_body, Ctx};
use crate::domain::validate::invalid;
use crate::engine::ingest::{ClickInput, ConversionAnswer, ConversionInput, PostbackAnswer, PostbackInput};
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
    };
    match ctx.engine.click(input).await {
        Ok(location) => {
            let mut resp = text_response(StatusCode::FOUND, "text/plain; charset=utf-8", "");
            let h = resp.headers_mut();
            h.insert(
                header::LOCATION,
                header::HeaderValue::from_str(&location).map_err(|_| Error::NotFound(code.into()))?,
            );
            // Every click must reach us: no caching of the redirect anywhere.
            h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
            h.insert(header::REFERRER_POLICY, header::HeaderValue::from_static("no-referrer-when-downgrade"));
            Ok(resp)
        }
        Err(Error::NotFound(_)) => Ok(text_response(StatusCode::NOT_FOUND, "text/html; charset=utf-8", NOT_FOUND_PAGE)),
        Err(e) => Err(e),
    }
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConversionBody {
    click_id: Option<String>,
    email: Option<String>,
    properties: Option<Map<String, Value>>,
}

pub async fn conversion(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    let who = require_principal(&ctx.engine, req.headers()).await?;
    let body: ConversionBody = read_body(ctx, req).await?;
    let input = ConversionInput { click_id: body.click_id, email: body.email, properties: body.properties };
    Ok(match ctx.engine.convert(&who, input).await? {
        ConversionAnswer::Recorded(id) => {
            json_response(StatusCode::CREATED, &json!({"status": "recorded", "conversionId": id}))
        }
        ConversionAnswer::Duplicate(id) => {
            json_response(StatusCode::OK, &json!({"status": "duplicate", "conversionId": id}))
        }
        ConversionAnswer::Ignored(reason) => {
            json_response(StatusCode::OK, &json!({"status": "ignored", "reason": reason}))
        }
    })
}

/// Field names as the tracking document fixes them (`swarm_ref` included).
#[derive(Deserialize)]
struct PostbackBody {
    swarm_ref: Option<String>,
    #[serde(rename = "externalId")]
    external_id: Option<Value>,
    #[serde(rename = "eventType")]
    event_type: Option<String>,
    #[serde(rename = "revenueCents")]
    revenue_cents: Option<Number>,
    metadata: Option<Map<String, Value>>,
}

pub async fn postback(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    let who = require_principal(&ctx.engine, req.headers()).await?;
    let body: PostbackBody = read_body(ctx, req).await?;
    let input = PostbackInput {
        swarm_ref: body.swarm_ref,
        external_id: external_id(body.external_id)?,
        event_type: body.event_type,
        revenue_cents: body.revenue_cents.map(|n| whole_cents(&n)).transpose()?,
        metadata: body.metadata,
    };
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
    })
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
fn whole_cents(n: &Number) -> Result<i64> {
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        _ => Err(invalid("revenueCents", "must be a whole number of cents").into()),
    }
}
