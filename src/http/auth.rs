//! Keys arrive as `Authorization: Bearer <key>` or `x-api-key: <key>`; both
//! are accepted wherever a secret key is.

use hyper::header::{HeaderMap, AUTHORIZATION};
use hyper::{Method, Request};

use crate::domain::ids::{AdvertiserId, AffiliateId};
use crate::domain::keys::{Principal, Scope};
use crate::engine::Engine;
use crate::error::{Error, Result};

pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim()).filter(|k| !k.is_empty());
    }
    let auth = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = auth.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim()).filter(|k| !k.is_empty())
}

pub fn require_admin(engine: &Engine, headers: &HeaderMap) -> Result<()> {
    let key = presented_key(headers).ok_or(Error::Unauthorized("send the admin key as Authorization: Bearer <key>"))?;
    if engine.is_admin(key) {
        Ok(())
    } else {
        Err(Error::Unauthorized("the admin key is not valid"))
    }
}

/// The caller's key, resolved. Every endpoint with a key comes through here,
/// so a write (anything but GET and HEAD) spends the key's rate-limit token.
pub async fn require_principal<B>(engine: &Engine, req: &Request<B>) -> Result<Principal> {
    let key = presented_key(req.headers())
        .ok_or(Error::Unauthorized("send your API key as Authorization: Bearer <key> or x-api-key"))?;
    let write = !matches!(*req.method(), Method::GET | Method::HEAD);
    engine.authenticate(key, write).await
}

/// An affiliate's secret key; any other key may not act for an affiliate.
pub async fn require_affiliate<B>(engine: &Engine, req: &Request<B>) -> Result<AffiliateId> {
    match require_principal(engine, req).await? {
        Principal::Affiliate { id } => Ok(id),
        _ => Err(Error::Forbidden("this endpoint needs an affiliate's API key".into())),
    }
}

/// An advertiser's secret key carrying `scope`.
pub async fn require_advertiser<B>(engine: &Engine, req: &Request<B>, scope: Scope) -> Result<AdvertiserId> {
    match require_principal(engine, req).await? {
        p @ Principal::Advertiser { id, .. } if p.has(scope) => Ok(id),
        Principal::Advertiser { .. } => Err(Error::Forbidden(format!("this key lacks the {} scope", scope.as_str()))),
        _ => Err(Error::Forbidden("this endpoint needs an advertiser's API key".into())),
    }
}
