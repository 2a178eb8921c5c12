//! The review queue over HTTP: held conversions and leads listed by status,
//! approved or rejected by the advertiser; and one affiliate's caps.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::require_advertiser;
use super::body::{json_response, Resp};
use super::query::Query;
use super::{read_body, read_body_or_default, Ctx};
use crate::domain::caps::Caps;
use crate::domain::ids::*;
use crate::domain::keys::Scope;
use crate::domain::model::ConversionStatus;
use crate::domain::validate::{excerpt, invalid};
use crate::engine::review::ReviewQuery;
use crate::error::{Error, Result};
use crate::store::Keyed;

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    reason: Option<String>,
}

/// `GET /api/v1/conversions?campaignId=&status=&before=&limit=`.
pub async fn list(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    let advertiser = require_advertiser(&ctx.engine, &req, Scope::Campaigns).await?;
    let q = Query::parse(req.uri().query(), &["campaignId", "status", "before", "limit"])?;
    let campaign = q.get("campaignId").ok_or_else(|| invalid("campaignId", "is required"))?;
    let campaign = campaign.parse().map_err(|_| invalid("campaignId", "must be a campaign id like cmp_…"))?;
    let status = q.get("status").map(status).transpose()?;
    let before = q.get("before").map(before).transpose()?;
    let limit = q.limit(DEFAULT_PAGE, MAX_PAGE)?;
    let page = ctx.engine.review_page(advertiser, ReviewQuery { campaign, status, before, limit }).await?;
    let items: Vec<Value> = page.items.iter().map(|(k, reversed)| item_json(k, *reversed)).collect();
    Ok(json_response(StatusCode::OK, &json!({ "conversions": items, "nextBefore": page.next })))
}

fn before(text: &str) -> Result<u128> {
    let parsed = text.parse::<ConversionId>().map(|c| c.0).or_else(|_| text.parse::<LeadId>().map(|l| l.0));
    parsed.map_err(|_| invalid("before", "must be a conversion or lead id (a page's nextBefore)").into())
}

/// A listed record: a conversion as stored with `kind`; a lead with `kind`,
/// its `status` in the shared vocabulary (`approved` for `verified`) and a
/// `reason` (its `rejectionReason`). An approved record whose payout was
/// reversed shows `status: "reversed"`.
fn item_json(k: &Keyed, reversed: bool) -> Value {
    let mut v = record_json(k);
    if reversed {
        v["status"] = json!("reversed");
    }
    v
}

fn record_json(k: &Keyed) -> Value {
    match k {
        Keyed::Conversion(c) => {
            let mut v = json!(c);
            v["kind"] = json!("conversion");
            v
        }
        Keyed::Lead(l) => {
            let mut v = json!(l);
            v["kind"] = json!("lead");
            v["leadStatus"] = v["status"].clone();
            v["status"] = json!(k.status());
            if let Some(r) = &l.rejection_reason {
                v["reason"] = json!(r);
            }
            v
        }
    }
}

fn status(text: &str) -> Result<ConversionStatus> {
    [ConversionStatus::Approved, ConversionStatus::PendingReview, ConversionStatus::Rejected]
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| invalid("status", "must be approved, pending_review or rejected").into())
}

/// `POST /api/v1/conversions/{id}/approve` and `…/reject {reason}`: for a
/// conversion (`conv_…`) or a postback or referral lead (`lead_…`).
pub async fn decide(ctx: &Ctx, req: Request<Incoming>, id: &str, approve: bool) -> Result<Resp> {
    let advertiser = require_advertiser(&ctx.engine, &req, Scope::Campaigns).await?;
    let body: DecisionBody = read_body_or_default(ctx, req).await?;
    let reason = match approve {
        false => Some(crate::domain::review::reason(body.reason.as_deref())?),
        true => None,
    };
    let decided = ctx.engine.decide(advertiser, id, approve, reason).await?;
    let mut v = match &decided.record {
        Keyed::Conversion(c) => json!({ "conversionId": c.id, "status": c.status.as_str(), "conversion": c }),
        Keyed::Lead(l) => json!({ "leadId": l.id, "status": decided.record.status(), "lead": l }),
    };
    if let Some(p) = decided.payout {
        v["payout"] = json!(p);
    }
    Ok(json_response(StatusCode::OK, &v))
}

/// `PUT /api/v1/campaigns/{id}/affiliates/{affiliateId}/caps`: the whole
/// caps object for one affiliate (`{}` removes them).
pub async fn put_affiliate_caps(ctx: &Ctx, req: Request<Incoming>, id: &str, affiliate: &str) -> Result<Resp> {
    let advertiser = require_advertiser(&ctx.engine, &req, Scope::Campaigns).await?;
    let missing = || Error::NotFound(format!("no campaign '{}'", excerpt(id)));
    let campaign: CampaignId = id.parse().map_err(|_| missing())?;
    let campaign = ctx.engine.owned_campaign(advertiser, campaign).await.map_err(|_| missing())?;
    let affiliate: AffiliateId =
        affiliate.parse().map_err(|_| Error::NotFound(format!("no affiliate '{}'", excerpt(affiliate))))?;
    let body: Value = read_body(ctx, req).await?;
    let caps = Caps::parse("caps", &body)?;
    let saved = ctx.engine.set_affiliate_caps(campaign.id, affiliate, caps).await?;
    let caps = saved.affiliate_caps.get(&affiliate).cloned().unwrap_or_default();
    Ok(json_response(StatusCode::OK, &json!({ "campaignId": saved.id, "affiliateId": affiliate, "caps": caps })))
}
