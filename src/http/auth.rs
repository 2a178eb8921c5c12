//! Keys arrive as `Authorization: Bearer <key>` or `x-api-key: <key>`; both
//! are accepted wherever a secret key is.

use hyper::header::{HeaderMap, AUTHORIZATION};

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

pub async fn require_principal(engine: &Engine, headers: &HeaderMap) -> Result<Principal> {
    let key = presented_key(headers)
        .ok_or(Error::Unauthorized("send your API key as Authorization: Bearer <key> or x-api-key"))?;
    engine.catalog.principal(key).await?.ok_or(Error::Unauthorized("the API key is not valid"))
}

/// An affiliate's secret key; any other key may not act for an affiliate.
pub async fn require_affiliate(engine: &Engine, headers: &HeaderMap) -> Result<AffiliateId> {
    match require_principal(engine, headers).await? {
        Principal::Affiliate { id } => Ok(id),
        _ => Err(Error::Forbidden("this endpoint needs an affiliate's API key".into())),
    }
}

/// An advertiser's secret key carrying `scope`.
pub async fn require_advertiser(engine: &Engine, headers: &HeaderMap, scope: Scope) -> Result<AdvertiserId> {
    match require_principal(engine, headers).await? {
        p @ Principal::Advertiser { id, .. } if p.has(scope) => Ok(id),
        Principal::Advertiser { .. } => Err(Error::Forbidden(format!("this key lacks the {} scope", scope.as_str()))),
        _ => Err(Error::Forbidden("this endpoint needs an advertiser's API key".into())),
    }
}
