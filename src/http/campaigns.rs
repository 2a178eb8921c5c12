//! Advertiser endpoints: campaigns, affiliate approval, activation.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::require_principal;
use super::body::{json_response, Resp};
use super::{read_body, Ctx};
use crate::domain::caps::Caps;
use crate::domain::ids::*;
use crate::domain::keys::{Principal, Scope};
use crate::domain::model::*;
use crate::domain::payout::{bounded_cents, bp_to_percentage, percentage_to_bp};
use crate::domain::rules::Rules;

/// 2000 bp renders as `20`, 1250 as `12.5`: what the advertiser sent.
fn percentage_json(bp: u32) -> Value {
    if bp % 100 == 0 {
        json!(bp / 100)
    } else {
        json!(bp_to_percentage(bp))
    }
}
use crate::domain::redirect::append_query;
use crate::domain::validate::{self, invalid};
use crate::engine::campaigns::Terms;
use crate::error::{Error, Result};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewCampaign {
    name: String,
    landing_url: String,
    compensation_model: CompensationModel,
    payout_cents: Option<u64>,
    payout_percentage: Option<serde_json::Number>,
    promo_code: Option<String>,
    allowed_origins: Option<Vec<String>>,
    field_mapping: Option<BTreeMap<String, String>>,
    attribution_window_days: Option<u32>,
    hold_days: Option<u32>,
    rules: Option<Value>,
    caps: Option<Value>,
    fallback_url: Option<String>,
}

/// Every field optional; `promoCode: null` removes the promo code.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CampaignPatch {
    name: Option<String>,
    landing_url: Option<String>,
    payout_cents: Option<u64>,
    payout_percentage: Option<serde_json::Number>,
    #[serde(default, deserialize_with = "present")]
    promo_code: Option<Value>,
    allowed_origins: Option<Vec<String>>,
    field_mapping: Option<BTreeMap<String, String>>,
    attribution_window_days: Option<u32>,
    hold_days: Option<u32>,
    /// Merged into the campaign's rules: only the rules named change.
    rules: Option<Value>,
    /// Replaces the campaign's caps whole (`null` or `{}` removes them).
    #[serde(default, deserialize_with = "present")]
    caps: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    fallback_url: Option<Value>,
}

/// Tells "absent" (`None`) from "null" (`Some(Null)`), which plain
/// `Option<Value>` folds together.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Approval {
    affiliate_id: AffiliateId,
}

pub(super) async fn advertiser(ctx: &Ctx, req: &Request<Incoming>) -> Result<AdvertiserId> {
    match require_principal(&ctx.engine, req).await? {
        p @ Principal::Advertiser { id, .. } if p.has(Scope::Campaigns) => Ok(id),
        _ => Err(Error::Forbidden("managing campaigns needs an advertiser key with the campaigns scope".into())),
    }
}

/// The campaign, if it exists and belongs to `owner`; other advertisers'
/// campaigns are reported as missing so ids reveal nothing.
pub(super) async fn owned(ctx: &Ctx, owner: AdvertiserId, id: &str) -> Result<Arc<Campaign>> {
    let missing = || Error::NotFound(format!("no campaign '{}'", validate::excerpt(id)));
    let id: CampaignId = id.parse().map_err(|_| missing())?;
    let campaign = ctx.engine.catalog.campaign(id).await?.ok_or_else(missing)?;
    if campaign.advertiser_id != owner {
        return Err(missing());
    }
    Ok(campaign)
}

pub async fn create(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    let owner = advertiser(ctx, &req).await?;
    let input: NewCampaign = read_body(ctx, req).await?;
    let (payout_cents, payout_bp) =
        payout_settings(input.compensation_model, input.payout_cents, input.payout_percentage.as_ref())?;
    let mapping = input.field_mapping.unwrap_or_default();
    validate::field_mapping("fieldMapping", &mapping, ctx.engine.config.field_limits())?;
    let terms = Terms {
        name: validate::name("name", &input.name)?,
        landing_url: validate::landing_url("landingUrl", &input.landing_url)?,
        compensation_model: input.compensation_model,
        payout_cents,
        payout_bp,
        promo_code: input.promo_code.as_deref().map(|p| validate::promo_code("promoCode", p)).transpose()?,
        allowed_origins: validate::origins("allowedOrigins", &input.allowed_origins.unwrap_or_default())?,
        field_mapping: mapping,
        attribution_window_days: days("attributionWindowDays", input.attribution_window_days, 90, 1)?,
        hold_days: days("holdDays", input.hold_days, 30, 0)?,
        rules: match &input.rules {
            Some(r) => Rules::default().patched(r)?,
            None => Rules::default(),
        },
        caps: input.caps.as_ref().map(|c| Caps::parse("caps", c)).transpose()?.unwrap_or_default(),
        fallback_url: input.fallback_url.as_deref().map(|u| validate::landing_url("fallbackUrl", u)).transpose()?,
    };
    let campaign = ctx.engine.create_campaign(owner, terms).await?;
    Ok(json_response(StatusCode::CREATED, &campaign_json(&campaign, None)))
}

pub async fn show(ctx: &Ctx, req: Request<Incoming>, id: &str) -> Result<Resp> {
    let owner = advertiser(ctx, &req).await?;
    let campaign = owned(ctx, owner, id).await?;
    let stats = ctx.engine.campaign_stats(campaign.id).await?;
    let usage = ctx.engine.cap_views(&campaign).await?;
    let mut view = campaign_json(&campaign, Some(&stats));
    view.campaign["capUsage"] = usage.iter().map(cap_view_json).collect();
    Ok(json_response(StatusCode::OK, &view))
}

pub async fn update(ctx: &Ctx, req: Request<Incoming>, id: &str) -> Result<Resp> {
    let owner = advertiser(ctx, &req).await?;
    let campaign = owned(ctx, owner, id).await?;
    let patch: CampaignPatch = read_body(ctx, req).await?;
    let saved = edit(ctx, campaign.id, |c| apply_patch(ctx, c, &patch)).await?;
    Ok(json_response(StatusCode::OK, &campaign_json(&saved, None)))
}

/// Applies one edit under the catalog's edit lock.
async fn edit(ctx: &Ctx, id: CampaignId, f: impl FnMut(&mut Campaign) -> Result<()>) -> Result<Arc<Campaign>> {
    ctx.engine.edit_campaign(id, f).await
}

/// Applied to the freshest stored campaign, possibly more than once if a
/// concurrent edit wins the compare-and-set, so it borrows the patch.
fn apply_patch(ctx: &Ctx, c: &mut Campaign, p: &CampaignPatch) -> Result<()> {
    if let Some(name) = &p.name {
        c.name = validate::name("name", name)?;
    }
    if let Some(url) = &p.landing_url {
        c.landing_url = validate::landing_url("landingUrl", url)?;
    }
    if p.payout_cents.is_some() || p.payout_percentage.is_some() {
        (c.payout_cents, c.payout_bp) =
            payout_settings(c.compensation_model, p.payout_cents, p.payout_percentage.as_ref())?;
    }
    match &p.promo_code {
        None => {}
        Some(Value::Null) => c.promo_code = None,
        Some(Value::String(s)) => c.promo_code = Some(validate::promo_code("promoCode", s)?),
        Some(_) => return Err(invalid("promoCode", "must be a string, or null to remove it").into()),
    }
    if let Some(origins) = &p.allowed_origins {
        c.allowed_origins = validate::origins("allowedOrigins", origins)?;
    }
    if let Some(mapping) = &p.field_mapping {
        validate::field_mapping("fieldMapping", mapping, ctx.engine.config.field_limits())?;
        c.field_mapping = mapping.clone();
    }
    if p.attribution_window_days.is_some() {
        c.attribution_window_days = days("attributionWindowDays", p.attribution_window_days, 90, 1)?;
    }
    if p.hold_days.is_some() {
        c.hold_days = days("holdDays", p.hold_days, 30, 0)?;
    }
    if let Some(rules) = &p.rules {
        c.rules = c.rules.patched(rules)?;
    }
    if let Some(caps) = &p.caps {
        c.caps = Caps::parse("caps", caps)?;
    }
    match &p.fallback_url {
        None => {}
        Some(Value::Null) => c.fallback_url = None,
        Some(Value::String(u)) => c.fallback_url = Some(validate::landing_url("fallbackUrl", u)?),
        Some(_) => return Err(invalid("fallbackUrl", "must be an absolute http(s) URL, or null to remove it").into()),
    }
    Ok(())
}

pub async fn approve_affiliate(ctx: &Ctx, req: Request<Incoming>, id: &str) -> Result<Resp> {
    let owner = advertiser(ctx, &req).await?;
    let campaign = owned(ctx, owner, id).await?;
    let input: Approval = read_body(ctx, req).await?;
    let (stored, made) = ctx.engine.approve_affiliate(&campaign, input.affiliate_id).await?;
    let status = if made { StatusCode::CREATED } else { StatusCode::OK };
    Ok(json_response(status, &link_json(ctx, &campaign, &stored)))
}

/// An approved affiliate's links: its code, the landing page with it, and
/// its `/r/{code}` link.
pub fn link_json(ctx: &Ctx, campaign: &Campaign, code: &TrackingCode) -> Value {
    let mut params = vec![("swarm_ref", code.code.as_str())];
    if let Some(promo) = &campaign.promo_code {
        params.push(("promo", promo.as_str()));
    }
    json!({
        "campaignId": campaign.id,
        "affiliateId": code.affiliate_id,
        "trackingCode": code.code,
        "trackingUrl": append_query(&campaign.landing_url, &params),
        "affiliateLink": format!("{}/r/{}", ctx.engine.public_base, code.code),
        "approvedAt": code.created_at,
    })
}

/// `DELETE /api/v1/campaigns/{id}/affiliates/{affiliateId}`.
pub async fn remove_affiliate(ctx: &Ctx, req: Request<Incoming>, id: &str, affiliate: &str) -> Result<Resp> {
    let owner = advertiser(ctx, &req).await?;
    let campaign = owned(ctx, owner, id).await?;
    let missing = || Error::NotFound(format!("no affiliate '{}'", validate::excerpt(affiliate)));
    let affiliate: AffiliateId = affiliate.parse().map_err(|_| missing())?;
    let removed_at = ctx.engine.remove_affiliate(&campaign, affiliate).await?;
    let body =
        json!({"campaignId": campaign.id, "affiliateId": affiliate, "status": "removed", "removedAt": removed_at});
    Ok(json_response(StatusCode::OK, &body))
}

/// `POST /api/v1/campaigns/{id}/archive`: read-only for good.
pub async fn archive(ctx: &Ctx, req: Request<Incoming>, id: &str) -> Result<Resp> {
    let owner = advertiser(ctx, &req).await?;
    let campaign = owned(ctx, owner, id).await?;
    let saved = ctx.engine.archive_campaign(campaign.id).await?;
    Ok(json_response(StatusCode::OK, &campaign_json(&saved, None)))
}

/// Activation waits for a test postback (the seed's "confirm before
/// activation"); pausing is always allowed.
pub async fn set_status(ctx: &Ctx, req: Request<Incoming>, id: &str, activate: bool) -> Result<Resp> {
    let owner = advertiser(ctx, &req).await?;
    let campaign = owned(ctx, owner, id).await?;
    let saved = edit(ctx, campaign.id, |c| {
        if activate && c.tracking_confirmed_at.is_none() {
            return Err(Error::Conflict {
                code: "tracking_not_confirmed",
                message: format!(
                    "fire a test postback with swarm_ref \"{}\" first; activation unlocks once tracking is confirmed",
                    c.test_tracking_code
                ),
            });
        }
        c.status = if activate { CampaignStatus::Active } else { CampaignStatus::Paused };
        Ok(())
    })
    .await?;
    Ok(json_response(StatusCode::OK, &campaign_json(&saved, None)))
}

fn payout_settings(
    model: CompensationModel,
    cents: Option<u64>,
    percentage: Option<&serde_json::Number>,
) -> Result<(Option<u64>, Option<u32>)> {
    match model {
        CompensationModel::Fixed => {
            if percentage.is_some() {
                return Err(invalid(
                    "payoutPercentage",
                    "applies to REV_SHARE campaigns only; FIXED campaigns use payoutCents",
                )
                .into());
            }
            match cents {
                Some(c) => Ok((Some(bounded_cents("payoutCents", c, 1)?), None)),
                None => {
                    Err(invalid("payoutCents", "is required for FIXED campaigns (cents paid per conversion)").into())
                }
            }
        }
        CompensationModel::RevShare => {
            if cents.is_some() {
                return Err(invalid(
                    "payoutCents",
                    "applies to FIXED campaigns only; REV_SHARE campaigns use payoutPercentage",
                )
                .into());
            }
            let p = percentage
                .ok_or_else(|| invalid("payoutPercentage", "is required for REV_SHARE campaigns (e.g. 20 or 12.5)"))?;
            let bp = percentage_to_bp(&p.to_string()).map_err(|m| invalid("payoutPercentage", m))?;
            Ok((None, Some(bp)))
        }
    }
}

fn days(field: &str, value: Option<u32>, default: u32, min: u32) -> Result<u32> {
    let v = value.unwrap_or(default);
    if v < min || v > 3650 {
        return Err(invalid(field, format!("must be between {min} and 3650 days")).into());
    }
    Ok(v)
}

/// A campaign as the API shows it, with its stats when asked for. Typed
/// rather than a `Value` because `payoutCents` may pass 2^64 (a `Value`
/// holds at most 64-bit integers; serializing the struct writes all digits).
#[derive(Serialize)]
pub(super) struct CampaignView {
    #[serde(flatten)]
    pub(super) campaign: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<StatsView>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatsView {
    clicks: u64,
    /// The counted clicks: each client once per link per unique-click window.
    unique_clicks: u64,
    duplicate_clicks: u64,
    capped_clicks: u64,
    bot_clicks: u64,
    conversions: Value,
    postbacks: Value,
    payout_cents: u128,
}

pub(super) fn campaign_json(c: &Campaign, stats: Option<&CampaignStats>) -> CampaignView {
    let v = json!({
        "id": c.id,
        "advertiserId": c.advertiser_id,
        "name": c.name,
        "status": c.status,
        "landingUrl": c.landing_url,
        "compensationModel": c.compensation_model,
        "payoutCents": c.payout_cents,
        "payoutPercentage": c.payout_bp.map(percentage_json),
        "promoCode": c.promo_code,
        "allowedOrigins": c.allowed_origins,
        "fieldMapping": c.field_mapping,
        "attributionWindowDays": c.attribution_window_days,
        "holdDays": c.hold_days,
        "testTrackingCode": c.test_tracking_code,
        "publishableKey": c.publishable_key,
        "trackingConfirmedAt": c.tracking_confirmed_at,
        "createdAt": c.created_at,
        "rules": c.rules,
        "caps": c.caps,
        "affiliateCaps": c.affiliate_caps,
        "fallbackUrl": c.fallback_url,
    });
    let stats = stats.map(|s| StatsView {
        clicks: s.clicks,
        unique_clicks: s.clicks,
        duplicate_clicks: s.click_outcomes.get("duplicate").copied().unwrap_or(0),
        capped_clicks: s.click_outcomes.get("capped").copied().unwrap_or(0),
        bot_clicks: s.bot_clicks,
        conversions: json!({
            "byStatus": s.statuses,
            "rejectedByReason": s.rejected,
            "recorded": s.conversions_recorded,
            "duplicate": s.conversions_duplicate,
            "fromBotClicks": s.conversions_from_bot_clicks,
            "ignored": s.conversions_ignored,
        }),
        postbacks: json!({ "recorded": s.postbacks_recorded, "duplicate": s.postbacks_duplicate }),
        payout_cents: s.payout_cents,
    });
    CampaignView { campaign: v, stats }
}

/// One capped window: whose, which period, its limits and what it took.
fn cap_view_json(v: &crate::engine::review::CapView) -> Value {
    use crate::domain::caps::Scope;
    let mut out = json!({
        "scope": match v.window.scope { Scope::Campaign => "campaign", Scope::Affiliate(_) => "affiliate" },
        "period": if v.window.day.is_some() { "daily" } else { "total" },
        "clicks": { "limit": v.limit_clicks, "used": v.used_clicks },
        "conversions": { "limit": v.limit_conversions, "used": v.used.conversions },
        "payoutCents": { "limit": v.limit_cents, "used": v.used.payout_cents },
    });
    if let Scope::Affiliate(a) = v.window.scope {
        out["affiliateId"] = json!(a);
    }
    if let Some(day) = v.window.day {
        let date = chrono::NaiveDate::default() + chrono::Duration::days(day);
        out["day"] = json!(date.to_string());
    }
    out
}
