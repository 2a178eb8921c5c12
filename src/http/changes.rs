//! `GET /api/v1/admin/changes?after=&limit=` (admin key): the change feed
//! (`store::feed`) over HTTP, so an operator's own pipeline (a warehouse
//! loader, an audit trail) can follow what the store committed. The cursor
//! is opaque: pass the page's `next` back as `after`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::auth::require_admin;
use super::body::{json_response, Resp};
use super::query::Query;
use super::Ctx;
use crate::domain::model::{ConversionStatus, LeadStatus};
use crate::domain::money::Step;
use crate::domain::validate::invalid;
use crate::error::Result;
use crate::store::{Change, ChangeEvent, FeedCursor, Keyed};

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

pub async fn list(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp> {
    require_admin(&ctx.engine, req.headers())?;
    let q = Query::parse(req.uri().query(), &["after", "limit"])?;
    let after = q.get("after").map(decode).transpose()?.unwrap_or_default();
    let limit = q.limit(DEFAULT_PAGE, MAX_PAGE)?;
    let page = ctx.engine.changes(&after, limit).await?;
    let changes: Vec<serde_json::Value> = page.changes.iter().map(change_json).collect();
    Ok(json_response(StatusCode::OK, &json!({ "changes": changes, "next": encode(&page.next) })))
}

/// A change as the feed shows it: its type, the id of the object it is
/// about, when, and that object as the API shows it.
fn change_json(change: &Change) -> serde_json::Value {
    let (kind, id, data) = match &change.event {
        ChangeEvent::Recorded { record: Keyed::Conversion(c) } => ("conversion.recorded", c.id.to_string(), json!(c)),
        ChangeEvent::Recorded { record: Keyed::Lead(l) } => ("lead.recorded", l.id.to_string(), json!(l)),
        ChangeEvent::Reviewed { lead } => {
            let kind = if lead.status == LeadStatus::Verified { "lead.verified" } else { "lead.rejected" };
            (kind, lead.id.to_string(), json!(lead))
        }
        ChangeEvent::ConversionReviewed { conversion: c } => {
            let kind =
                if c.status == ConversionStatus::Approved { "conversion.approved" } else { "conversion.rejected" };
            (kind, c.id.to_string(), json!(c))
        }
        ChangeEvent::Moved { payout, step } => {
            let kind = match step {
                Step::Escrow => "payout.escrowed",
                Step::Release => "payout.released",
                Step::Credit => "payout.credited",
                Step::Cancel => "payout.cancelled",
                Step::Clawback => "payout.clawed_back",
            };
            (kind, payout.id.to_string(), json!(payout))
        }
        ChangeEvent::Expired { referral } => ("referral.expired", referral.id.to_string(), json!(referral)),
        ChangeEvent::TrackingConfirmed { campaign } => {
            ("campaign.tracking_confirmed", campaign.id.to_string(), json!(campaign))
        }
    };
    json!({ "type": kind, "id": id, "at": change.at, "data": data })
}

fn encode(cursor: &FeedCursor) -> String {
    URL_SAFE_NO_PAD.encode(cursor.to_bytes())
}

fn decode(text: &str) -> std::result::Result<FeedCursor, crate::domain::validate::Invalid> {
    let bad = || invalid("after", "must be a cursor this endpoint returned as next");
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    FeedCursor::from_bytes(&bytes).ok_or_else(bad)
}
