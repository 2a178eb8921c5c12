//! Operator endpoints: liveness, readiness and the Prometheus scrape.

use hyper::StatusCode;
use serde_json::{json, Map, Value};

use super::body::{json_response, text_response, Resp};
use super::Ctx;
use crate::engine::readiness::Report;
use crate::error::Error;

/// Liveness: the process answers HTTP. Nothing else is checked, so a store
/// outage never makes an orchestrator restart healthy engines.
/// Written directly (one buffer): load balancers call it often, and it is
/// the measure of what the per-request machinery costs (BENCHMARKS.md).
pub fn healthz(ctx: &Ctx) -> Resp {
    let store = match ctx.engine.config.store {
        crate::config::StoreKind::Embedded => "embedded",
        crate::config::StoreKind::Scylla => "scylla",
    };
    let campaigns = ctx.engine.catalog.campaign_count();
    let body = format!(r#"{{"campaigns":{campaigns},"status":"ok","store":"{store}"}}"#);
    text_response(StatusCode::OK, "application/json", body)
}

/// Readiness: 200 with each part's state, or the API's 503 error body
/// (`not_ready`) naming the failing parts, with the same `checks` beside it.
pub async fn readyz(ctx: &Ctx) -> Resp {
    let report = ctx.readiness.evaluate().await;
    readiness_response(&report, ctx.engine.config.http.retry_after_secs)
}

fn readiness_response(report: &Report, retry_after_secs: u32) -> Resp {
    let checks = checks_json(report);
    if report.ready() {
        return json_response(StatusCode::OK, &json!({ "status": "ready", "checks": checks }));
    }
    let failing = report.failing();
    let detail: Vec<String> =
        report.checks.iter().filter(|c| !c.ok).map(|c| format!("{} ({})", c.name, c.detail)).collect();
    let error = Error::NotReady(format!("not ready: {}", detail.join("; ")));
    let mut body = super::error::error_body(&error);
    body["failing"] = json!(failing);
    body["checks"] = checks;
    super::error::error_response_with(&error, &body, retry_after_secs)
}

fn checks_json(report: &Report) -> Value {
    let mut checks = Map::new();
    for c in &report.checks {
        checks.insert(c.name.into(), json!({ "ok": c.ok, "detail": c.detail }));
    }
    let lag: Map<String, Value> = report.lag.iter().map(|(d, s)| (d.name().to_string(), json!(s))).collect();
    if let Some(supervisors) = checks.get_mut("supervisors") {
        supervisors["lagSeconds"] = Value::Object(lag);
    }
    Value::Object(checks)
}

pub fn metrics(ctx: &Ctx) -> Resp {
    let text = ctx.prometheus.as_ref().map(|h| h.render()).unwrap_or_default();
    text_response(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", text)
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;
    use crate::engine::readiness::Check;
    use crate::engine::supervisor::Duty;

    fn report(store_ok: bool) -> Report {
        let check = |name, ok, detail: &str| Check { name, ok, detail: detail.into() };
        Report {
            checks: vec![
                check("shutdown", true, "serving"),
                check("store", store_ok, if store_ok { "reachable" } else { "storage failed: connection refused" }),
                check("supervisors", true, "3 of 3 running"),
            ],
            lag: vec![(Duty::EscrowRelease, 7)],
        }
    }

    async fn body(resp: Resp) -> Value {
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap()
    }

    #[tokio::test]
    async fn a_ready_node_answers_200_with_every_part_and_the_lag() {
        let resp = readiness_response(&report(true), 1);
        assert_eq!(resp.status(), StatusCode::OK);
        let body = body(resp).await;
        assert_eq!(body["status"], "ready");
        assert_eq!(body["checks"]["store"]["ok"], true);
        assert_eq!(body["checks"]["supervisors"]["lagSeconds"]["escrow_release"], 7);
    }

    #[tokio::test]
    async fn a_failing_part_is_a_503_in_the_api_error_shape_naming_it() {
        let resp = readiness_response(&report(false), 3);
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()["retry-after"], "3");
        let body = body(resp).await;
        assert_eq!(body["error"], "not_ready");
        assert_eq!(body["failing"], json!(["store"]));
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("store (storage failed: connection refused)"), "{message}");
        assert_eq!(body["checks"]["store"]["ok"], false);
        assert_eq!(body["checks"]["shutdown"]["ok"], true);
    }
}
