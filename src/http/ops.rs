//! Operator endpoints: liveness and the Prometheus scrape.

use hyper::StatusCode;

use super::body::{json_response, text_response, Resp};
use super::Ctx;

pub fn healthz(ctx: &Ctx) -> Resp {
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "status": "ok",
            "store": format!("{:?}", ctx.engine.config.store).to_lowercase(),
            "campaigns": ctx.engine.catalog.campaign_count(),
        }),
    )
}

pub fn metrics(ctx: &Ctx) -> Resp {
    let text = ctx.prometheus.as_ref().map(|h| h.render()).unwrap_or_default();
    text_response(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", text)
}
