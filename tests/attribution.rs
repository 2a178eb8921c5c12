//! Clicks, conversions and postbacks end to end, with the seed documents'
//! requests sent as written.

mod common;

use clickledger::domain::ids::{AffiliateId, CampaignId, ClickId};
use clickledger::domain::token::{ClickClaims, TokenKeys};
use common::*;
use hyper::Method;
use serde_json::json;

#[tokio::test]
async fn a_click_redirects_to_the_landing_page_with_a_token_and_the_tracking_code() {
    let server = TestServer::start().await;
    let world = World::fixed(&server, 500).await;
    let r = server.click(&world.code).await;
    assert_eq!(r.status, 302);
    let location = r.header("location").unwrap();
    assert!(location.starts_with("https://shop.example.com/landing?utm=x&irw_id="), "{location}");
    assert!(location.ends_with(&format!("&swarm_ref={}#hero", world.code)), "{location}");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let token = query_param(location, "irw_id").unwrap();
    let claims = server_tokens().verify(&token).expect("a token the server signed");
    assert_eq!(claims.campaign.to_string(), world.campaign_id);
    assert_eq!(claims.affiliate.to_string(), world.affiliate_id);
}

#[tokio::test]
async fn a_campaign_with_a_promo_code_adds_it_to_the_redirect() {
    let server = TestServer::start().await;
    let world = World::with_campaign(
        &server,
        json!({
            "name": "Promo", "landingUrl": "https://shop.example.com/", "compensationModel": "FIXED",
            "payoutCents": 100, "promoCode": "SAVE10&X",
        }),
    )
    .await;
    let location = server.click(&world.code).await.header("location").unwrap().to_string();
    assert_eq!(query_param(&location, "promo").as_deref(), Some("SAVE10%26X"));
}

#[tokio::test]
async fn clicks_are_counted_once_per_client_but_bots_and_head_requests_are_only_flagged() {
    let server = TestServer::start().await;
    let world = World::fixed(&server, 500).await;
    server.click(&world.code).await;
    server.click(&world.code).await;
    let bot = server.send(Method::GET, &format!("/r/{}", world.code), &[("user-agent", "Googlebot/2.1")], vec![]).await;
    assert_eq!(bot.status, 302, "bots still get the redirect");
    let head = server.send(Method::HEAD, &format!("/r/{}", world.code), &[("user-agent", "Mozilla/5.0")], vec![]).await;
    assert_eq!(head.status, 302);
    server
        .until("clicks are flushed", || async {
            let s = world.stats(&server).await;
            // The second click is the same client's repeat inside the
            // unique-click window (an hour by default): logged, not counted.
            (s["clicks"] == 1 && s["duplicateClicks"] == 1 && s["botClicks"] == 2).then_some(())
        })
        .await;
    let metrics = server.metrics().await;
    assert!(metrics.contains("clickledger_clicks_total{kind=\"human\"} 2"), "{metrics}");
    assert!(metrics.contains("clickledger_clicks_total{kind=\"bot\"} 2"), "{metrics}");
}

#[tokio::test]
async fn the_conversions_document_curl_example_records_then_reports_a_duplicate() {
    let server = TestServer::start().await;
    let world = World::fixed(&server, 500).await;
    let cookie = world.click_token(&server).await;
    // The seed's request, verbatim but for real values.
    let body = format!(
        r#"{{
    "clickId": "{cookie}",
    "email": "jane@example.com",
    "properties": {{ "plan": "pro" }}
  }}"#
    );
    let headers = [("x-api-key", world.key.as_str()), ("content-type", "application/json")];
    let first = server.send(Method::POST, "/api/v1/affiliate/conversions", &headers, body.clone().into_bytes()).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.json()["status"], "recorded");
    let id = first.json()["conversionId"].clone();
    assert!(id.as_str().unwrap().starts_with("cnv_"));
    let second = server.send(Method::POST, "/api/v1/affiliate/conversions", &headers, body.into_bytes()).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.json(), json!({"status": "duplicate", "conversionId": id}));
}

#[tokio::test]
async fn conversion_token_problems_are_ignored_with_their_reason() {
    let server = TestServer::start().await;
    let world = World::fixed(&server, 500).await;
    let ignored = |reason: &str| json!({"status": "ignored", "reason": reason});
    let missing = server.post("/api/v1/affiliate/conversions", Some(&world.key), json!({"email": "a@b.co"})).await;
    assert_eq!((missing.status.as_u16(), missing.json()), (200, ignored("missing_token")));
    assert_eq!(world.convert(&server, "garbage").await.json(), ignored("bad_signature"));

    let genuine = world.click_token(&server).await;
    let mut chars: Vec<char> = genuine.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    assert_eq!(world.convert(&server, &tampered).await.json(), ignored("bad_signature"));

    let claims = ClickClaims {
        click: ClickId::random(),
        campaign: world.campaign_id.parse::<CampaignId>().unwrap(),
        affiliate: world.affiliate_id.parse::<AffiliateId>().unwrap(),
        issued_at: clickledger::domain::unix_now(),
        flagged: false,
        paid: false,
    };
    let forged = TokenKeys::new(vec![b"not-the-server-key-0123456789".to_vec()]).sign(&claims);
    assert_eq!(world.convert(&server, &forged).await.json(), ignored("bad_signature"));

    let old = ClickClaims { issued_at: clickledger::domain::unix_now() - 91 * 86_400, ..claims };
    let expired = server_tokens().sign(&old);
    assert_eq!(world.convert(&server, &expired).await.json(), ignored("expired"));
    let in_window = ClickClaims { issued_at: clickledger::domain::unix_now() - 89 * 86_400, ..claims };
    assert_eq!(world.convert(&server, &server_tokens().sign(&in_window)).await.status, 201);

    server
        .until("ignored conversions are counted", || async {
            (world.stats(&server).await["conversions"]["ignored"]["expired"] == 1).then_some(())
        })
        .await;
}

#[tokio::test]
async fn a_conversion_on_a_paused_campaign_is_ignored_as_inactive() {
    let server = TestServer::start().await;
    let world = World::fixed(&server, 500).await;
    let token = world.click_token(&server).await;
    let paused =
        server.post(&format!("/api/v1/campaigns/{}/pause", world.campaign_id), Some(&world.key), json!({})).await;
    assert_eq!(paused.json()["status"], "paused");
    assert_eq!(
        world.convert(&server, &token).await.json(),
        json!({"status": "ignored", "reason": "campaign_inactive"})
    );
}

#[tokio::test]
async fn mapped_properties_become_lead_fields_and_the_rest_is_kept() {
    let server = TestServer::start().await;
    let world = World::with_campaign(
        &server,
        json!({
            "name": "Mapped", "landingUrl": "https://shop.example.com/", "compensationModel": "FIXED",
            "payoutCents": 2500, "fieldMapping": {"orderId": "order_reference"},
        }),
    )
    .await;
    let r = server
        .post(
            "/api/v1/postback",
            Some(&world.key),
            json!({
                "swarm_ref": world.code, "externalId": "o-1", "eventType": "SIGNUP",
                "metadata": {"orderId": "o-1", "coupon": "X"},
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let lead = &r.json()["lead"];
    assert_eq!(lead["fields"], json!({"order_reference": "o-1"}));
    assert_eq!(lead["extra"], json!({"coupon": "X"}));
    assert_eq!(lead["payoutCents"], 2500, "FIXED pays the campaign's payoutCents");
}

#[tokio::test]
async fn the_tracking_document_postback_is_idempotent_per_external_id() {
    let server = TestServer::start().await;
    let world = World::rev_share(&server, json!(20)).await;
    // The seed's body, verbatim but for a real tracking code.
    let body = format!(
        r#"{{
"swarm_ref": "{}",
"externalId": "order_12345",
"eventType": "PURCHASE",
"revenueCents": 9900,
"metadata": {{ "orderId": "order_12345" }}
}}"#,
        world.code
    );
    let auth = format!("Bearer {}", world.key);
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let first = server.send(Method::POST, "/api/v1/postback", &headers, body.clone().into_bytes()).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let lead = first.json()["lead"].clone();
    assert_eq!(lead["payoutCents"], 1980);
    assert_eq!(lead["externalId"], "order_12345");
    assert_eq!(lead["affiliateId"], world.affiliate_id.as_str());
    let again = server.send(Method::POST, "/api/v1/postback", &headers, body.into_bytes()).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["status"], "duplicate");
    assert_eq!(again.json()["lead"], lead, "the same lead, not a new one");
    server
        .until("stats count one lead", || async {
            let s = world.stats(&server).await;
            (s["postbacks"]["recorded"] == 1 && s["postbacks"]["duplicate"] == 1 && s["payoutCents"] == 1980)
                .then_some(())
        })
        .await;
}

#[tokio::test]
async fn the_integration_example_with_a_numeric_order_id_works_unchanged() {
    let server = TestServer::start().await;
    let world = World::rev_share(&server, json!(20)).await;
    // JSON.stringify({swarm_ref, externalId: order.id, eventType, revenueCents: Math.round(total * 100)})
    let body =
        format!(r#"{{"swarm_ref":"{}","externalId":98765,"eventType":"PURCHASE","revenueCents":1499}}"#, world.code);
    let auth = format!("Bearer {}", world.key);
    let r = server
        .send(
            Method::POST,
            "/api/v1/postback",
            &[("authorization", &auth), ("content-type", "application/json")],
            body.into_bytes(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["lead"]["externalId"], "98765");
    assert_eq!(r.json()["lead"]["payoutCents"], 300, "$14.99 at 20% pays $3.00");
}

#[tokio::test]
async fn rev_share_payouts_round_to_the_nearest_cent() {
    let server = TestServer::start().await;
    let twenty = World::rev_share(&server, json!(20)).await;
    let twelve_and_a_half = World::rev_share(&server, json!(12.5)).await;
    let cases = [
        (&twenty, 1499, 300),             // the seed: $14.99 at 20 % → $3.00
        (&twenty, 1, 0),                  // 0.2 ¢ → 0
        (&twenty, 3, 1),                  // 0.6 ¢ → 1
        (&twelve_and_a_half, 4, 1),       // 0.5 ¢ → rounds half up to 1
        (&twelve_and_a_half, 9900, 1238), // 1237.5 ¢ → 1238
        (&twelve_and_a_half, 0, 0),
    ];
    for (i, (world, revenue, expected)) in cases.iter().enumerate() {
        let r = world.postback(&server, &format!("round-{i}"), Some(*revenue)).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.json()["lead"]["payoutCents"], *expected, "revenue {revenue}");
    }
}

#[tokio::test]
async fn metrics_cover_requests_outcomes_dedup_paths_and_the_store() {
    let server = TestServer::start().await;
    let world = World::fixed(&server, 500).await;
    let token = world.click_token(&server).await;
    // The click started the campaign's actor; until its bloom filter is
    // rebuilt a new key takes the `bloom_rebuilding` path instead.
    let rebuilt = "clickledger_bloom_rebuild_duration_seconds_count 1";
    server.until("bloom rebuilt", || async { (server.metrics().await.contains(rebuilt)).then_some(()) }).await;
    world.convert(&server, &token).await;
    world.convert(&server, &token).await;
    world.convert(&server, "junk").await;
    let m = server.metrics().await;
    for needle in [
        "clickledger_http_requests_total{route=\"/r/{code}\",method=\"GET\",status=\"302\"} 1",
        "clickledger_http_request_duration_seconds_bucket{route=\"/api/v1/affiliate/conversions\",le=\"0.005\"}",
        "clickledger_conversions_total{outcome=\"recorded\",reason=\"none\"} 1",
        "clickledger_conversions_total{outcome=\"duplicate\",reason=\"none\"} 1",
        "clickledger_conversions_total{outcome=\"ignored\",reason=\"bad_signature\"} 1",
        "clickledger_dedup_path_total{path=\"bloom_miss\"}",
        "clickledger_dedup_path_total{path=\"window_hit\"} 1",
        "clickledger_store_batch_size_bucket{le=\"1\"}",
        "clickledger_store_flush_duration_seconds_bucket",
        "clickledger_actor_mailbox_depth",
        "clickledger_campaign_actors 1",
    ] {
        assert!(m.contains(needle), "missing {needle} in\n{m}");
    }
    assert!(!m.contains(&world.campaign_id), "ids must never be metric labels");
}

#[tokio::test]
async fn a_rotated_signing_key_keeps_old_tokens_valid_until_it_is_dropped() {
    // Its own keyspace on CQL (its keys differ from the binary's other
    // servers'), and each restart adopts the rotated key on purpose.
    let mut env = own_keyspace().await;
    env.push(("CLICKLEDGER_TOKEN_KEYS".into(), "old-key-0123456789abcdefghij".into()));
    let server = TestServer::start_with_owned(&env).await;
    let world = World::fixed(&server, 500).await;
    let old_token = world.click_token(&server).await;
    let server = server
        .restart_with(&[
            ("CLICKLEDGER_TOKEN_KEYS", "new-key-0123456789abcdefghij,old-key-0123456789abcdefghij"),
            ("CLICKLEDGER_SECRETS_ADOPT", "true"),
        ])
        .await;
    let new_token = world.click_token(&server).await;
    assert_eq!(world.convert(&server, &old_token).await.status, 201, "old tokens verify after rotation");
    let server = server.restart_with(&[("CLICKLEDGER_TOKEN_KEYS", "new-key-0123456789abcdefghij")]).await;
    assert_eq!(world.convert(&server, &new_token).await.status, 201, "the new key signed the new token");
    let fresh = world.click_token(&server).await;
    assert_eq!(world.convert(&server, &fresh).await.status, 201, "fresh clicks keep working");
    let old_again = world.convert(&server, &old_token).await;
    assert_eq!(
        old_again.json(),
        json!({"status": "ignored", "reason": "bad_signature"}),
        "a dropped key verifies nothing"
    );
}

#[tokio::test]
async fn an_advertiser_key_over_its_write_rate_gets_429_and_nothing_is_recorded() {
    let server = TestServer::start_with(&[
        ("CLICKLEDGER_LIMITS_ADVERTISER_WRITES_PER_SEC", "0.1"),
        ("CLICKLEDGER_LIMITS_ADVERTISER_WRITE_BURST", "40"),
    ])
    .await;
    let world = World::fixed(&server, 500).await;
    let mut statuses = Vec::new();
    for i in 0..40 {
        statuses.push(world.postback(&server, &format!("o-{i}"), None).await.status.as_u16());
    }
    assert!(statuses.contains(&429), "the burst runs out within 40 writes: {statuses:?}");
    let recorded = statuses.iter().filter(|s| **s == 201).count() as u64;
    let stats = world.stats(&server).await;
    assert_eq!(stats["postbacks"]["recorded"], recorded, "a limited postback records nothing");
}

/// A conversion of a bot's click (here HeadlessChrome) is recorded and paid
/// like any other for now, and counted apart so it shows: `fromBotClicks`
/// in the stats, reason `bot_click` in the metrics.
#[tokio::test]
async fn a_conversion_of_a_bot_click_is_recorded_and_counted_as_such() {
    let server = TestServer::start().await;
    let world = World::fixed(&server, 500).await;
    let ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0 Safari/537.36";
    let r = server.send(hyper::Method::GET, &format!("/r/{}", world.code), &[("user-agent", ua)], vec![]).await;
    assert_eq!(r.status, 302);
    let bot_token = query_param(r.header("location").unwrap(), "irw_id").unwrap();
    assert_eq!(world.convert(&server, &bot_token).await.status, 201);
    let human_token = world.click_token(&server).await;
    assert_eq!(world.convert(&server, &human_token).await.status, 201);
    let stats = world.stats(&server).await;
    assert_eq!(stats["conversions"]["recorded"], 2);
    assert_eq!(stats["conversions"]["fromBotClicks"], 1, "{stats}");
    let m = server.metrics().await;
    assert!(m.contains("clickledger_conversions_total{outcome=\"recorded\",reason=\"bot_click\"} 1"), "{m}");
}
