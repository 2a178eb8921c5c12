//! Guards on the money (issue 15): caps hold a campaign to its budget to the
//! unit, fraud rules flag or reject what looks wrong, and held conversions
//! wait for the advertiser's review. Bad settings are a 400 naming the
//! field and change nothing.

mod common;

use common::*;
use serde_json::{json, Value};

async fn patch_campaign(server: &TestServer, w: &World, body: Value) -> Reply {
    server.patch(&format!("/api/v1/campaigns/{}", w.campaign_id), Some(&w.key), body).await
}

async fn campaign(server: &TestServer, w: &World) -> Value {
    let r = server.get(&format!("/api/v1/campaigns/{}", w.campaign_id), Some(&w.key)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

async fn converted(server: &TestServer, w: &World) -> Value {
    let token = w.click_token(server).await;
    let r = w.convert(server, &token).await;
    assert!(r.status.is_success(), "{}", r.text);
    r.json()
}

/// The `capUsage` entry of one scope and period.
fn usage<'a>(campaign: &'a Value, scope: &str, period: &str) -> &'a Value {
    campaign["capUsage"]
        .as_array()
        .and_then(|a| a.iter().find(|u| u["scope"] == scope && u["period"] == period))
        .unwrap_or_else(|| panic!("no {scope} {period} usage in {campaign}"))
}

#[tokio::test]
async fn the_nth_conversion_under_a_daily_cap_is_approved_and_the_next_is_rejected_with_cap_reached() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let r = patch_campaign(&server, &w, json!({"caps": {"daily": {"conversions": 3}}})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    for _ in 0..3 {
        let answer = converted(&server, &w).await;
        assert_eq!(answer["status"], "recorded", "{answer}");
        assert!(answer.get("review").is_none(), "{answer}");
    }
    let token = w.click_token(&server).await;
    let over = w.convert(&server, &token).await;
    assert_eq!(over.status, 200, "{}", over.text);
    assert_eq!(
        (over.json()["status"].clone(), over.json()["reason"].clone()),
        (json!("ignored"), json!("cap_reached"))
    );
    assert!(over.json()["conversionId"].is_string(), "{}", over.text);
    let again = w.convert(&server, &token).await;
    assert_eq!(again.json()["status"], "duplicate", "a rejected conversion is still on record: {}", again.text);

    let c = campaign(&server, &w).await;
    let daily = usage(&c, "campaign", "daily");
    assert_eq!((daily["conversions"]["limit"].clone(), daily["conversions"]["used"].clone()), (json!(3), json!(3)));
    assert_eq!(c["stats"]["conversions"]["byStatus"]["approved"], 3, "{c}");
    assert_eq!(c["stats"]["conversions"]["rejectedByReason"]["cap_reached"], 1, "{c}");
    assert_eq!(c["stats"]["payoutCents"], 1500, "the capped one pays nothing: {c}");
    let metrics = server.metrics().await;
    assert_metric(&metrics, "clickledger_caps_reached_total", &[r#"kind="conversions""#, r#"period="daily""#], 1);
    let rejected = [r#"status="rejected""#, r#"reason="cap_reached""#];
    assert_metric(&metrics, "clickledger_conversion_statuses_total", &rejected, 1);
    let approved = [r#"status="approved""#, r#"reason="none""#];
    assert_metric(&metrics, "clickledger_conversion_statuses_total", &approved, 3);
}

/// `name{labels…} value` is among the scraped lines.
fn assert_metric(metrics: &str, name: &str, labels: &[&str], value: u64) {
    let found = metrics.lines().any(|l| {
        l.starts_with(&format!("{name}{{"))
            && labels.iter().all(|want| l.contains(want))
            && l.rsplit(' ').next() == Some(&value.to_string())
    });
    assert!(found, "{name} {labels:?} {value} in\n{metrics}");
}

#[tokio::test]
async fn a_daily_cap_rolls_over_at_midnight_in_the_campaigns_timezone() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    let caps = json!({"caps": {"daily": {"conversions": 1}, "timezone": "America/New_York"}});
    assert_eq!(patch_campaign(&server, &w, caps).await.status, 200);
    let now = server.advance_clock(1).await as i64;
    let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
    use chrono::TimeZone;
    let local = tz.timestamp_opt(now, 0).unwrap();
    let next_midnight = tz
        .from_local_datetime(&(local.date_naive() + chrono::Duration::days(1)).and_hms_opt(0, 0, 0).unwrap())
        .earliest()
        .unwrap()
        .timestamp();

    assert_eq!(converted(&server, &w).await["status"], "recorded");
    // Still the same local day a minute before its midnight (a margin: the
    // test clock runs on with the wall clock, and a CQL round trip is slow).
    server.advance_clock((next_midnight - now - 60) as u64).await;
    assert_eq!(converted(&server, &w).await["reason"], "cap_reached");
    server.advance_clock(120).await;
    assert_eq!(converted(&server, &w).await["status"], "recorded", "a new local day, a new cap");
}

#[tokio::test]
async fn a_payout_cap_rejects_a_rev_share_payout_that_would_cross_it_whole_and_a_refund_gives_it_back() {
    let server = TestServer::start().await;
    let w = World::rev_share(&server, json!(12.5)).await;
    let r = patch_campaign(&server, &w, json!({"caps": {"total": {"payoutCents": 100}}})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // 12.5 % of 333 cents is 41.625: each pays 42 (rounded), two 84, a third would make 126.
    for order in ["o-1", "o-2"] {
        let r = w.postback(&server, order, Some(333)).await;
        assert_eq!((r.status.as_u16(), r.json()["lead"]["status"].clone()), (201, json!("verified")), "{}", r.text);
    }
    let r = w.postback(&server, "o-3", Some(333)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let lead = &r.json()["lead"];
    assert_eq!((lead["status"].clone(), lead["rejectionReason"].clone()), (json!("rejected"), json!("cap_reached")));
    let total = usage(&campaign(&server, &w).await, "campaign", "total").clone();
    assert_eq!(total["payoutCents"]["used"], 84, "never paid in part: {total}");

    let refund = json!({"swarm_ref": w.code, "externalId": "o-1", "eventType": "REFUND"});
    assert_eq!(server.post("/api/v1/postback", Some(&w.key), refund).await.status, 200);
    let total = usage(&campaign(&server, &w).await, "campaign", "total").clone();
    assert_eq!(total["payoutCents"]["used"], 42, "the refund gave its 42 back: {total}");
    let r = w.postback(&server, "o-4", Some(333)).await;
    assert_eq!(r.json()["lead"]["status"], "verified", "{}", r.text);
}

#[tokio::test]
async fn an_affiliates_own_cap_holds_that_affiliate_alone() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 200).await;
    let path = format!("/api/v1/campaigns/{}/affiliates/{}/caps", w.campaign_id, w.affiliate_id);
    let r = server.json_request(hyper::Method::PUT, &path, Some(&w.key), json!({"total": {"conversions": 1}})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(converted(&server, &w).await["status"], "recorded");
    assert_eq!(converted(&server, &w).await["reason"], "cap_reached");
    let c = campaign(&server, &w).await;
    let mine = usage(&c, "affiliate", "total");
    assert_eq!((mine["affiliateId"].clone(), mine["conversions"]["used"].clone()), (json!(w.affiliate_id), json!(1)));

    let (_, _, other) = w.another_affiliate(&server).await;
    let r = server.click(&other).await;
    let token = query_param(r.header("location").unwrap(), "irw_id").unwrap();
    assert_eq!(w.convert(&server, &token).await.json()["status"], "recorded", "another affiliate is not capped");
}

#[tokio::test]
async fn a_flagged_conversion_waits_for_review_and_approval_pays_it_while_rejection_is_final() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 700).await;
    let rules = json!({"rules": {"minSecondsToConvert": {"seconds": 3600, "action": "flag"}}});
    assert_eq!(patch_campaign(&server, &w, rules).await.status, 200);
    let held = converted(&server, &w).await;
    assert_eq!(
        (held["review"].clone(), held["flags"].clone()),
        (json!("pending_review"), json!(["too_fast"])),
        "{held}"
    );
    let second = converted(&server, &w).await;
    let metrics = server.metrics().await;
    assert_metric(&metrics, "clickledger_rule_hits_total", &[r#"rule="too_fast""#, r#"action="flag""#], 2);

    let list = format!("/api/v1/conversions?campaignId={}&status=pending_review", w.campaign_id);
    let queue = server.get(&list, Some(&w.key)).await.json();
    assert_eq!(queue["conversions"].as_array().unwrap().len(), 2, "{queue}");

    let id = held["conversionId"].as_str().unwrap();
    let approve = format!("/api/v1/conversions/{id}/approve");
    let r = server.post(&approve, Some(&w.key), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.json()["status"].clone(), r.json()["payout"]["amountCents"].clone()),
        (json!("approved"), json!(700))
    );
    assert_eq!(server.post(&approve, Some(&w.key), json!({})).await.status, 200, "repeating a decision is harmless");
    let reject = format!("/api/v1/conversions/{id}/reject");
    let r = server.post(&reject, Some(&w.key), json!({"reason": "changed my mind"})).await;
    assert_eq!((r.status.as_u16(), r.json()["error"].clone()), (409, json!("already_decided")), "{}", r.text);

    let other = second["conversionId"].as_str().unwrap();
    let r = server.post(&format!("/api/v1/conversions/{other}/reject"), Some(&w.key), json!({})).await;
    assert_eq!(r.status, 400, "a rejection needs a reason: {}", r.text);
    let r = server.post(&format!("/api/v1/conversions/{other}/reject"), Some(&w.key), json!({"reason": "bot"})).await;
    assert_eq!((r.status.as_u16(), r.json()["status"].clone()), (200, json!("rejected")), "{}", r.text);
    assert!(r.json().get("payout").is_none(), "{}", r.text);

    let queue = server.get(&list, Some(&w.key)).await.json();
    assert_eq!(queue["conversions"].as_array().unwrap().len(), 0, "{queue}");
    let stats = w.stats(&server).await;
    assert_eq!(stats["conversions"]["byStatus"], json!({"approved": 1, "pending_review": 0, "rejected": 1}));
}

#[tokio::test]
async fn self_referral_and_disposable_emails_are_caught_by_their_rules() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 300).await;
    let r = server
        .post("/api/v1/admin/affiliates", Some(ADMIN_KEY), json!({"name": "Sneaky", "email": "Me@Example.com"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let sneaky = r.json()["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/campaigns/{}/affiliates", w.campaign_id);
    let code = server.post(&path, Some(&w.key), json!({"affiliateId": sneaky})).await.json()["trackingCode"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(patch_campaign(&server, &w, json!({"rules": {"selfReferral": "reject"}})).await.status, 200);

    let convert_as = |code: String, email: &'static str| {
        let server = &server;
        let w = &w;
        async move {
            let r = server.click(&code).await;
            let token = query_param(r.header("location").unwrap(), "irw_id").unwrap();
            let body = json!({"clickId": token, "email": email});
            server.post("/api/v1/affiliate/conversions", Some(&w.key), body).await.json()
        }
    };
    let own = convert_as(code.clone(), " me@example.COM").await;
    assert_eq!((own["status"].clone(), own["reason"].clone()), (json!("ignored"), json!("self_referral")), "{own}");
    let burner = convert_as(code, "someone@mailinator.com").await;
    assert_eq!(burner["flags"], json!(["disposable_email"]), "{burner}");
    let fine = convert_as(w.code.clone(), "someone@example.org").await;
    assert!(fine.get("review").is_none(), "{fine}");
}

#[tokio::test]
async fn a_bot_clicks_conversion_is_held_for_review_by_default() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 300).await;
    let r =
        server.send(hyper::Method::GET, &format!("/r/{}", w.code), &[("user-agent", "Googlebot/2.1")], vec![]).await;
    let token = query_param(r.header("location").unwrap(), "irw_id").unwrap();
    let answer = w.convert(&server, &token).await.json();
    assert_eq!((answer["review"].clone(), answer["flags"].clone()), (json!("pending_review"), json!(["bot_click"])));
}

#[tokio::test]
async fn bad_caps_and_rules_are_refused_by_name_and_change_nothing() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 300).await;
    let before = campaign(&server, &w).await;
    let cases = [
        (json!({"caps": {"daily": {"conversions": -1}}}), "caps.daily.conversions"),
        (json!({"caps": {"daily": {"payoutCents": 1.5}}}), "caps.daily.payoutCents"),
        (json!({"caps": {"total": {"payoutCents": 10_000_000_000_000_000_000u64}}}), "caps.total.payoutCents"),
        (json!({"caps": {"timezone": "Europe/Atlantis"}}), "caps.timezone"),
        (json!({"rules": {"botClick": "ban"}}), "rules.botClick"),
        (json!({"rules": {"maxSecondsToConvert": {"seconds": 5}}}), "rules.maxSecondsToConvert.action"),
        (json!({"fallbackUrl": "ftp://example.com/"}), "fallbackUrl"),
        (json!({"caps": {"daily": {"conversions": 5}}, "rules": {"nope": "off"}}), "rules.nope"),
    ];
    for (body, field) in cases {
        let r = patch_campaign(&server, &w, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.json()["field"], field, "{body}: {}", r.text);
    }
    let after = campaign(&server, &w).await;
    assert_eq!((after["caps"].clone(), after["rules"].clone()), (before["caps"].clone(), before["rules"].clone()));
    let r = server
        .post(
            "/api/v1/campaigns",
            Some(&w.key),
            json!({"name": "x", "landingUrl": "https://a.example/", "compensationModel": "FIXED", "payoutCents": 1,
                   "caps": {"daily": {"clicks": "many"}}}),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.json()["field"].clone()), (400, json!("caps.daily.clicks")), "{}", r.text);
}

async fn click_as(server: &TestServer, path: &str, ua: &str) -> Reply {
    server.send(hyper::Method::GET, path, &[("user-agent", ua)], vec![]).await
}

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0";

#[tokio::test]
async fn a_repeat_click_inside_the_unique_window_is_logged_as_a_duplicate_and_not_counted() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 300).await;
    let link = format!("/r/{}", w.code);
    for ua in [BROWSER, BROWSER, BROWSER, "Mozilla/5.0 (Macintosh) Safari/605.1"] {
        assert_eq!(click_as(&server, &link, ua).await.status, 302, "a repeat still reaches the landing page");
    }
    let stats = server
        .until("the clicks counted", || async {
            let s = w.stats(&server).await;
            (s["duplicateClicks"] == 2 && s["clicks"] == 2).then_some(s)
        })
        .await;
    assert_eq!((stats["clicks"].clone(), stats["uniqueClicks"].clone()), (json!(2), json!(2)), "{stats}");

    assert_eq!(patch_campaign(&server, &w, json!({"rules": {"uniqueClickWindowSeconds": 0}})).await.status, 200);
    assert_eq!(click_as(&server, &link, BROWSER).await.status, 302);
    server
        .until("a repeat counted with the window off", || async {
            (w.stats(&server).await["clicks"] == 3).then_some(())
        })
        .await;
}

#[tokio::test]
async fn a_click_over_the_cap_goes_to_the_fallback_or_the_404_page_and_is_not_counted() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 300).await;
    let settings = json!({
        "rules": {"uniqueClickWindowSeconds": 0},
        "caps": {"daily": {"clicks": 2}},
        "fallbackUrl": "https://elsewhere.example/offers",
    });
    assert_eq!(patch_campaign(&server, &w, settings).await.status, 200);
    let link = format!("/r/{}", w.code);
    for _ in 0..2 {
        let r = click_as(&server, &link, BROWSER).await;
        assert!(r.header("location").unwrap().starts_with("https://shop.example.com/"), "{:?}", r.header("location"));
    }
    let r = click_as(&server, &link, BROWSER).await;
    assert_eq!((r.status.as_u16(), r.header("location")), (302, Some("https://elsewhere.example/offers")));
    assert_eq!(patch_campaign(&server, &w, json!({"fallbackUrl": null})).await.status, 200);
    assert_eq!(click_as(&server, &link, BROWSER).await.status, 404, "no fallback: the 404 page");
    let stats = server
        .until("the capped clicks logged", || async {
            let s = w.stats(&server).await;
            (s["cappedClicks"] == 2).then_some(s)
        })
        .await;
    assert_eq!(stats["clicks"], 2, "{stats}");
    let c = campaign(&server, &w).await;
    let daily = usage(&c, "campaign", "daily");
    assert_eq!((daily["clicks"]["limit"].clone(), daily["clicks"]["used"].clone()), (json!(2), json!(2)), "{c}");
}

#[tokio::test]
async fn a_conversion_of_a_click_with_a_paid_search_click_id_gets_paid_traffic() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 300).await;
    assert_eq!(patch_campaign(&server, &w, json!({"rules": {"paidTrafficClickIds": "reject"}})).await.status, 200);
    let r = click_as(&server, &format!("/r/{}?gclid=EAIaIQ&sub1=x", w.code), BROWSER).await;
    let token = query_param(r.header("location").unwrap(), "irw_id").unwrap();
    let answer = w.convert(&server, &token).await.json();
    assert_eq!(
        (answer["status"].clone(), answer["reason"].clone()),
        (json!("ignored"), json!("paid_traffic")),
        "{answer}"
    );
    let r = click_as(&server, &format!("/r/{}?utm_source=blog", w.code), "Mozilla/5.0 Firefox/120.0").await;
    let token = query_param(r.header("location").unwrap(), "irw_id").unwrap();
    assert_eq!(w.convert(&server, &token).await.json()["status"], "recorded");
}

#[tokio::test]
async fn a_held_postback_waits_in_the_same_review_queue_and_approval_pays_it() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 400).await;
    let body = json!({"swarm_ref": w.code, "externalId": "o-9", "eventType": "PURCHASE",
                      "metadata": {"email": "buyer@mailinator.com"}});
    let r = server.post("/api/v1/postback", Some(&w.key), body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let lead = r.json()["lead"].clone();
    assert_eq!((lead["status"].clone(), lead["flags"].clone()), (json!("pending_review"), json!(["disposable_email"])));
    let converted = converted(&server, &w).await;
    assert_eq!(converted["status"], "recorded");

    let list = format!("/api/v1/conversions?campaignId={}&status=pending_review", w.campaign_id);
    let queue = server.get(&list, Some(&w.key)).await.json();
    let items = queue["conversions"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{queue}");
    assert_eq!((items[0]["kind"].clone(), items[0]["id"].clone()), (json!("lead"), lead["id"].clone()));
    let all =
        server.get(&format!("/api/v1/conversions?campaignId={}&limit=1", w.campaign_id), Some(&w.key)).await.json();
    assert_eq!(all["conversions"][0]["kind"], "conversion", "newest first: {all}");
    let next = all["nextBefore"].as_str().unwrap();
    let rest = format!("/api/v1/conversions?campaignId={}&before={next}", w.campaign_id);
    assert_eq!(server.get(&rest, Some(&w.key)).await.json()["conversions"][0]["kind"], "lead");

    let approve = format!("/api/v1/conversions/{}/approve", lead["id"].as_str().unwrap());
    let r = server.post(&approve, Some(&w.key), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.json()["status"].clone(), r.json()["payout"]["amountCents"].clone()),
        (json!("approved"), json!(400))
    );
    let stats = w.stats(&server).await;
    assert_eq!(stats["conversions"]["byStatus"], json!({"approved": 2, "pending_review": 0}), "{stats}");
    let r = server.post(&format!("/api/v1/conversions/{}/approve", "conv_nope"), Some(&w.key), json!({})).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = server.get(&format!("/api/v1/conversions?campaignId={}&status=held", w.campaign_id), Some(&w.key)).await;
    assert_eq!((r.status.as_u16(), r.json()["field"].clone()), (400, json!("status")));
}

#[tokio::test]
async fn a_reversed_conversion_shows_reversed_and_is_counted_once() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 250).await;
    let id = converted(&server, &w).await["conversionId"].as_str().unwrap().to_string();
    for _ in 0..2 {
        let r =
            server.post(&format!("/api/v1/conversions/{id}/reverse"), Some(&w.key), json!({"reason": "refund"})).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let list = server.get(&format!("/api/v1/conversions?campaignId={}", w.campaign_id), Some(&w.key)).await.json();
    assert_eq!(list["conversions"][0]["status"], "reversed", "{list}");
    let stats = w.stats(&server).await;
    assert_eq!(stats["conversions"]["byStatus"], json!({"approved": 1, "reversed": 1}), "{stats}");
}

#[tokio::test]
async fn a_batch_item_over_the_cap_is_recorded_rejected_and_says_why() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 100).await;
    assert_eq!(patch_campaign(&server, &w, json!({"caps": {"total": {"conversions": 1}}})).await.status, 200);
    let item = |n: u32| json!({"swarm_ref": w.code, "externalId": format!("b-{n}"), "eventType": "PURCHASE"});
    let r = server.post("/api/v1/postback/batch", Some(&w.key), json!([item(1), item(2)])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let results = r.json()["results"].as_array().unwrap().clone();
    assert!(results.iter().all(|i| i["status"] == "recorded"), "{results:?}");
    let capped: Vec<_> = results.iter().filter(|i| i["reason"] == "cap_reached").collect();
    assert_eq!(capped.len(), 1, "the items may run in any order; one takes the cap: {results:?}");
}

#[tokio::test]
async fn a_held_postback_rejected_through_the_leads_endpoint_gives_its_capacity_back() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 100).await;
    assert_eq!(patch_campaign(&server, &w, json!({"caps": {"total": {"conversions": 1}}})).await.status, 200);
    let body = json!({"swarm_ref": w.code, "externalId": "held-1", "eventType": "PURCHASE",
                      "metadata": {"email": "buyer@mailinator.com"}});
    let lead = server.post("/api/v1/postback", Some(&w.key), body).await.json()["lead"].clone();
    assert_eq!(lead["status"], "pending_review", "{lead}");
    let reject = format!("/api/v1/leads/{}/reject", lead["id"].as_str().unwrap());
    assert_eq!(server.post(&reject, Some(&w.key), json!({"reason": "burner"})).await.status, 200);
    let total = usage(&campaign(&server, &w).await, "campaign", "total").clone();
    assert_eq!(total["conversions"]["used"], 0, "{total}");
    assert_eq!(w.postback(&server, "next", None).await.json()["lead"]["status"], "verified");
}
