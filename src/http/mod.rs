//! The hyper front end: a hand-written router over path segments, one file per
//! endpoint family, and one error mapping (`error.rs`).

pub mod admin;
pub mod auth;
pub mod batch;
pub mod body;
pub mod campaigns;
pub mod changes;
pub mod error;
pub mod ingest;
pub mod keys;
pub mod leads;
pub mod linger;
pub mod listings;
pub mod money;
pub mod openapi;
pub mod ops;
pub mod query;
pub mod referrals;
pub mod request_id;
pub mod review;
pub mod snippet;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Method, Request};
use metrics_exporter_prometheus::PrometheusHandle;
use tracing::Instrument;

use crate::domain::model::LeadStatus;
use crate::engine::readiness::Readiness;
use crate::engine::Engine;
use crate::error::{Error, Result};
use body::Resp;

/// What every handler may need besides the request.
pub struct Ctx {
    pub engine: Arc<Engine>,
    pub prometheus: Option<PrometheusHandle>,
    pub readiness: Arc<Readiness>,
}

/// A matched route: its metric label (the template, never the raw path) and
/// the path parameter, if any.
enum Route<'a> {
    Healthz,
    Readyz,
    Metrics,
    Redirect(&'a str),
    AdminAdvertisers,
    AdminAffiliates,
    AdminClockAdvance,
    AdminChanges,
    /// `advertisers` or `affiliates`, the tenant's id.
    AdminDisable(&'a str, &'a str),
    AdminEnable(&'a str, &'a str),
    AdminTenantKeys(&'a str, &'a str),
    Keys,
    Key(&'a str),
    KeyRotate(&'a str),
    Campaigns,
    Campaign(&'a str),
    CampaignAffiliates(&'a str),
    CampaignActivate(&'a str),
    CampaignPause(&'a str),
    CampaignFund(&'a str),
    CampaignBalance(&'a str),
    Conversions,
    ConversionsBatch,
    ConversionReverse(&'a str),
    ConversionList,
    ConversionApprove(&'a str),
    ConversionReject(&'a str),
    /// The campaign's id, the affiliate's.
    CampaignAffiliateCaps(&'a str, &'a str),
    Postback,
    PostbackBatch,
    Referrals,
    ReferralVerify,
    ReferralConfirm(&'a str),
    Leads,
    LeadVerify(&'a str),
    LeadReject(&'a str),
    Wallet,
    Webhooks,
    PostbackUrl,
    Webhook(&'a str),
    WebhookRotate(&'a str),
    WebhookTest(&'a str),
    WebhookDeliveries(&'a str),
    /// The webhook's id, the delivery's.
    WebhookRedeliver(&'a str, &'a str),
    Snippet,
    OpenApi,
    CampaignArchive(&'a str),
    /// The campaign's id, the affiliate's.
    CampaignAffiliate(&'a str, &'a str),
    AffiliateCampaigns,
}

impl Route<'_> {
    fn template(&self) -> &'static str {
        match self {
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::Redirect(_) => "/r/{code}",
            Route::AdminAdvertisers => "/api/v1/admin/advertisers",
            Route::AdminAffiliates => "/api/v1/admin/affiliates",
            Route::AdminClockAdvance => "/api/v1/admin/clock/advance",
            Route::AdminChanges => "/api/v1/admin/changes",
            Route::AdminDisable(..) => "/api/v1/admin/{tenants}/{id}/disable",
            Route::AdminEnable(..) => "/api/v1/admin/{tenants}/{id}/enable",
            Route::AdminTenantKeys(..) => "/api/v1/admin/{tenants}/{id}/keys",
            Route::Keys => "/api/v1/keys",
            Route::Key(_) => "/api/v1/keys/{id}",
            Route::KeyRotate(_) => "/api/v1/keys/{id}/rotate",
            Route::Campaigns => "/api/v1/campaigns",
            Route::Campaign(_) => "/api/v1/campaigns/{id}",
            Route::CampaignAffiliates(_) => "/api/v1/campaigns/{id}/affiliates",
            Route::CampaignActivate(_) => "/api/v1/campaigns/{id}/activate",
            Route::CampaignPause(_) => "/api/v1/campaigns/{id}/pause",
            Route::CampaignFund(_) => "/api/v1/campaigns/{id}/fund",
            Route::CampaignBalance(_) => "/api/v1/campaigns/{id}/balance",
            Route::Conversions => "/api/v1/affiliate/conversions",
            Route::ConversionsBatch => "/api/v1/affiliate/conversions/batch",
            Route::ConversionReverse(_) => "/api/v1/conversions/{id}/reverse",
            Route::ConversionList => "/api/v1/conversions",
            Route::ConversionApprove(_) => "/api/v1/conversions/{id}/approve",
            Route::ConversionReject(_) => "/api/v1/conversions/{id}/reject",
            Route::CampaignAffiliateCaps(..) => "/api/v1/campaigns/{id}/affiliates/{affiliateId}/caps",
            Route::Postback => "/api/v1/postback",
            Route::PostbackBatch => "/api/v1/postback/batch",
            Route::Referrals => "/api/v1/referrals",
            Route::ReferralVerify => "/api/v1/referrals/verify",
            Route::ReferralConfirm(_) => "/api/v1/referrals/{id}/confirm",
            Route::Leads => "/api/v1/leads",
            Route::LeadVerify(_) => "/api/v1/leads/{id}/verify",
            Route::LeadReject(_) => "/api/v1/leads/{id}/reject",
            Route::Wallet => "/api/v1/wallet",
            Route::Webhooks => "/api/v1/webhooks",
            Route::PostbackUrl => "/api/v1/affiliate/postback-url",
            Route::Webhook(_) => "/api/v1/webhooks/{id}",
            Route::WebhookRotate(_) => "/api/v1/webhooks/{id}/rotate-secret",
            Route::WebhookTest(_) => "/api/v1/webhooks/{id}/test",
            Route::WebhookDeliveries(_) => "/api/v1/webhooks/{id}/deliveries",
            Route::WebhookRedeliver(..) => "/api/v1/webhooks/{id}/deliveries/{deliveryId}/redeliver",
            Route::Snippet => "/affiliate.js",
            Route::OpenApi => "/openapi.json",
            Route::CampaignArchive(_) => "/api/v1/campaigns/{id}/archive",
            Route::CampaignAffiliate(..) => "/api/v1/campaigns/{id}/affiliates/{affiliateId}",
            Route::AffiliateCampaigns => "/api/v1/affiliate/campaigns",
        }
    }

    /// The methods the route answers, as an `Allow` header value.
    fn allow(&self) -> &'static str {
        match self {
            Route::Healthz | Route::Readyz | Route::Redirect(_) | Route::Snippet | Route::OpenApi => "GET, HEAD",
            Route::Conversions => "POST, OPTIONS",
            Route::Metrics | Route::Wallet | Route::CampaignBalance(_) | Route::AdminChanges => "GET",
            Route::AffiliateCampaigns => "GET",
            Route::Campaign(_) => "GET, PATCH",
            Route::CampaignAffiliate(..) => "DELETE",
            Route::Leads | Route::Keys | Route::Campaigns | Route::CampaignAffiliates(_) => "GET, POST",
            Route::ConversionList => "GET",
            Route::CampaignAffiliateCaps(..) => "PUT",
            Route::Key(_) => "DELETE",
            Route::Webhooks => "GET, POST",
            Route::PostbackUrl => "GET, PUT, DELETE",
            Route::Webhook(_) => "GET, PATCH, DELETE",
            Route::WebhookDeliveries(_) => "GET",
            _ => "POST",
        }
    }
}

/// Path segments per route at most, plus one so a longer path matches nothing.
const MAX_SEGMENTS: usize = 8;

fn match_route(path: &str) -> Option<Route<'_>> {
    // Split on the stack: the redirect path allocates nothing to be routed.
    let mut buf = [""; MAX_SEGMENTS];
    let mut n = 0;
    for seg in path.trim_end_matches('/').split('/').skip(1) {
        if n == MAX_SEGMENTS {
            return None;
        }
        buf[n] = seg;
        n += 1;
    }
    Some(match &buf[..n] {
        ["healthz"] => Route::Healthz,
        ["readyz"] => Route::Readyz,
        ["metrics"] => Route::Metrics,
        ["affiliate.js"] => Route::Snippet,
        ["openapi.json"] => Route::OpenApi,
        ["r", code] if !code.is_empty() => Route::Redirect(code),
        ["api", "v1", rest @ ..] => match rest {
            ["admin", "advertisers"] => Route::AdminAdvertisers,
            ["admin", "affiliates"] => Route::AdminAffiliates,
            ["admin", "clock", "advance"] => Route::AdminClockAdvance,
            ["admin", "changes"] => Route::AdminChanges,
            ["admin", kind, id, "disable"] => Route::AdminDisable(kind, id),
            ["admin", kind, id, "enable"] => Route::AdminEnable(kind, id),
            ["admin", kind, id, "keys"] => Route::AdminTenantKeys(kind, id),
            ["keys"] => Route::Keys,
            ["keys", id] => Route::Key(id),
            ["keys", id, "rotate"] => Route::KeyRotate(id),
            ["campaigns"] => Route::Campaigns,
            ["campaigns", id] => Route::Campaign(id),
            ["campaigns", id, "affiliates"] => Route::CampaignAffiliates(id),
            ["campaigns", id, "activate"] => Route::CampaignActivate(id),
            ["campaigns", id, "pause"] => Route::CampaignPause(id),
            ["campaigns", id, "fund"] => Route::CampaignFund(id),
            ["campaigns", id, "balance"] => Route::CampaignBalance(id),
            ["campaigns", id, "archive"] => Route::CampaignArchive(id),
            ["campaigns", id, "affiliates", aff] => Route::CampaignAffiliate(id, aff),
            ["affiliate", "campaigns"] => Route::AffiliateCampaigns,
            ["affiliate", "conversions"] => Route::Conversions,
            ["affiliate", "conversions", "batch"] => Route::ConversionsBatch,
            ["affiliate", "postback-url"] => Route::PostbackUrl,
            ["conversions", id, "reverse"] => Route::ConversionReverse(id),
            ["conversions"] => Route::ConversionList,
            ["conversions", id, "approve"] => Route::ConversionApprove(id),
            ["conversions", id, "reject"] => Route::ConversionReject(id),
            ["campaigns", id, "affiliates", aff, "caps"] => Route::CampaignAffiliateCaps(id, aff),
            ["postback"] => Route::Postback,
            ["postback", "batch"] => Route::PostbackBatch,
            ["referrals"] => Route::Referrals,
            ["referrals", "verify"] => Route::ReferralVerify,
            ["referrals", id, "confirm"] => Route::ReferralConfirm(id),
            ["leads"] => Route::Leads,
            ["leads", id, "verify"] => Route::LeadVerify(id),
            ["leads", id, "reject"] => Route::LeadReject(id),
            ["wallet"] => Route::Wallet,
            ["webhooks"] => Route::Webhooks,
            ["webhooks", id] => Route::Webhook(id),
            ["webhooks", id, "rotate-secret"] => Route::WebhookRotate(id),
            ["webhooks", id, "test"] => Route::WebhookTest(id),
            ["webhooks", id, "deliveries"] => Route::WebhookDeliveries(id),
            ["webhooks", id, "deliveries", d, "redeliver"] => Route::WebhookRedeliver(id, d),
            _ => return None,
        },
        _ => return None,
    })
}

/// Entry point for every request: route, run, map errors, record metrics.
/// Every response, errors and redirects included, echoes the request's id in
/// `x-request-id`. At `log_level = "debug"` everything a request logs carries
/// it (a span); above that nothing is built per request for the logs, and a
/// request that fails with a 5xx logs one warning naming its id.
pub async fn handle(ctx: Arc<Ctx>, req: Request<Incoming>, remote: SocketAddr) -> Resp {
    let started = Instant::now();
    let method = req.method().clone();
    // A cheap clone (shared bytes), so the route may borrow the path while
    // the handler takes the request.
    let uri = req.uri().clone();
    let request_id = request_id::from_headers(req.headers());
    let route = match_route(uri.path());
    let template = route.as_ref().map_or("unmatched", Route::template);
    let answer = async {
        let result = match route {
            None => Err(Error::NoRoute(uri.path().to_string())),
            Some(route) => dispatch(&ctx, route, req, remote).await,
        };
        result.unwrap_or_else(|e| failed(&ctx, &e, template, &request_id))
    };
    let mut resp = if tracing::enabled!(tracing::Level::DEBUG) {
        let id = request_id::as_text(&request_id);
        let span = tracing::debug_span!("request", request_id = id, method = %method, route = template);
        let resp = answer.instrument(span.clone()).await;
        let (status, micros) = (resp.status().as_u16(), started.elapsed().as_micros() as u64);
        span.in_scope(|| tracing::debug!(status, micros, "answered"));
        resp
    } else {
        answer.await
    };
    crate::metrics::http_request(template, method.as_str(), resp.status().as_u16(), started.elapsed());
    resp.headers_mut().insert(request_id::HEADER, request_id);
    if ctx.readiness.is_draining() {
        // Shutting down: this connection closes after this response, and
        // the client is told so instead of finding out on its next request.
        resp.headers_mut().insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
    }
    resp
}

/// The error's answer; a server-side failure is also logged with the request id.
fn failed(ctx: &Ctx, e: &Error, route: &'static str, request_id: &hyper::header::HeaderValue) -> Resp {
    let resp = error::error_response(e, ctx.engine.config.http.retry_after_secs);
    if resp.status().is_server_error() {
        let id = request_id::as_text(request_id);
        tracing::warn!(request_id = id, route, status = resp.status().as_u16(), error = %e, "request failed");
    }
    resp
}

async fn dispatch(ctx: &Ctx, route: Route<'_>, req: Request<Incoming>, remote: SocketAddr) -> Result<Resp> {
    let m = req.method().clone();
    let allowed = route.allow().split(", ").any(|a| a == m.as_str());
    if !allowed {
        return Err(Error::MethodNotAllowed { method: m.to_string(), allow: route.allow() });
    }
    let limit = match route {
        Route::PostbackBatch | Route::ConversionsBatch => ctx.engine.config.ingest.batch_max_bytes,
        _ => ctx.engine.config.http.body_limit_bytes,
    };
    body::check_declared_length(req.headers(), limit)?;
    match route {
        Route::Healthz => Ok(ops::healthz(ctx)),
        Route::Readyz => Ok(ops::readyz(ctx).await),
        Route::Metrics => Ok(ops::metrics(ctx)),
        Route::Redirect(code) => ingest::redirect(ctx, &req, code, remote).await,
        Route::Conversions if m == Method::OPTIONS => Ok(ingest::preflight(&req)),
        Route::Conversions => ingest::conversion(ctx, req, remote).await,
        Route::Snippet => Ok(snippet::serve(&req)),
        Route::Postback => ingest::postback(ctx, req).await,
        Route::PostbackBatch => ingest::postback_batch(ctx, req).await,
        Route::ConversionsBatch => ingest::conversion_batch(ctx, req, remote).await,
        // Every other route's future lives on the heap: inline, the largest
        // of them would size (and be copied with) every request's future,
        // the redirect's and the postback's included.
        cold => Box::pin(dispatch_cold(ctx, cold, req)).await,
    }
}

/// The routes off the hot path (management, money, webhooks, admin).
async fn dispatch_cold(ctx: &Ctx, route: Route<'_>, req: Request<Incoming>) -> Result<Resp> {
    let m = req.method().clone();
    match route {
        Route::AdminAdvertisers => admin::create_advertiser(ctx, req).await,
        Route::AdminAffiliates => admin::create_affiliate(ctx, req).await,
        Route::AdminClockAdvance => admin::advance_clock(ctx, req).await,
        Route::AdminChanges => changes::list(ctx, req).await,
        Route::AdminDisable(kind, id) => admin::set_disabled(ctx, req, kind, id, true).await,
        Route::AdminEnable(kind, id) => admin::set_disabled(ctx, req, kind, id, false).await,
        Route::AdminTenantKeys(kind, id) => admin::issue_key(ctx, req, kind, id).await,
        Route::Keys if m == Method::GET => keys::list(ctx, req).await,
        Route::Keys => keys::create(ctx, req).await,
        Route::Key(id) => keys::revoke(ctx, req, id).await,
        Route::KeyRotate(id) => keys::rotate(ctx, req, id).await,
        Route::OpenApi => Ok(openapi::serve(&req)),
        Route::Campaigns if m == Method::GET => listings::campaigns(ctx, req).await,
        Route::Campaigns => campaigns::create(ctx, req).await,
        Route::CampaignArchive(id) => campaigns::archive(ctx, req, id).await,
        Route::CampaignAffiliate(id, aff) => campaigns::remove_affiliate(ctx, req, id, aff).await,
        Route::CampaignAffiliates(id) if m == Method::GET => listings::campaign_affiliates(ctx, req, id).await,
        Route::AffiliateCampaigns => listings::affiliate_campaigns(ctx, req).await,

        Route::Campaign(id) if m == Method::GET => campaigns::show(ctx, req, id).await,
        Route::Campaign(id) => campaigns::update(ctx, req, id).await,
        Route::CampaignAffiliates(id) => campaigns::approve_affiliate(ctx, req, id).await,
        Route::CampaignActivate(id) => campaigns::set_status(ctx, req, id, true).await,
        Route::CampaignPause(id) => campaigns::set_status(ctx, req, id, false).await,
        Route::CampaignFund(id) => money::fund(ctx, req, id).await,
        Route::CampaignBalance(id) => money::balance(ctx, req, id).await,
        Route::ConversionReverse(id) => money::reverse(ctx, req, id).await,
        Route::ConversionList => review::list(ctx, req).await,
        Route::ConversionApprove(id) => review::decide(ctx, req, id, true).await,
        Route::ConversionReject(id) => review::decide(ctx, req, id, false).await,
        Route::CampaignAffiliateCaps(id, aff) => review::put_affiliate_caps(ctx, req, id, aff).await,
        Route::Wallet => money::wallet(ctx, req).await,
        Route::Webhooks => webhooks::collection(ctx, req).await,
        Route::PostbackUrl => webhooks::postback_url(ctx, req).await,
        Route::Webhook(id) => webhooks::item(ctx, req, id).await,
        Route::WebhookRotate(id) => webhooks::rotate_secret(ctx, req, id).await,
        Route::WebhookTest(id) => webhooks::test(ctx, req, id).await,
        Route::WebhookDeliveries(id) => webhooks::deliveries(ctx, req, id).await,
        Route::WebhookRedeliver(id, d) => webhooks::redeliver(ctx, req, id, d).await,
        Route::Referrals => referrals::create(ctx, req).await,
        Route::ReferralVerify => referrals::verify(ctx, req).await,
        Route::ReferralConfirm(id) => referrals::confirm(ctx, req, id).await,
        Route::Leads if m == Method::GET => leads::list(ctx, req).await,
        Route::Leads => leads::submit(ctx, req).await,
        Route::LeadVerify(id) => leads::decide(ctx, req, id, LeadStatus::Verified).await,
        Route::LeadReject(id) => leads::decide(ctx, req, id, LeadStatus::Rejected).await,
        Route::Healthz
        | Route::Readyz
        | Route::Metrics
        | Route::Redirect(_)
        | Route::Conversions
        | Route::Snippet
        | Route::Postback
        | Route::PostbackBatch
        | Route::ConversionsBatch => unreachable!("answered by dispatch"),
    }
}

/// Reads a JSON body with the configured size and time limits.
pub async fn read_body<T: serde::de::DeserializeOwned>(ctx: &Ctx, req: Request<Incoming>) -> Result<T> {
    let http = &ctx.engine.config.http;
    body::read_json(req, http.body_limit_bytes, std::time::Duration::from_millis(http.body_read_timeout_ms)).await
}

/// `read_body` for actions whose fields are all optional: no body is `{}`.
pub async fn read_body_or_default<T: serde::de::DeserializeOwned + Default>(
    ctx: &Ctx,
    req: Request<Incoming>,
) -> Result<T> {
    let http = &ctx.engine.config.http;
    let timeout = std::time::Duration::from_millis(http.body_read_timeout_ms);
    body::read_json_or_default(req, http.body_limit_bytes, timeout).await
}
