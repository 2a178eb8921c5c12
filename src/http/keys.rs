//! `/api/v1/keys`: a tenant's own keys. List (never the secret), add one
//! with the same scopes (shown once), revoke one, rotate a publishable key.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{json, Value};

use super::auth::require_principal;
use super::body::{json_response, text_response, Resp};
use super::query::Query;
use super::Ctx;
use crate::domain::keys::Principal;
use crate::engine::tenants::NewKey;
use crate::error::Result;
use crate::store::Listed;

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

/// A secret key as minted: the only answer that ever holds it.
pub fn new_key_json(new: &NewKey) -> Value {
    json!({
        "id": new.record.id,
        "apiKey": new.key,
        "prefix": new.record.prefix,
        "scopes": new.record.principal.scope_names(),
        "createdAt": new.record.created_at,
    })
}

fn listed_json((l, current): &(Listed, bool)) -> Value {
    let k = &l.key;
    let mut v = json!({
        "id": k.id,
        "kind": if k.principal.is_secret() { "secret" } else { "publishable" },
        "prefix": k.prefix,
        "scopes": k.principal.scope_names(),
        "createdAt": k.created_at,
        "lastUsedAt": l.last_used_at,
    });
    if let Principal::Publishable { campaign, .. } = k.principal {
        // Public by design: the snippet carries it.
        v["publishableKey"] = k.prefix.clone().into();
        v["campaignId"] = json!(campaign);
        // The one the advertiser or campaign shows now; older ones still
        // work until deleted.
        v["current"] = (*current).into();
    }
    v
}

pub async fn list(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    let who = require_principal(&ctx.engine, &req).await?;
    let q = Query::parse(req.uri().query(), &["before", "limit"])?;
    let limit = q.limit(DEFAULT_PAGE, MAX_PAGE)?;
    let keys = ctx.engine.list_keys(&who, q.get("before"), limit + 1).await?;
    let next = (keys.len() > limit).then(|| keys[limit - 1].0.key.id.to_string());
    let keys: Vec<Value> = keys.iter().take(limit).map(listed_json).collect();
    Ok(json_response(StatusCode::OK, &json!({ "keys": keys, "nextBefore": next })))
}

pub async fn create(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    let who = require_principal(&ctx.engine, &req).await?;
    let new = ctx.engine.create_key(&who).await?;
    Ok(json_response(StatusCode::CREATED, &new_key_json(&new)))
}

pub async fn revoke(ctx: &Ctx, req: Request<Incoming>, id: &str) -> Result<Resp> {
    let who = require_principal(&ctx.engine, &req).await?;
    ctx.engine.revoke_key(&who, id).await?;
    let mut resp = text_response(StatusCode::NO_CONTENT, "text/plain; charset=utf-8", "");
    resp.headers_mut().remove(hyper::header::CONTENT_TYPE);
    Ok(resp)
}

pub async fn rotate(ctx: &Ctx, req: Request<Incoming>, id: &str) -> Result<Resp> {
    let who = require_principal(&ctx.engine, &req).await?;
    let (new, replaces) = ctx.engine.rotate_key(&who, id).await?;
    let campaign = match new.record.principal {
        Principal::Publishable { campaign, .. } => campaign,
        _ => None,
    };
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "id": new.record.id,
            "publishableKey": new.key,
            "campaignId": campaign,
            "createdAt": new.record.created_at,
            "replaces": replaces,
        }),
    ))
}
