//! Direct leads with evidence (the seed's section 4): the affiliate submits,
//! the advertiser lists, verifies and rejects.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{require_advertiser, require_affiliate};
use super::body::{json_response, Resp};
use super::query::Query;
use super::{read_body, read_body_or_default, Ctx};
use crate::domain::ids::*;
use crate::domain::keys::Scope;
use crate::domain::model::LeadStatus;
use crate::domain::validate::invalid;
use crate::engine::leads::NewLead;
use crate::error::{Error, Result};
use crate::store::LeadQuery;

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SubmitBody {
    campaign_id: CampaignId,
    tracking_code: String,
    /// Checked item by item by `domain::review::evidence`, which names the
    /// exact field (`evidence[2].hash`) that is wrong.
    #[serde(default)]
    evidence: Vec<Value>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    reason: Option<String>,
}

pub async fn submit(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    let affiliate = require_affiliate(&ctx.engine, &req).await?;
    let body: SubmitBody = read_body(ctx, req).await?;
    let input = NewLead { campaign: body.campaign_id, tracking_code: body.tracking_code, evidence: body.evidence };
    let lead = ctx.engine.submit_lead(affiliate, input).await?;
    Ok(json_response(StatusCode::CREATED, &lead))
}

pub async fn list(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    let advertiser = require_advertiser(&ctx.engine, &req, Scope::Campaigns).await?;
    let q = Query::parse(req.uri().query(), &["campaignId", "status", "before", "limit"])?;
    let campaign = q.get("campaignId").ok_or_else(|| invalid("campaignId", "is required"))?;
    let campaign = campaign.parse().map_err(|_| invalid("campaignId", "must be a campaign id like cmp_…"))?;
    let status = q
        .get("status")
        .map(|s| LeadStatus::parse(s).ok_or_else(|| invalid("status", "must be pending_review, verified or rejected")))
        .transpose()?;
    let before = q
        .get("before")
        .map(|b| b.parse::<LeadId>().map_err(|_| invalid("before", "must be a lead id (a page's nextBefore)")))
        .transpose()?;
    let limit = q.limit(DEFAULT_PAGE, MAX_PAGE)?;
    let page = ctx.engine.list_leads(advertiser, LeadQuery { campaign, status, before, limit }).await?;
    Ok(json_response(StatusCode::OK, &json!({ "leads": page.leads, "nextBefore": page.next })))
}

/// `to: Verified` or `Rejected`. A reason is required to reject and
/// optional (and not kept) to verify.
pub async fn decide(ctx: &Ctx, req: Request<Incoming>, id: &str, to: LeadStatus) -> Result<Resp> {
    let advertiser = require_advertiser(&ctx.engine, &req, Scope::Campaigns).await?;
    let body: DecisionBody = read_body_or_default(ctx, req).await?;
    let reason = match to {
        LeadStatus::Rejected => Some(crate::domain::review::reason(body.reason.as_deref())?),
        _ => None,
    };
    let id: LeadId =
        id.parse().map_err(|_| Error::NotFound(format!("no lead '{}'", crate::domain::validate::excerpt(id))))?;
    let reviewed = ctx.engine.review_lead(advertiser, id, to, reason).await?;
    let mut v = json!({ "lead": reviewed.lead });
    if let Some(p) = reviewed.payout {
        v["payout"] = json!(p);
    }
    Ok(json_response(StatusCode::OK, &v))
}
