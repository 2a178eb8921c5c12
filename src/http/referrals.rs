//! Agent referral endpoints: the affiliate creates, the advertiser checks a
//! token and confirms by id. Field names are the seed's (section 3).

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Number, Value};

use super::auth::{require_advertiser, require_affiliate};
use super::body::{json_response, Resp};
use super::ingest::whole_cents;
use super::{read_body, read_body_or_default, Ctx};
use crate::domain::ids::*;
use crate::domain::keys::Scope;
use crate::domain::referral::Referral;
use crate::engine::referrals::{Confirmation, NewReferral};
use crate::error::{Error, Result};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    campaign_id: CampaignId,
    metadata: Option<Map<String, Value>>,
    expires_in_hours: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    token: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfirmBody {
    revenue_cents: Option<Number>,
    metadata: Option<Map<String, Value>>,
}

pub async fn create(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    let affiliate = require_affiliate(&ctx.engine, &req).await?;
    let body: CreateBody = read_body(ctx, req).await?;
    let input =
        NewReferral { campaign: body.campaign_id, metadata: body.metadata, expires_in_hours: body.expires_in_hours };
    let (referral, token) = ctx.engine.create_referral(affiliate, input).await?;
    let mut v = referral_json(ctx, &referral);
    v["token"] = token.into();
    Ok(json_response(StatusCode::CREATED, &v))
}

/// A token that is not ours answers 200 `{valid: false, reason}` rather
/// than an error: checking a token is a question, and "no" is an answer.
pub async fn verify(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    let advertiser = require_advertiser(&ctx.engine, &req, Scope::Postbacks).await?;
    let body: VerifyBody = read_body(ctx, req).await?;
    let check = ctx.engine.check_referral_token(advertiser, &body.token).await?;
    let mut v = json!({ "valid": check.valid, "reason": check.reason });
    if let Some(c) = check.claims {
        v["referralId"] = json!(c.id);
        v["campaignId"] = json!(c.campaign);
        v["affiliateId"] = json!(c.affiliate);
        v["expiresAt"] = json!(c.expires_at);
        v["status"] = json!(check.status);
    }
    Ok(json_response(StatusCode::OK, &v))
}

pub async fn confirm(ctx: &Ctx, req: Request<Incoming>, id: &str) -> Result<Resp> {
    let advertiser = require_advertiser(&ctx.engine, &req, Scope::Postbacks).await?;
    let body: ConfirmBody = read_body_or_default(ctx, req).await?;
    let id: ReferralId =
        id.parse().map_err(|_| Error::NotFound(format!("no referral '{}'", crate::domain::validate::excerpt(id))))?;
    let input = Confirmation {
        revenue_cents: body.revenue_cents.map(|n| whole_cents(&n)).transpose()?,
        metadata: body.metadata,
    };
    let (lead, referral) = ctx.engine.confirm_referral(advertiser, id, input).await?;
    Ok(json_response(StatusCode::CREATED, &json!({ "lead": lead, "referral": referral_json(ctx, &referral) })))
}

/// The stored referral with its status as of now (an expired one reads as
/// expired before the expiry supervisor has marked it).
fn referral_json(ctx: &Ctx, r: &Referral) -> Value {
    let mut v = serde_json::to_value(r).expect("a referral always serializes");
    v["status"] = json!(r.status_at(ctx.engine.now()));
    v
}
