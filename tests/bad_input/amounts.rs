//! Money from outside is bounded (10^12 cents per amount, 10^15 cents of
//! deposits per campaign): past a bound the answer is a 400 naming the
//! field, and no sequence of accepted requests can wrap a total.

use serde_json::json;

use super::common::*;
use super::support::*;

const MAX_CENTS: u64 = 1_000_000_000_000;

#[tokio::test]
async fn revenue_past_the_bound_is_a_400_and_the_wallet_cannot_wrap() {
    let server = TestServer::start().await;
    let w = World::rev_share(&server, json!(100)).await;
    for revenue in [i64::MAX as u64, MAX_CENTS + 1] {
        let r = w.postback(&server, &format!("huge-{revenue}"), Some(revenue)).await;
        expect_validation(&r, "revenueCents");
    }
    assert_eq!(w.wallet(&server).await["pendingCents"], 0, "a refused postback pays nothing");
    for id in ["max-1", "max-2", "max-3"] {
        let r = w.postback(&server, id, Some(MAX_CENTS)).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let expected = json!(3 * MAX_CENTS);
    w.wallet_until(&server, "three payouts pending", |wallet| wallet["pendingCents"] == expected).await;
    let stats = server
        .until("stats", || async { Some(w.stats(&server).await).filter(|s| s["postbacks"]["recorded"] == 3) })
        .await;
    assert_eq!(stats["payoutCents"], 3 * MAX_CENTS);
}

#[tokio::test]
async fn a_fixed_payout_past_the_bound_is_a_400_on_create_and_on_patch() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    for cents in [json!(9223372036854775808u64), json!(MAX_CENTS + 1), json!(0)] {
        let r = create_campaign(&server, &key, fixed_campaign(), |c| {
            c.insert("payoutCents".into(), cents.clone());
        })
        .await;
        expect_validation(&r, "payoutCents");
    }
    let r = create_campaign(&server, &key, fixed_campaign(), |c| {
        c.insert("payoutCents".into(), json!(MAX_CENTS));
    })
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let path = format!("/api/v1/campaigns/{}", r.json()["id"].as_str().unwrap());
    let r = server.patch(&path, Some(&key), json!({"payoutCents": 9223372036854775808u64})).await;
    expect_validation(&r, "payoutCents");
    assert_eq!(
        server.get(&path, Some(&key)).await.json()["payoutCents"],
        MAX_CENTS,
        "the refused PATCH changed nothing"
    );
}

#[tokio::test]
async fn a_referral_confirmation_past_the_bound_is_a_400() {
    let server = TestServer::start().await;
    let w = World::rev_share(&server, json!(20)).await;
    let referral = w.referral(&server, json!({})).await;
    let r = w.confirm(&server, referral["id"].as_str().unwrap(), json!({"revenueCents": MAX_CENTS + 1})).await;
    expect_validation(&r, "revenueCents");
    let r = w.confirm(&server, referral["id"].as_str().unwrap(), json!({"revenueCents": MAX_CENTS})).await;
    assert_eq!(r.status, 201, "the referral is still there to confirm: {}", r.text);
}

#[tokio::test]
async fn deposits_stop_at_the_campaign_bound_with_a_400_naming_amount_cents() {
    let server = TestServer::start_money().await;
    let w = World::fixed(&server, 500).await;
    expect_validation(&w.fund_with_key(&server, MAX_CENTS + 1, None).await, "amountCents");
    // 1000 deposits of the largest amount fill the campaign to 10^15 cents.
    for chunk in (0..1000).collect::<Vec<_>>().chunks(50) {
        let deposits = chunk.iter().map(|i| {
            let key = format!("deposit-{i}");
            let w = &w;
            let server = &server;
            async move { w.fund_with_key(server, MAX_CENTS, Some(&key)).await.status }
        });
        let statuses = futures::future::join_all(deposits).await;
        assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    }
    let r = w.fund_with_key(&server, 1, Some("one-more")).await;
    let v = expect_validation(&r, "amountCents");
    assert!(v["message"].as_str().unwrap().contains("1000000000000000"), "{}", r.text);
    let balance = w.balance(&server).await;
    assert_eq!(balance["fundedCents"], 1_000 * MAX_CENTS);
    assert_eq!(w.fund_with_key(&server, MAX_CENTS, Some("deposit-7")).await.status, 200, "a replay is still a replay");
}
