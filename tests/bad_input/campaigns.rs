//! Campaign settings on create and PATCH.

use super::common::*;
use super::support::*;
use serde_json::{json, Value};

#[tokio::test]
async fn a_campaign_without_a_landing_url_is_a_400_naming_it() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    let r = create_campaign(&server, &key, fixed_campaign(), |c| {
        c.remove("landingUrl");
    })
    .await;
    expect_400_naming(&r, "landingUrl");
    let r = create_campaign(&server, &key, fixed_campaign(), |c| {
        c.insert("landingUrl".into(), json!(""));
    })
    .await;
    expect_validation(&r, "landingUrl");
}

#[tokio::test]
async fn a_campaign_with_a_non_http_landing_url_is_a_400() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    for url in [
        "ftp://shop.example.com/",
        "javascript:alert(1)",
        "shop.example.com/landing",
        "//shop.example.com/",
        "https://",
        "https://shop.example.com/a b",
        "https://shop.example.com/\r\nSet-Cookie: x=1",
    ] {
        let r = create_campaign(&server, &key, fixed_campaign(), |c| {
            c.insert("landingUrl".into(), json!(url));
        })
        .await;
        expect_validation(&r, "landingUrl");
    }
}

#[tokio::test]
async fn a_fixed_campaign_without_payout_cents_is_a_400() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    let r = create_campaign(&server, &key, fixed_campaign(), |c| {
        c.remove("payoutCents");
    })
    .await;
    expect_validation(&r, "payoutCents");
    let r = create_campaign(&server, &key, fixed_campaign(), |c| {
        c.insert("payoutCents".into(), json!(0));
    })
    .await;
    expect_validation(&r, "payoutCents");
    let r = create_campaign(&server, &key, fixed_campaign(), |c| {
        c.insert("payoutCents".into(), json!(-5));
    })
    .await;
    expect_400_naming(&r, "payoutCents");
}

#[tokio::test]
async fn a_rev_share_campaign_without_a_payout_percentage_is_a_400() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    let r = create_campaign(&server, &key, rev_share_campaign(), |c| {
        c.remove("payoutPercentage");
    })
    .await;
    expect_validation(&r, "payoutPercentage");
}

#[tokio::test]
async fn a_payout_percentage_of_0_or_101_or_with_three_decimals_is_a_400() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    for bad in ["0", "101", "12.345", "-5", "100.01"] {
        let mut body = rev_share_campaign();
        body["payoutPercentage"] = serde_json::from_str(bad).unwrap();
        let r = server.post("/api/v1/campaigns", Some(&key), body).await;
        expect_validation(&r, "payoutPercentage");
    }
    // The bounds themselves are fine.
    for good in ["100", "0.01"] {
        let mut body = rev_share_campaign();
        body["payoutPercentage"] = serde_json::from_str(good).unwrap();
        let r = server.post("/api/v1/campaigns", Some(&key), body).await;
        assert_eq!(r.status, 201, "{good}: {}", r.text);
    }
}

#[tokio::test]
async fn mixing_the_payout_settings_of_the_two_models_is_a_400() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    let r = create_campaign(&server, &key, fixed_campaign(), |c| {
        c.insert("payoutPercentage".into(), json!(20));
    })
    .await;
    expect_validation(&r, "payoutPercentage");
    let r = create_campaign(&server, &key, rev_share_campaign(), |c| {
        c.insert("payoutCents".into(), json!(500));
    })
    .await;
    expect_validation(&r, "payoutCents");
}

#[tokio::test]
async fn an_unknown_compensation_model_is_a_400() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    for model in [json!("CPA"), json!("fixed"), json!(""), json!(1)] {
        let r = create_campaign(&server, &key, fixed_campaign(), |c| {
            c.insert("compensationModel".into(), model.clone());
        })
        .await;
        expect_400_naming(&r, "compensationModel");
    }
    let r = create_campaign(&server, &key, fixed_campaign(), |c| {
        c.remove("compensationModel");
    })
    .await;
    expect_400_naming(&r, "compensationModel");
}

#[tokio::test]
async fn an_unknown_field_in_a_new_campaign_is_a_400_naming_it() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    let r = create_campaign(&server, &key, fixed_campaign(), |c| {
        c.insert("payout_cents".into(), json!(500));
    })
    .await;
    expect_400_naming(&r, "payout_cents");
    let r = create_campaign(&server, &key, fixed_campaign(), |c| {
        c.insert("status".into(), json!("active"));
    })
    .await;
    expect_400_naming(&r, "status");
}

#[tokio::test]
async fn other_campaign_settings_out_of_range_are_400s_naming_them() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    let cases: [(&str, Value); 6] = [
        ("name", json!("")),
        ("attributionWindowDays", json!(0)),
        ("holdDays", json!(100_000)),
        ("promoCode", json!("has space")),
        ("allowedOrigins", json!(["https://shop.example.com/cart"])),
        ("fieldMapping", json!({"plan": ""})),
    ];
    for (field, value) in cases {
        let r = create_campaign(&server, &key, fixed_campaign(), |c| {
            c.insert(field.into(), value.clone());
        })
        .await;
        expect_validation(&r, field);
    }
}

#[tokio::test]
async fn activating_before_a_test_postback_is_a_409_tracking_not_confirmed() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    let created = server.post("/api/v1/campaigns", Some(&key), fixed_campaign()).await.json();
    let id = created["id"].as_str().unwrap();
    let test_code = created["testTrackingCode"].as_str().unwrap();
    let r = server.post(&format!("/api/v1/campaigns/{id}/activate"), Some(&key), json!({})).await;
    let v = expect_error(&r, 409, "tracking_not_confirmed");
    assert!(
        v["message"].as_str().unwrap().contains(test_code),
        "the message should say which code to fire: {}",
        r.text
    );
    let shown = server.get(&format!("/api/v1/campaigns/{id}"), Some(&key)).await.json();
    assert_eq!(shown["status"], "draft", "a refused activation changes nothing");
}

#[tokio::test]
async fn a_rejected_campaign_patch_leaves_the_campaign_unchanged() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let path = format!("/api/v1/campaigns/{}", w.campaign_id);
    let before = get_campaign(&server, &w).await;
    let patches = [
        // The valid landing URL comes first: it must not be half-applied.
        (json!({"landingUrl": "https://new.example.com/", "payoutPercentage": 10}), "payoutPercentage"),
        (json!({"promoCode": "NEW10", "landingUrl": "ftp://new.example.com/"}), "landingUrl"),
        (json!({"landingUrl": "https://new.example.com/", "promoCode": 5}), "promoCode"),
        (json!({"payoutCents": 0}), "payoutCents"),
        (json!({"landingUrl": "https://new.example.com/", "compensationModel": "REV_SHARE"}), "compensationModel"),
        (json!({"landingUrl": "https://new.example.com/", "status": "active"}), "status"),
    ];
    for (patch, field) in patches {
        let r = server.patch(&path, Some(&w.key), patch).await;
        expect_400_naming(&r, field);
    }
    assert_eq!(get_campaign(&server, &w).await, before, "a rejected PATCH must not change the campaign");
    let r = server.click(&w.code).await;
    assert!(
        r.header("location").unwrap().starts_with("https://shop.example.com/landing?utm=x&"),
        "{:?}",
        r.header("location")
    );
}

#[tokio::test]
async fn a_malformed_campaign_id_is_a_404_json() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    for id in ["garbage", "cmp_zz", "cmp_0000000000000000", "adv_0000000000000001"] {
        let r = server.get(&format!("/api/v1/campaigns/{id}"), Some(&key)).await;
        expect_error(&r, 404, "not_found");
        let r = server.patch(&format!("/api/v1/campaigns/{id}"), Some(&key), json!({"promoCode": "X"})).await;
        expect_error(&r, 404, "not_found");
        let r = server.post(&format!("/api/v1/campaigns/{id}/activate"), Some(&key), json!({})).await;
        expect_error(&r, 404, "not_found");
    }
}

#[tokio::test]
async fn approving_an_unknown_or_malformed_affiliate_is_a_4xx() {
    let server = TestServer::start().await;
    let w = World::fixed(&server, 500).await;
    let path = format!("/api/v1/campaigns/{}/affiliates", w.campaign_id);
    let r = server.post(&path, Some(&w.key), json!({"affiliateId": "aff_00000000000000ff"})).await;
    expect_error(&r, 404, "not_found");
    let r = server.post(&path, Some(&w.key), json!({"affiliateId": "nobody"})).await;
    expect_400_naming(&r, "affiliateId");
    let r = server.post(&path, Some(&w.key), json!({})).await;
    expect_400_naming(&r, "affiliateId");
}

#[tokio::test]
async fn landing_urls_are_parsed_as_browsers_do_and_stored_in_ascii() {
    let server = TestServer::start().await;
    let (_, key) = new_advertiser(&server, "Acme").await;
    for bad in ["https://shop.example.com:99999/", "https://user:pw@shop.example.com/", "https://"] {
        let r = create_campaign(&server, &key, fixed_campaign(), |c| {
            c.insert("landingUrl".into(), bad.into());
        })
        .await;
        expect_validation(&r, "landingUrl");
    }
    let w = World::with_campaign(
        &server,
        serde_json::json!({"name": "IDN", "landingUrl": "https://Bücher.example/größe", "compensationModel": "FIXED", "payoutCents": 5}),
    )
    .await;
    assert_eq!(w.campaign["landingUrl"], "https://xn--bcher-kva.example/gr%C3%B6%C3%9Fe");
    let location = server.click(&w.code).await.header("location").unwrap().to_string();
    assert!(location.starts_with("https://xn--bcher-kva.example/gr%C3%B6%C3%9Fe?irw_id="), "{location}");
}
