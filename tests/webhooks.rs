//! Webhooks (Standard Webhooks) end to end: a real receiver on port 0 that
//! fails, times out and then succeeds; the event arrives under one id, its
//! signature verifies with the npm standardwebhooks package, and the
//! delivery log shows every attempt. Endpoint management, isolation between
//! tenants, SSRF refusals, kill -9 with undelivered events.

mod common;

use common::receiver::{verify_independently, Answer, Receiver};
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// Fast retries and polling, loopback targets allowed.
const FAST: &[(&str, &str)] = &[
    ("CLICKLEDGER_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true"),
    ("CLICKLEDGER_WEBHOOKS_RETRY_SCHEDULE", "1s,1s,1s"),
    ("CLICKLEDGER_WEBHOOKS_TIMEOUT_MS", "700"),
    ("CLICKLEDGER_WEBHOOKS_POLL_MS", "50"),
];

/// Deliveries wait behind the change feed (seconds on CQL) and retries.
const WAIT_SECS: u64 = 60;

async fn create(server: &TestServer, key: &str, url: &str, events: &[&str]) -> Value {
    let r = server.post("/api/v1/webhooks", Some(key), json!({"url": url, "events": events})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

async fn postback(server: &TestServer, w: &World, external_id: &str) -> Value {
    let r = w.postback(server, external_id, Some(5000)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

#[tokio::test]
async fn a_failing_receiver_gets_the_event_again_under_one_id_until_it_succeeds() {
    let receiver =
        Receiver::start(vec![Answer::Status(500), Answer::Status(503), Answer::Hang(Duration::from_secs(3))]).await;
    let server = TestServer::start_with(FAST).await;
    let w = World::fixed(&server, 300).await;
    let hook = create(&server, &w.key, &receiver.url("/hooks?src=cl"), &["conversion.recorded"]).await;
    let secret = hook["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{hook}");
    let lead = postback(&server, &w, "order-1").await;

    let got = receiver.until(4, WAIT_SECS).await;
    assert_eq!(got[0].path, "/hooks?src=cl");
    let id = got[0].header("webhook-id");
    assert!(id.starts_with("evt_"), "{:?}", got[0].headers);
    assert!(got.iter().all(|r| r.header("webhook-id") == id && r.body == got[0].body), "one id, one body: {got:#?}");
    let event = got[0].json();
    assert_eq!((event["id"].as_str(), event["type"].as_str()), (Some(id), Some("conversion.recorded")));
    assert_eq!(event["data"]["id"], lead["leadId"], "{event}");
    assert_eq!(event["data"]["externalId"], "order-1");
    if let Some(verdicts) = verify_independently(secret, &got) {
        assert_eq!(verdicts, vec!["ok"; got.len()], "standardwebhooks verifies every attempt");
    }
    let mut forged = got[0].clone();
    forged.body = forged.body.replace("order-1", "order-2");
    if let Some(verdicts) = verify_independently(secret, &[forged]) {
        assert_ne!(verdicts, ["ok"], "a changed body must not verify");
    }

    let path = format!("/api/v1/webhooks/{}/deliveries", hook["id"].as_str().unwrap());
    let log = server
        .until("the delivery marked delivered", || async {
            let page = server.get(&path, Some(&w.key)).await.json();
            (page["deliveries"][0]["status"] == "delivered").then_some(page)
        })
        .await;
    let delivery = &log["deliveries"][0];
    assert_eq!(delivery["eventId"].as_str(), Some(id));
    let attempts = delivery["attempts"].as_array().unwrap();
    let codes: Vec<Value> = attempts.iter().map(|a| a["statusCode"].clone()).collect();
    assert_eq!(codes, [json!(500), json!(503), Value::Null, json!(200)], "{delivery:#}");
    assert!(attempts[2]["error"].as_str().unwrap().contains("timed out"), "{delivery:#}");
    assert_eq!(attempts.iter().map(|a| a["attempt"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert!(delivery["nextAttemptAt"].is_null());
    let failed = server.get(&format!("{path}?status=failed"), Some(&w.key)).await.json();
    assert_eq!(failed["deliveries"], json!([]), "{failed}");

    let again =
        server.post(&format!("{path}/{}/redeliver", delivery["id"].as_str().unwrap()), Some(&w.key), json!({})).await;
    assert_eq!(again.status, 202, "{}", again.text);
    let got = receiver.until(5, WAIT_SECS).await;
    assert_eq!(got[4].header("webhook-id"), id, "a redelivery is the same event");
    // On CQL the other tests' servers share the keyspace and so the work.
    let metrics = server.metrics().await;
    let delivered = if cql_mode() { "{outcome=\"delivered\"}" } else { "{outcome=\"delivered\"} 2" };
    assert!(metrics.contains(&format!("clickledger_webhook_deliveries_total{delivered}")), "{metrics}");
}

#[tokio::test]
async fn endpoints_are_managed_by_their_owner_and_bad_ones_are_refused_by_field() {
    let server = TestServer::start_with(&[FAST, &[("CLICKLEDGER_WEBHOOKS_MAX_PER_TENANT", "2")]].concat()).await;
    let w = World::fixed(&server, 300).await;
    let url = "http://127.0.0.1:9/in";
    let hook = create(&server, &w.key, url, &["conversion.recorded", "payout.credited"]).await;
    let id = hook["id"].as_str().unwrap();
    assert_eq!((hook["enabled"].clone(), hook["url"].clone()), (json!(true), json!(url)));
    let path = format!("/api/v1/webhooks/{id}");
    let shown = server.get(&path, Some(&w.key)).await;
    assert_eq!(shown.status, 200);
    assert!(shown.json().get("secret").is_none() && !shown.text.contains("whsec_"), "shown once: {}", shown.text);
    let listed = server.get("/api/v1/webhooks", Some(&w.key)).await.json();
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 1);

    for (body, field) in [
        (json!({"url": "ftp://x.example/", "events": ["conversion.recorded"]}), "url"),
        (json!({"url": format!("http://x.example/{}", "a".repeat(2050)), "events": ["conversion.recorded"]}), "url"),
        (json!({"url": "http://x.example/", "events": ["conversion.made"]}), "events"),
        (json!({"url": "http://x.example/", "events": []}), "events"),
        (json!({"events": ["conversion.recorded"]}), "url"),
    ] {
        let r = server.post("/api/v1/webhooks", Some(&w.key), body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.text.contains(field), "names {field}: {}", r.text);
    }
    let unknown = server.post("/api/v1/webhooks", Some(&w.key), json!({"url": url, "events": ["nope"]})).await;
    assert!(unknown.text.contains("referral.expired"), "the 400 lists the catalogue: {}", unknown.text);

    let changed = server.patch(&path, Some(&w.key), json!({"enabled": false, "events": ["lead.submitted"]})).await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(
        (changed.json()["enabled"].clone(), changed.json()["events"].clone()),
        (json!(false), json!(["lead.submitted"]))
    );
    let rotated = server.post(&format!("{path}/rotate-secret"), Some(&w.key), json!({})).await.json();
    assert!(rotated["secret"].as_str().unwrap().starts_with("whsec_") && rotated["secret"] != hook["secret"]);

    let (_, other_key) = new_advertiser(&server, "Other").await;
    assert_eq!(server.get(&path, Some(&other_key)).await.status, 404, "another tenant's endpoint is not there");
    assert_eq!(server.get("/api/v1/webhooks", Some(&other_key)).await.json()["webhooks"], json!([]));
    let r = server.patch(&path, Some(&other_key), json!({"enabled": true})).await;
    assert_eq!(r.status, 404);

    create(&server, &w.key, url, &["conversion.recorded"]).await;
    let third =
        server.post("/api/v1/webhooks", Some(&w.key), json!({"url": url, "events": ["conversion.recorded"]})).await;
    assert_eq!(third.status, 400, "webhooks.max_per_tenant: {}", third.text);

    let r = server.send(hyper::Method::DELETE, &path, &[("authorization", &format!("Bearer {}", w.key))], vec![]).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(server.get(&path, Some(&w.key)).await.status, 404);
}

#[tokio::test]
async fn private_and_metadata_targets_are_refused_unless_allowed() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 300).await;
    for url in [
        "http://127.0.0.1:8080/x",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost/",
        "http://[::1]/",
        "http://10.0.0.7/",
    ] {
        let r =
            server.post("/api/v1/webhooks", Some(&w.key), json!({"url": url, "events": ["conversion.recorded"]})).await;
        assert_eq!(r.status, 400, "{url}: {}", r.text);
        assert!(r.text.contains("url") && r.text.contains("private"), "{url}: {}", r.text);
    }
}

#[tokio::test]
async fn each_tenant_hears_only_its_own_events() {
    let server = TestServer::start_with(FAST).await;
    let a = World::fixed(&server, 300).await;
    let b = World::fixed(&server, 300).await;
    let (rx_a, rx_b, rx_aff_a, rx_aff_b) = (
        Receiver::start(vec![]).await,
        Receiver::start(vec![]).await,
        Receiver::start(vec![]).await,
        Receiver::start(vec![]).await,
    );
    create(&server, &a.key, &rx_a.url("/"), &["conversion.recorded"]).await;
    create(&server, &b.key, &rx_b.url("/"), &["conversion.recorded"]).await;
    create(&server, &a.affiliate_key, &rx_aff_a.url("/"), &["conversion.recorded"]).await;
    create(&server, &b.affiliate_key, &rx_aff_b.url("/"), &["conversion.recorded"]).await;
    let lead = postback(&server, &a, "a-1").await;
    let token = a.click_token(&server).await;
    let conversion = a.convert(&server, &token).await.json();

    let ids = |got: Vec<common::receiver::Received>| -> Vec<Value> {
        got.iter().map(|r| r.json()["data"]["id"].clone()).collect()
    };
    let mut seen = ids(rx_a.until(2, WAIT_SECS).await);
    seen.sort_by_key(|v| v.to_string());
    let mut want = vec![lead["leadId"].clone(), conversion["conversionId"].clone()];
    want.sort_by_key(|v| v.to_string());
    assert_eq!(seen, want, "the advertiser hears its campaign's conversions");
    assert_eq!(rx_aff_a.until(2, WAIT_SECS).await.len(), 2, "the affiliate hears its own");
    tokio::time::sleep(Duration::from_secs(if cql_mode() { 8 } else { 1 })).await;
    assert!(rx_b.received().is_empty() && rx_aff_b.received().is_empty(), "nobody else hears them");
    assert_eq!(rx_a.received().len(), 2, "and each is delivered once");
}

#[tokio::test]
async fn a_test_event_reaches_the_endpoint_it_names() {
    let server = TestServer::start_with(FAST).await;
    let w = World::fixed(&server, 300).await;
    let receiver = Receiver::start(vec![]).await;
    let hook = create(&server, &w.affiliate_key, &receiver.url("/t"), &["conversion.recorded"]).await;
    let r = server
        .post(&format!("/api/v1/webhooks/{}/test", hook["id"].as_str().unwrap()), Some(&w.affiliate_key), json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let got = receiver.until(1, WAIT_SECS).await;
    let event = got[0].json();
    assert_eq!(
        (event["type"].clone(), event["data"]["webhookId"].clone()),
        (json!("webhook.test"), hook["id"].clone())
    );
    if let Some(verdicts) = verify_independently(hook["secret"].as_str().unwrap(), &got) {
        assert_eq!(verdicts, ["ok"]);
    }
}

#[tokio::test]
async fn events_acknowledged_before_a_kill_9_are_delivered_after_the_restart() {
    // The outbox looks only once a minute, so the kill comes before it does.
    let slow = [FAST, &[("CLICKLEDGER_WEBHOOKS_POLL_MS", "60000")]].concat();
    let server = TestServer::start_with(&slow).await;
    let w = World::fixed(&server, 300).await;
    let receiver = Receiver::start(vec![]).await;
    create(&server, &w.key, &receiver.url("/k"), &["conversion.recorded"]).await;
    let mut leads = Vec::new();
    for i in 0..3 {
        leads.push(postback(&server, &w, &format!("k-{i}")).await);
    }
    let server = server.kill9_and_restart_with(&[("CLICKLEDGER_WEBHOOKS_POLL_MS", "50")]).await;
    let got = receiver.until(3, WAIT_SECS).await;
    let mut seen: Vec<Value> = got.iter().map(|r| r.json()["data"]["id"].clone()).collect();
    let mut want: Vec<Value> = leads.iter().map(|l| l["leadId"].clone()).collect();
    seen.sort_by_key(|v| v.to_string());
    want.sort_by_key(|v| v.to_string());
    assert_eq!(seen, want);
    drop(server);
}

#[tokio::test]
async fn reviews_money_and_reversals_reach_the_advertiser_and_the_affiliate() {
    let env = [FAST, MONEY_ENV].concat();
    let server = TestServer::start_with(&env).await;
    let w = World::fixed(&server, 700).await;
    let (adv, aff) = (Receiver::start(vec![]).await, Receiver::start(vec![]).await);
    let events = ["lead.submitted", "lead.verified", "conversion.recorded", "payout.escrowed", "conversion.reversed"];
    create(&server, &w.key, &adv.url("/adv"), &events).await;
    create(&server, &w.affiliate_key, &aff.url("/aff"), &["lead.verified", "payout.escrowed", "conversion.reversed"])
        .await;
    w.fund(&server, 10_000).await;
    let lead = w.submit_lead(&server).await;
    let lead_id = lead["id"].as_str().unwrap();
    assert_eq!(w.review(&server, lead_id, "verify", json!({})).await.status, 200);
    // submitted, verified, recorded (the verified lead), escrowed
    let got = adv.until(4, WAIT_SECS).await;
    let kinds = |got: &[common::receiver::Received]| -> Vec<String> {
        let mut k: Vec<String> = got.iter().map(|r| r.json()["type"].as_str().unwrap().to_string()).collect();
        k.sort();
        k
    };
    assert_eq!(kinds(&got), ["conversion.recorded", "lead.submitted", "lead.verified", "payout.escrowed"]);
    let escrowed = got.iter().find(|r| r.json()["type"] == "payout.escrowed").unwrap().json();
    assert_eq!(
        (escrowed["data"]["source"].as_str(), escrowed["data"]["amountCents"].as_u64()),
        (Some(lead_id), Some(700))
    );

    let r = w.reverse(&server, lead_id, "chargeback").await;
    assert!(r.status.is_success(), "{}", r.text);
    let got = adv.until(5, WAIT_SECS).await;
    let reversed = got.iter().find(|r| r.json()["type"] == "conversion.reversed").expect("reversed").json();
    assert_eq!(reversed["data"]["id"].as_str(), Some(lead_id), "the record itself: {reversed}");
    assert_eq!(reversed["data"]["reversal"]["amountCents"], 700, "{reversed}");
    let got = aff.until(3, WAIT_SECS).await;
    assert_eq!(kinds(&got), ["conversion.reversed", "lead.verified", "payout.escrowed"], "the affiliate's own");
}

#[tokio::test]
async fn an_https_endpoint_gets_its_events_over_verified_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let receiver = Receiver::start_tls(vec![], &ca).await;
    let env = [FAST, &[("CLICKLEDGER_WEBHOOKS_EXTRA_CA_FILE", ca.to_str().unwrap())]].concat();
    let server = TestServer::start_with(&env).await;
    let w = World::fixed(&server, 300).await;
    let hook = create(&server, &w.key, &receiver.url("/tls"), &["conversion.recorded"]).await;
    assert!(hook["url"].as_str().unwrap().starts_with("https://"));
    postback(&server, &w, "tls-1").await;
    let got = receiver.until(1, WAIT_SECS).await;
    assert_eq!(got[0].json()["data"]["externalId"], "tls-1");

    // Without the CA the certificate is not trusted: the attempt fails.
    // (On CQL the first server would share the work: it goes first.)
    drop(server);
    let other = TestServer::start_with(FAST).await;
    let w2 = World::fixed(&other, 300).await;
    let hook = create(&other, &w2.key, &receiver.url("/untrusted"), &["conversion.recorded"]).await;
    postback(&other, &w2, "tls-2").await;
    let path = format!("/api/v1/webhooks/{}/deliveries", hook["id"].as_str().unwrap());
    let log = other
        .until("a failed TLS attempt in the log", || async {
            let page = other.get(&path, Some(&w2.key)).await.json();
            page["deliveries"][0]["attempts"][0]["error"].as_str().map(str::to_string)
        })
        .await;
    assert!(log.contains("TLS") || log.contains("certificate"), "{log}");
    assert_eq!(receiver.received().len(), 1, "nothing reached the receiver untrusted");
}

#[tokio::test]
async fn an_endpoint_failing_event_after_event_is_disabled_and_says_why() {
    let receiver = Receiver::start((0..20).map(|_| Answer::Status(500)).collect()).await;
    let env = [
        FAST,
        &[
            ("CLICKLEDGER_WEBHOOKS_RETRY_SCHEDULE", "1s"),
            ("CLICKLEDGER_WEBHOOKS_GIVE_UP_AFTER", "1s"),
            ("CLICKLEDGER_WEBHOOKS_DISABLE_AFTER_FAILURES", "2"),
        ],
    ]
    .concat();
    let server = TestServer::start_with(&env).await;
    let w = World::fixed(&server, 300).await;
    let hook = create(&server, &w.key, &receiver.url("/down"), &["conversion.recorded"]).await;
    let path = format!("/api/v1/webhooks/{}", hook["id"].as_str().unwrap());
    postback(&server, &w, "down-1").await;
    postback(&server, &w, "down-2").await;
    let shown = server
        .until("the endpoint disabled", || async {
            let e = server.get(&path, Some(&w.key)).await.json();
            (e["enabled"] == false).then_some(e)
        })
        .await;
    assert!(shown["disabledReason"].as_str().unwrap().contains("2 events in a row"), "{shown}");
    let log = server.get(&format!("{path}/deliveries?status=failed"), Some(&w.key)).await.json();
    assert_eq!(log["deliveries"].as_array().unwrap().len(), 2, "{log}");
    assert_eq!(log["deliveries"][0]["attempts"].as_array().unwrap().len(), 2, "tried, retried, given up: {log}");
    let metrics = server.metrics().await;
    assert!(metrics.contains("clickledger_webhook_endpoints_disabled_total 1"), "{metrics}");
    let again = server.patch(&path, Some(&w.key), json!({"enabled": true})).await.json();
    assert_eq!((again["enabled"].clone(), again.get("disabledReason")), (json!(true), None), "{again}");
}

#[tokio::test]
async fn a_held_conversion_sends_held_then_its_decision_and_recorded_only_once_approved() {
    let receiver = Receiver::start(vec![]).await;
    let server = TestServer::start_with(FAST).await;
    let w = World::fixed(&server, 300).await;
    let events = ["conversion.recorded", "conversion.held", "conversion.approved", "conversion.rejected"];
    create(&server, &w.key, &receiver.url("/hooks"), &events).await;
    let rules = json!({"rules": {"minSecondsToConvert": {"seconds": 3600, "action": "flag"}}});
    let path = format!("/api/v1/campaigns/{}", w.campaign_id);
    assert_eq!(server.patch(&path, Some(&w.key), rules).await.status, 200);
    let mut held = Vec::new();
    for _ in 0..2 {
        let token = w.click_token(&server).await;
        let r = w.convert(&server, &token).await;
        assert_eq!(r.json()["review"], "pending_review", "{}", r.text);
        held.push(r.json()["conversionId"].as_str().unwrap().to_string());
    }
    let approve = format!("/api/v1/conversions/{}/approve", held[0]);
    assert_eq!(server.post(&approve, Some(&w.key), json!({})).await.status, 200);
    let reject = format!("/api/v1/conversions/{}/reject", held[1]);
    assert_eq!(server.post(&reject, Some(&w.key), json!({"reason": "bot farm"})).await.status, 200);

    let got = receiver.until(5, WAIT_SECS).await;
    let mut seen: Vec<(String, String)> = got
        .iter()
        .map(|r| (r.json()["type"].as_str().unwrap().to_string(), r.json()["data"]["id"].as_str().unwrap().to_string()))
        .collect();
    seen.sort();
    let (a, b) = (held[0].clone(), held[1].clone());
    let mut want = vec![
        ("conversion.approved".to_string(), a.clone()),
        ("conversion.held".to_string(), a.clone()),
        ("conversion.held".to_string(), b.clone()),
        ("conversion.recorded".to_string(), a),
        ("conversion.rejected".to_string(), b),
    ];
    want.sort();
    assert_eq!(seen, want, "no conversion.recorded for a held or rejected conversion");
    let rejected = got.iter().find(|r| r.json()["type"] == "conversion.rejected").unwrap().json();
    assert_eq!(rejected["data"]["reason"], "bot farm", "{rejected}");
}
