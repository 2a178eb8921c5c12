//! The listing endpoints: an advertiser's campaigns and a campaign's
//! affiliates, an affiliate's campaigns. Newest first, `limit` per page,
//! and `cursor` (a page's `nextCursor`, opaque) for the next.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{json, Value};

use super::auth::require_affiliate;
use super::body::{json_response, Resp};
use super::campaigns::{advertiser, campaign_json, link_json, owned};
use super::query::Query;
use super::Ctx;
use crate::domain::cursor::{self, Position};
use crate::domain::model::CampaignStatus;
use crate::domain::validate::invalid;
use crate::error::Result;

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

/// The `cursor` parameter, made by `listing`.
fn after(q: &Query, listing: &str) -> Result<Option<Position>> {
    let Some(text) = q.get("cursor") else { return Ok(None) };
    let position = cursor::decode(listing, text);
    Ok(Some(position.ok_or_else(|| invalid("cursor", "is not a cursor of this listing (pass a page's nextCursor)"))?))
}

fn status(text: &str) -> Result<CampaignStatus> {
    serde_json::from_value(json!(text))
        .map_err(|_| invalid("status", "must be one of draft, active, paused, archived").into())
}

/// `GET /api/v1/campaigns?status=&cursor=&limit=`: archived ones only when asked for.
pub async fn campaigns(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    let owner = advertiser(ctx, &req).await?;
    let q = Query::parse(req.uri().query(), &["status", "cursor", "limit"])?;
    let status = q.get("status").map(status).transpose()?;
    let page =
        ctx.engine.campaigns_of(owner, status, after(&q, "campaigns")?, q.limit(DEFAULT_PAGE, MAX_PAGE)?).await?;
    let items: Vec<_> = page.items.iter().map(|c| campaign_json(c, None)).collect();
    Ok(json_response(StatusCode::OK, &json!({ "campaigns": items, "nextCursor": page.next })))
}

/// `GET /api/v1/campaigns/{id}/affiliates?cursor=&limit=`: who is approved now.
pub async fn campaign_affiliates(ctx: &Ctx, req: Request<Incoming>, id: &str) -> Result<Resp> {
    let owner = advertiser(ctx, &req).await?;
    let campaign = owned(ctx, owner, id).await?;
    let q = Query::parse(req.uri().query(), &["cursor", "limit"])?;
    let after = after(&q, "campaign-affiliates")?;
    let page = ctx.engine.approved_affiliates(&campaign, after, q.limit(DEFAULT_PAGE, MAX_PAGE)?).await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|a| {
            let mut v = link_json(ctx, &campaign, &a.code);
            v["name"] = json!(a.affiliate.as_ref().map(|a| a.name.as_str()));
            v["caps"] = json!(a.code.affiliate_id.and_then(|id| campaign.affiliate_caps.get(&id)));
            v
        })
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "affiliates": items, "nextCursor": page.next })))
}

/// `GET /api/v1/affiliate/campaigns?cursor=&limit=`: the campaigns the
/// calling affiliate is approved on, with its links and the terms it earns by.
pub async fn affiliate_campaigns(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    let affiliate = require_affiliate(&ctx.engine, &req).await?;
    let q = Query::parse(req.uri().query(), &["cursor", "limit"])?;
    let after = after(&q, "affiliate-campaigns")?;
    let page = ctx.engine.affiliate_campaigns(affiliate, after, q.limit(DEFAULT_PAGE, MAX_PAGE)?).await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|(c, code)| {
            let mut v = link_json(ctx, c, code);
            let terms = campaign_json(c, None).campaign;
            for field in [
                "name",
                "status",
                "landingUrl",
                "compensationModel",
                "payoutCents",
                "payoutPercentage",
                "promoCode",
                "attributionWindowDays",
                "holdDays",
            ] {
                v[field] = terms[field].clone();
            }
            v
        })
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "campaigns": items, "nextCursor": page.next })))
}
