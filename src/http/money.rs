//! Money endpoints: funding and balance (advertiser), the wallet
//! (affiliate), reversal of a conversion's or lead's payout (advertiser).

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{require_advertiser, require_affiliate};
use super::body::{json_response, Resp};
use super::query::Query;
use super::{read_body, Ctx};
use crate::domain::ids::*;
use crate::domain::keys::Scope;
use crate::domain::money::Balance;
use crate::domain::validate::invalid;
use crate::engine::payments::Deposit;
use crate::error::{Error, Result};
use crate::store::Keyed;

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;
const MAX_IDEMPOTENCY_KEY: usize = 255;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FundBody {
    amount_cents: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReverseBody {
    reason: Option<String>,
}

fn campaign_id(id: &str) -> Result<CampaignId> {
    id.parse().map_err(|_| Error::NotFound(format!("no campaign '{}'", crate::domain::validate::excerpt(id))))
}

/// 201 for a new deposit, 200 for a replay of an `Idempotency-Key` already
/// used on this campaign (nothing moves; the balance is today's).
pub async fn fund(ctx: &Ctx, req: Request<Incoming>, id: &str) -> Result<Resp> {
    let advertiser = require_advertiser(&ctx.engine, &req, Scope::Campaigns).await?;
    let key = idempotency_key(&req)?;
    let body: FundBody = read_body(ctx, req).await?;
    let campaign = campaign_id(id)?;
    let (fresh, balance) = ctx.engine.fund(advertiser, Deposit { campaign, key, cents: body.amount_cents }).await?;
    let status = if fresh { StatusCode::CREATED } else { StatusCode::OK };
    let mut v = balance_json(campaign, &balance);
    v["deposited"] = fresh.into();
    Ok(json_response(status, &v))
}

pub async fn balance(ctx: &Ctx, req: Request<Incoming>, id: &str) -> Result<Resp> {
    let advertiser = require_advertiser(&ctx.engine, &req, Scope::Campaigns).await?;
    let campaign = campaign_id(id)?;
    let balance = ctx.engine.balance(advertiser, campaign).await?;
    Ok(json_response(StatusCode::OK, &balance_json(campaign, &balance)))
}

pub async fn wallet(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    let affiliate = require_affiliate(&ctx.engine, &req).await?;
    let q = Query::parse(req.uri().query(), &["before", "limit"])?;
    let limit = q.limit(DEFAULT_PAGE, MAX_PAGE)?;
    let page = ctx.engine.wallet(affiliate, q.get("before"), limit).await?;
    let view =
        WalletView { affiliate_id: affiliate, totals: page.totals, entries: page.entries, next_before: page.next };
    Ok(json_response(StatusCode::OK, &view))
}

/// Typed rather than a `Value`: the totals are 128-bit sums, which a
/// `Value` cannot hold past 2^64; serializing the struct writes all digits.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct WalletView {
    affiliate_id: AffiliateId,
    #[serde(flatten)]
    totals: crate::domain::money::WalletTotals,
    entries: Vec<crate::domain::money::WalletEntry>,
    next_before: Option<String>,
}

pub async fn reverse(ctx: &Ctx, req: Request<Incoming>, id: &str) -> Result<Resp> {
    let advertiser = require_advertiser(&ctx.engine, &req, Scope::Postbacks).await?;
    let body: ReverseBody = read_body(ctx, req).await?;
    let (record, payout) = ctx.engine.reverse(advertiser, id, body.reason.as_deref()).await?;
    let (field, record_id) = match &record {
        Keyed::Conversion(c) => ("conversionId", c.id.to_string()),
        Keyed::Lead(l) => ("leadId", l.id.to_string()),
    };
    let mut v = json!({ "reversed": true, "payout": payout });
    v[field] = record_id.into();
    Ok(json_response(StatusCode::OK, &v))
}

/// `Idempotency-Key`: 1 to 255 visible ASCII characters, or absent.
fn idempotency_key(req: &Request<Incoming>) -> Result<Option<String>> {
    let Some(value) = req.headers().get("idempotency-key") else { return Ok(None) };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY && k.bytes().all(|b| b.is_ascii_graphic()));
    let key = key.ok_or_else(|| {
        invalid("Idempotency-Key", format!("must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"))
    })?;
    Ok(Some(key.to_string()))
}

fn balance_json(campaign: CampaignId, b: &Balance) -> Value {
    json!({
        "campaignId": campaign,
        "fundedCents": b.funded_cents,
        "availableCents": b.available_cents,
        "escrowedCents": b.escrowed_cents,
        "clearingCents": b.clearing_cents,
        "paidCents": b.paid_cents(),
    })
}
