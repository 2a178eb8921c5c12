//! Operator endpoints (admin key): create advertisers and affiliates (secret
//! keys are returned once here and kept only as hashes), disable and enable
//! them, issue a new key to one that lost theirs. With `money.test_clock`,
//! also moving the engine's clock forward (tests only).

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::auth::require_admin;
use super::body::{json_response, Resp};
use super::{read_body, Ctx};
use crate::domain::keys::Owner;
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
    /// Affiliates only: their own address, which the `selfReferral` rule
    /// compares conversions' emails with.
    email: Option<String>,
}

pub async fn create_advertiser(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    require_admin(&ctx.engine, req.headers())?;
    let input: NewParty = read_body(ctx, req).await?;
    let (advertiser, secret) = ctx.engine.create_advertiser(validate::name("name", &input.name)?).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "id": advertiser.id,
            "name": advertiser.name,
            "apiKey": secret.key,
            "keyId": secret.record.id,
            "publishableKey": advertiser.publishable_key,
            "scopes": secret.record.principal.scope_names(),
        }),
    ))
}

pub async fn create_affiliate(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    require_admin(&ctx.engine, req.headers())?;
    let input: NewParty = read_body(ctx, req).await?;
    let email = input.email.as_deref().map(|e| validate::email("email", e)).transpose()?;
    let (affiliate, secret) = ctx.engine.create_affiliate(validate::name("name", &input.name)?, email).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "id": affiliate.id,
            "name": affiliate.name,
            "email": affiliate.email,
            "apiKey": secret.key,
            "keyId": secret.record.id,
        }),
    ))
}

/// `advertisers` or `affiliates` and an id of that kind; anything else is 404.
fn tenant(kind: &str, id: &str) -> Result<Owner> {
    let missing = || Error::NotFound(format!("no {kind} '{}'", validate::excerpt(id)));
    match kind {
        "advertisers" => id.parse().map(Owner::Advertiser).map_err(|_| missing()),
        "affiliates" => id.parse().map(Owner::Affiliate).map_err(|_| missing()),
        _ => Err(missing()),
    }
}

/// Disables (every key 403, links 404) or enables a tenant; every node
/// follows within `auth.revalidate_ms`.
pub async fn set_disabled(ctx: &Ctx, req: Request<Incoming>, kind: &str, id: &str, disabled: bool) -> Result<Resp> {
    require_admin(&ctx.engine, req.headers())?;
    let owner = tenant(kind, id)?;
    ctx.engine.set_disabled(owner, disabled).await?;
    Ok(json_response(StatusCode::OK, &json!({ "id": owner.to_string(), "disabled": disabled })))
}

/// A new secret key for a tenant that lost all of theirs.
pub async fn issue_key(ctx: &Ctx, req: Request<Incoming>, kind: &str, id: &str) -> Result<Resp> {
    require_admin(&ctx.engine, req.headers())?;
    let owner = tenant(kind, id)?;
    let new = ctx.engine.issue_key(owner).await?;
    Ok(json_response(StatusCode::CREATED, &super::keys::new_key_json(&new)))
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
