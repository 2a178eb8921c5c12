//! `/api/v1/webhooks`: a tenant's webhook endpoints (Standard Webhooks).
//! The secret (`whsec_…`) is in the answers to create and rotate-secret
//! only; every other answer leaves it out.

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::require_principal;
use super::body::{json_response, text_response, Resp};
use super::query::Query;
use super::{read_body, read_body_or_default, Ctx};
use crate::domain::ids::DeliveryId;
use crate::domain::validate::invalid;
use crate::domain::webhook::{Delivery, DeliveryStatus, Endpoint, EndpointKind};
use crate::engine::webhooks::{NewWebhook, PostbackUrl, WebhookChange};
use crate::error::Result;

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    url: Option<String>,
    events: Option<Vec<String>>,
    enabled: Option<bool>,
    description: Option<String>,
}

fn with_secret(endpoint: &Endpoint) -> Value {
    let mut v = endpoint.public();
    v["secret"] = endpoint.secret.clone().into();
    v
}

/// A delivery as its log shows it: the attempts, never the body.
fn delivery_json(d: &Delivery) -> Value {
    json!({
        "id": d.id,
        "webhookId": d.endpoint_id,
        "eventId": d.event_id,
        "eventType": d.event_type,
        "status": d.status.as_str(),
        "createdAt": d.created_at,
        "attempts": d.attempts,
        "nextAttemptAt": d.next_attempt_at,
    })
}

pub async fn collection(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    let who = require_principal(&ctx.engine, &req).await?;
    if req.method() == Method::GET {
        Query::parse(req.uri().query(), &[])?;
        let list: Vec<Value> = ctx.engine.list_webhooks(&who).await?.iter().map(Endpoint::public).collect();
        return Ok(json_response(StatusCode::OK, &json!({ "webhooks": list })));
    }
    let body: CreateBody = read_body(ctx, req).await?;
    let new = NewWebhook { url: body.url, events: body.events, description: body.description };
    let endpoint = ctx.engine.create_webhook(&who, new).await?;
    Ok(json_response(StatusCode::CREATED, &with_secret(&endpoint)))
}

pub async fn item(ctx: &Ctx, req: Request<Incoming>, id: &str) -> Result<Resp> {
    let who = require_principal(&ctx.engine, &req).await?;
    let m = req.method().clone();
    if m == Method::GET {
        return Ok(json_response(StatusCode::OK, &ctx.engine.webhook(&who, id).await?.public()));
    }
    if m == Method::DELETE {
        ctx.engine.delete_webhook(&who, id).await?;
        let mut resp = text_response(StatusCode::NO_CONTENT, "text/plain; charset=utf-8", "");
        resp.headers_mut().remove(hyper::header::CONTENT_TYPE);
        return Ok(resp);
    }
    let body: PatchBody = read_body(ctx, req).await?;
    let change =
        WebhookChange { url: body.url, events: body.events, enabled: body.enabled, description: body.description };
    Ok(json_response(StatusCode::OK, &ctx.engine.change_webhook(&who, id, change).await?.public()))
}

pub async fn rotate_secret(ctx: &Ctx, req: Request<Incoming>, id: &str) -> Result<Resp> {
    let who = require_principal(&ctx.engine, &req).await?;
    let endpoint = ctx.engine.rotate_webhook_secret(&who, id).await?;
    Ok(json_response(StatusCode::OK, &with_secret(&endpoint)))
}

pub async fn test(ctx: &Ctx, req: Request<Incoming>, id: &str) -> Result<Resp> {
    let who = require_principal(&ctx.engine, &req).await?;
    let _: Value = read_body_or_default(ctx, req).await?;
    let delivery = ctx.engine.test_webhook(&who, id).await?;
    Ok(json_response(StatusCode::ACCEPTED, &delivery_json(&delivery)))
}

pub async fn deliveries(ctx: &Ctx, req: Request<Incoming>, id: &str) -> Result<Resp> {
    let who = require_principal(&ctx.engine, &req).await?;
    let q = Query::parse(req.uri().query(), &["status", "before", "limit"])?;
    let limit = q.limit(DEFAULT_PAGE, MAX_PAGE)?;
    let status = q
        .get("status")
        .map(|s| DeliveryStatus::parse(s).ok_or_else(|| invalid("status", "must be pending, delivered or failed")))
        .transpose()?;
    let before = q
        .get("before")
        .map(|b| b.parse::<DeliveryId>().map_err(|_| invalid("before", "must be a delivery id (msg_…) from a page")))
        .transpose()?;
    let page = ctx.engine.webhook_deliveries(&who, id, status, before, limit + 1).await?;
    let next = (page.len() > limit).then(|| page[limit - 1].id.to_string());
    let list: Vec<Value> = page.iter().take(limit).map(delivery_json).collect();
    Ok(json_response(StatusCode::OK, &json!({ "deliveries": list, "nextBefore": next })))
}

pub async fn redeliver(ctx: &Ctx, req: Request<Incoming>, id: &str, delivery: &str) -> Result<Resp> {
    let who = require_principal(&ctx.engine, &req).await?;
    let _: Value = read_body_or_default(ctx, req).await?;
    let again = ctx.engine.redeliver(&who, id, delivery).await?;
    Ok(json_response(StatusCode::ACCEPTED, &delivery_json(&again)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PostbackUrlBody {
    url: Option<String>,
    campaign_id: Option<String>,
    events: Option<Vec<String>>,
    method: Option<String>,
}

/// A partner postback URL as its affiliate sees it.
fn postback_json(e: &Endpoint) -> Value {
    let (campaign, method) = match &e.kind {
        EndpointKind::Postback { campaign_id, method } => (json!(campaign_id), json!(method)),
        EndpointKind::Webhook => (Value::Null, Value::Null),
    };
    json!({
        "id": e.id,
        "url": e.url,
        "campaignId": campaign,
        "events": e.events,
        "method": method,
        "enabled": e.enabled,
        "disabledReason": e.disabled_reason,
        "createdAt": e.created_at,
        "deliveries": format!("/api/v1/webhooks/{}/deliveries", e.id),
    })
}

/// `GET`, `PUT`, `DELETE /api/v1/affiliate/postback-url`.
pub async fn postback_url(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    let who = require_principal(&ctx.engine, &req).await?;
    let m = req.method().clone();
    if m == Method::GET {
        Query::parse(req.uri().query(), &[])?;
        let list: Vec<Value> = ctx.engine.postback_urls(&who).await?.iter().map(postback_json).collect();
        return Ok(json_response(StatusCode::OK, &json!({ "postbackUrls": list })));
    }
    if m == Method::DELETE {
        let q = Query::parse(req.uri().query(), &["campaignId"])?;
        ctx.engine.delete_postback_url(&who, q.get("campaignId")).await?;
        let mut resp = text_response(StatusCode::NO_CONTENT, "text/plain; charset=utf-8", "");
        resp.headers_mut().remove(hyper::header::CONTENT_TYPE);
        return Ok(resp);
    }
    let body: PostbackUrlBody = read_body(ctx, req).await?;
    let input = PostbackUrl { url: body.url, campaign_id: body.campaign_id, events: body.events, method: body.method };
    let endpoint = ctx.engine.set_postback_url(&who, input).await?;
    Ok(json_response(StatusCode::OK, &postback_json(&endpoint)))
}
