//! The hyper front end: a hand-written router over path segments, one file per
//! endpoint family, and one error mapping (`error.rs`).

pub mod admin;
pub mod auth;
pub mod body;
pub mod campaigns;
pub mod error;
pub mod ingest;
pub mod ops;
pub mod snippet;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Method, Request};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::engine::Engine;
use crate::error::{Error, Result};
use body::Resp;

/// What every handler may need besides the request.
pub struct Ctx {
    pub engine: Arc<Engine>,
    pub prometheus: Option<PrometheusHandle>,
}

/// A matched route: its metric label (the template, never the raw path) and
/// the path parameter, if any.
enum Route<'a> {
    Healthz,
    Metrics,
    Redirect(&'a str),
    AdminAdvertisers,
    AdminAffiliates,
    Campaigns,
    Campaign(&'a str),
    CampaignAffiliates(&'a str),
    CampaignActivate(&'a str),
    CampaignPause(&'a str),
    Conversions,
    Postback,
    Snippet,
}

impl Route<'_> {
    fn template(&self) -> &'static str {
        match self {
            Route::Healthz => "/healthz",
            Route::Metrics => "/metrics",
            Route::Redirect(_) => "/r/{code}",
            Route::AdminAdvertisers => "/api/v1/admin/advertisers",
            Route::AdminAffiliates => "/api/v1/admin/affiliates",
            Route::Campaigns => "/api/v1/campaigns",
            Route::Campaign(_) => "/api/v1/campaigns/{id}",
            Route::CampaignAffiliates(_) => "/api/v1/campaigns/{id}/affiliates",
            Route::CampaignActivate(_) => "/api/v1/campaigns/{id}/activate",
            Route::CampaignPause(_) => "/api/v1/campaigns/{id}/pause",
            Route::Conversions => "/api/v1/affiliate/conversions",
            Route::Postback => "/api/v1/postback",
            Route::Snippet => "/affiliate.js",
        }
    }

    /// The methods the route answers, as an `Allow` header value.
    fn allow(&self) -> &'static str {
        match self {
            Route::Healthz | Route::Redirect(_) | Route::Snippet => "GET, HEAD",
            Route::Conversions => "POST, OPTIONS",
            Route::Metrics => "GET",
            Route::Campaign(_) => "GET, PATCH",
            _ => "POST",
        }
    }
}

fn match_route(path: &str) -> Option<Route<'_>> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    Some(match segs.as_slice() {
        ["healthz"] => Route::Healthz,
        ["metrics"] => Route::Metrics,
        ["affiliate.js"] => Route::Snippet,
        ["r", code] if !code.is_empty() => Route::Redirect(code),
        ["api", "v1", rest @ ..] => match rest {
            ["admin", "advertisers"] => Route::AdminAdvertisers,
            ["admin", "affiliates"] => Route::AdminAffiliates,
            ["campaigns"] => Route::Campaigns,
            ["campaigns", id] => Route::Campaign(id),
            ["campaigns", id, "affiliates"] => Route::CampaignAffiliates(id),
            ["campaigns", id, "activate"] => Route::CampaignActivate(id),
            ["campaigns", id, "pause"] => Route::CampaignPause(id),
            ["affiliate", "conversions"] => Route::Conversions,
            ["postback"] => Route::Postback,
            _ => return None,
        },
        _ => return None,
    })
}

/// Entry point for every request: route, run, map errors, record metrics.
pub async fn handle(ctx: Arc<Ctx>, req: Request<Incoming>, remote: SocketAddr) -> Resp {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = match_route(&path);
    let template = route.as_ref().map_or("unmatched", Route::template);
    let result = match route {
        None => Err(Error::NoRoute(path.clone())),
        Some(route) => dispatch(&ctx, route, req, remote).await,
    };
    let resp = result.unwrap_or_else(|e| error::error_response(&e, ctx.engine.config.http.retry_after_secs));
    crate::metrics::http_request(template, method.as_str(), resp.status().as_u16(), started.elapsed());
    resp
}

async fn dispatch(ctx: &Ctx, route: Route<'_>, req: Request<Incoming>, remote: SocketAddr) -> Result<Resp> {
    let m = req.method().clone();
    let allowed = route.allow().split(", ").any(|a| a == m.as_str());
    if !allowed {
        return Err(Error::MethodNotAllowed { method: m.to_string(), allow: route.allow() });
    }
    match route {
        Route::Healthz => Ok(ops::healthz(ctx)),
        Route::Metrics => Ok(ops::metrics(ctx)),
        Route::Redirect(code) => {
            let code = code.to_string();
            ingest::redirect(ctx, &req, &code, remote).await
        }
        Route::AdminAdvertisers => admin::create_advertiser(ctx, req).await,
        Route::AdminAffiliates => admin::create_affiliate(ctx, req).await,
        Route::Campaigns => campaigns::create(ctx, req).await,
        Route::Campaign(id) if m == Method::GET => campaigns::show(ctx, req, id).await,
        Route::Campaign(id) => campaigns::update(ctx, req, id).await,
        Route::CampaignAffiliates(id) => campaigns::approve_affiliate(ctx, req, id).await,
        Route::CampaignActivate(id) => campaigns::set_status(ctx, req, id, true).await,
        Route::CampaignPause(id) => campaigns::set_status(ctx, req, id, false).await,
        Route::Conversions if m == Method::OPTIONS => Ok(ingest::preflight(&req)),
        Route::Conversions => ingest::conversion(ctx, req, remote).await,
        Route::Snippet => Ok(snippet::serve(&req)),
        Route::Postback => ingest::postback(ctx, req).await,
    }
}

/// Reads a JSON body with the configured size and time limits.
pub async fn read_body<T: serde::de::DeserializeOwned>(ctx: &Ctx, req: Request<Incoming>) -> Result<T> {
    let http = &ctx.engine.config.http;
    body::read_json(req, http.body_limit_bytes, std::time::Duration::from_millis(http.body_read_timeout_ms)).await
}
