//! Partner postbacks, ad network style: an affiliate's URL template whose
//! macros are filled in from each of its conversions (sub-IDs included,
//! each URL-encoded), sent through the same outbox as webhooks, with its
//! delivery log visible to the affiliate alone.

mod common;

use common::receiver::Receiver;
use common::*;
use serde_json::{json, Value};

const FAST: &[(&str, &str)] = &[
    ("CLICKLEDGER_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true"),
    ("CLICKLEDGER_WEBHOOKS_RETRY_SCHEDULE", "1s"),
    ("CLICKLEDGER_WEBHOOKS_POLL_MS", "50"),
];
const PATH: &str = "/api/v1/affiliate/postback-url";
const WAIT_SECS: u64 = 60;

async fn put(server: &TestServer, key: &str, body: Value) -> Value {
    let r = server.json_request(hyper::Method::PUT, PATH, Some(key), body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

/// Percent-decodes a query value the way a tracker would.
fn decoded(url: &str, name: &str) -> String {
    let raw = query_param(url, name).unwrap_or_else(|| panic!("{name} in {url}"));
    percent_encoding::percent_decode_str(&raw).decode_utf8().unwrap().into_owned()
}

#[tokio::test]
async fn a_conversion_fires_the_affiliates_postback_with_its_macros_and_hostile_sub_ids_encoded() {
    let server = TestServer::start_with(FAST).await;
    let w = World::fixed(&server, 300).await;
    let receiver = Receiver::start(vec![]).await;
    let template = receiver.url(
        "/pb?cid={click_id}&conv={conversion_id}&p={payout}&pc={payout_cents}&s1={sub1}&s2={sub2}&s3={sub3}&st={status}&cur={currency}&aff={affiliate_id}",
    );
    let saved = put(&server, &w.affiliate_key, json!({"url": template})).await;
    assert_eq!((saved["method"].clone(), saved["events"].clone()), (json!("GET"), json!(["conversion.recorded"])));

    let hostile = "a&b=c d#x?y/%";
    let query = format!(
        "sub1={}&sub2=%E2%82%AC",
        percent_encoding::utf8_percent_encode(hostile, percent_encoding::NON_ALPHANUMERIC)
    );
    let ua = [("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0")];
    let r = server.send(hyper::Method::GET, &format!("/r/{}?{query}", w.code), &ua, vec![]).await;
    let token = query_param(r.header("location").unwrap(), "irw_id").unwrap();
    let conversion = w.convert(&server, &token).await.json();

    let got = receiver.until(1, WAIT_SECS).await;
    let url = &got[0].path;
    assert!(url.starts_with("/pb?") && got[0].body.is_empty(), "a GET with no body: {:?}", got[0]);
    assert_eq!(decoded(url, "conv"), conversion["conversionId"].as_str().unwrap());
    assert!(decoded(url, "cid").starts_with("clk_"), "{url}");
    assert_eq!((decoded(url, "p"), decoded(url, "pc")), ("3.00".into(), "300".into()));
    assert_eq!(decoded(url, "s1"), hostile, "each value URL-encoded, so none breaks the query: {url}");
    assert_eq!((decoded(url, "s2"), decoded(url, "s3")), ("€".into(), String::new()));
    assert_eq!((decoded(url, "st"), decoded(url, "cur")), ("recorded".into(), "USD".into()));
    assert_eq!(decoded(url, "aff"), w.affiliate_id);
    assert!(got[0].header("webhook-id").starts_with("evt_"));

    let log_path = format!("/api/v1/webhooks/{}/deliveries", saved["id"].as_str().unwrap());
    let log = server
        .until("the postback marked delivered", || async {
            let page = server.get(&log_path, Some(&w.affiliate_key)).await.json();
            (page["deliveries"][0]["status"] == "delivered").then_some(page)
        })
        .await;
    assert_eq!(log["deliveries"][0]["attempts"][0]["statusCode"], 200, "{log}");
    assert_eq!(server.get(&log_path, Some(&w.key)).await.status, 404, "the advertiser does not see it");
}

#[tokio::test]
async fn a_campaigns_own_postback_wins_over_the_affiliate_wide_one_and_post_sends_the_event() {
    let server = TestServer::start_with(FAST).await;
    let w = World::fixed(&server, 300).await;
    let (global, own) = (Receiver::start(vec![]).await, Receiver::start(vec![]).await);
    put(&server, &w.affiliate_key, json!({"url": global.url("/all?e={external_id}")})).await;
    let body = json!({"url": own.url("/one?e={external_id}"), "campaignId": w.campaign_id, "method": "POST"});
    put(&server, &w.affiliate_key, body).await;
    let listed = server.get(PATH, Some(&w.affiliate_key)).await.json();
    assert_eq!(listed["postbackUrls"].as_array().unwrap().len(), 2, "{listed}");

    let r = w.postback(&server, "order-9", Some(1000)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let got = own.until(1, WAIT_SECS).await;
    assert_eq!(got[0].path, "/one?e=order-9");
    assert_eq!(got[0].json()["data"]["externalId"], "order-9", "POST carries the event");
    tokio::time::sleep(std::time::Duration::from_secs(if cql_mode() { 8 } else { 1 })).await;
    assert!(global.received().is_empty(), "the campaign's own URL replaced the affiliate-wide one");

    let del = format!("{PATH}?campaignId={}", w.campaign_id);
    let r = server
        .send(hyper::Method::DELETE, &del, &[("authorization", &format!("Bearer {}", w.affiliate_key))], vec![])
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    w.postback(&server, "order-10", Some(1000)).await;
    let got = global.until(1, WAIT_SECS).await;
    assert_eq!(got[0].path, "/all?e=order-10", "with the campaign's gone, the affiliate-wide one fires");
}

#[tokio::test]
async fn a_bad_template_is_refused_by_name_and_only_affiliates_set_one() {
    let server = TestServer::start_with(FAST).await;
    let w = World::fixed(&server, 300).await;
    for (body, needle) in [
        (json!({"url": "http://t.example/?a={clickid}&b={sub6}"}), "{clickid}"),
        (json!({"url": "http://{sub1}.example/"}), "host"),
        (json!({"url": "ftp://t.example/{click_id}"}), "url"),
        (json!({"url": "http://t.example/", "method": "PATCH"}), "method"),
        (json!({"url": "http://t.example/", "events": ["payout.credited"]}), "events"),
        (json!({"url": "http://t.example/", "campaignId": "cmp_0000000000000001"}), "campaignId"),
    ] {
        let r = server.json_request(hyper::Method::PUT, PATH, Some(&w.affiliate_key), body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.text.contains(needle), "{body}: names {needle}: {}", r.text);
    }
    let r = server.json_request(hyper::Method::PUT, PATH, Some(&w.key), json!({"url": "http://t.example/"})).await;
    assert_eq!(r.status, 403, "an advertiser key: {}", r.text);
    assert_eq!(server.get(PATH, Some(&w.affiliate_key)).await.json()["postbackUrls"], json!([]), "nothing stored");
}

#[tokio::test]
async fn a_refund_fires_the_postback_again_with_status_reversed() {
    let server = TestServer::start_with(&[FAST, MONEY_ENV].concat()).await;
    let w = World::fixed(&server, 300).await;
    w.fund(&server, 10_000).await;
    let receiver = Receiver::start(vec![]).await;
    let events = ["conversion.recorded", "conversion.reversed"];
    put(
        &server,
        &w.affiliate_key,
        json!({"url": receiver.url("/pb?e={external_id}&st={status}&p={payout_cents}"), "events": events}),
    )
    .await;
    assert_eq!(w.postback(&server, "order-r", Some(1000)).await.status, 201);
    receiver.until(1, WAIT_SECS).await;
    // The refund reverses the escrowed payout (escrow follows the postback).
    let refund = json!({"swarm_ref": w.code, "externalId": "order-r", "eventType": "REFUND"});
    let r = server
        .until("the payout escrowed, so the refund reverses it", || async {
            let r = server.post("/api/v1/postback", Some(&w.key), refund.clone()).await;
            (r.status == 200).then_some(r)
        })
        .await;
    assert_eq!(r.json()["status"], "reversed", "{}", r.text);
    let got = receiver.until(2, WAIT_SECS).await;
    let mut paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["/pb?e=order-r&st=recorded&p=300", "/pb?e=order-r&st=reversed&p=300"]);
}
