//! Operator endpoints (admin key): create advertisers and affiliates. Secret
//! keys are returned once here and kept only as hashes. With
//! `money.test_clock`, also moving the engine's clock forward (tests only).

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::auth::require_admin;
use super::body::{json_response, Resp};
use super::{read_body, Ctx};
use crate::domain::ids::{AdvertiserId, AffiliateId};
use crate::domain::keys::{hash_key, new_org_publishable_key, new_secret_key, Principal};
use crate::domain::model::{Advertiser, Affiliate};
use crate::domain::validate;
use crate::domain::validate::invalid;
use crate::error::{Error, Result};

/// Ten years: more than any hold or referral expiry a test needs to skip.
const MAX_ADVANCE_SECS: u64 = 10 * 366 * 86_400;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: u64,
}

#[derive(Deserialize)]
struct NewParty {
    name: String,
}

pub async fn create_advertiser(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    require_admin(&ctx.engine, req.headers())?;
    let input: NewParty = read_body(ctx, req).await?;
    let advertiser = Advertiser {
        id: AdvertiserId::random(),
        name: validate::name("name", &input.name)?,
        publishable_key: new_org_publishable_key(),
        created_at: ctx.engine.now(),
    };
    let api_key = new_secret_key();
    ctx.engine.store.put_advertiser(&advertiser, hash_key(&api_key)).await?;
    let public = Principal::Publishable { advertiser: advertiser.id, campaign: None };
    ctx.engine.store.put_principal(hash_key(&advertiser.publishable_key), &public).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "id": advertiser.id,
            "name": advertiser.name,
            "apiKey": api_key,
            "publishableKey": advertiser.publishable_key,
            "scopes": ["campaigns", "postbacks", "affiliate:write"],
        }),
    ))
}

pub async fn create_affiliate(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    require_admin(&ctx.engine, req.headers())?;
    let input: NewParty = read_body(ctx, req).await?;
    let affiliate = Affiliate {
        id: AffiliateId::random(),
        name: validate::name("name", &input.name)?,
        created_at: ctx.engine.now(),
    };
    let api_key = new_secret_key();
    ctx.engine.store.put_affiliate(&affiliate, hash_key(&api_key)).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "id": affiliate.id,
            "name": affiliate.name,
            "apiKey": api_key,
        }),
    ))
}

/// Moves the test clock forward. Without `money.test_clock` the route does
/// not exist (404), whatever the key.
pub async fn advance_clock(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    let Some(clock) = ctx.engine.test_clock.clone() else {
        return Err(Error::NoRoute(req.uri().path().to_string()));
    };
    require_admin(&ctx.engine, req.headers())?;
    let input: Advance = read_body(ctx, req).await?;
    if input.seconds == 0 || input.seconds > MAX_ADVANCE_SECS {
        return Err(invalid("seconds", format!("must be from 1 to {MAX_ADVANCE_SECS}")).into());
    }
    let now = clock.advance(input.seconds).map_err(|e| {
        tracing::error!(error = %e, "could not save the test clock's offset");
        Error::Unavailable("could not save the clock offset; retry".into())
    })?;
    Ok(json_response(StatusCode::OK, &json!({ "now": now, "advancedSeconds": input.seconds })))
}
