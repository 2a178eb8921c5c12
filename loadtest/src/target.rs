//! The target file: what the load runs against (base URL, advertiser key,
//! campaigns with their tracking codes), and `setup`, which creates one
//! through the API. A hand-written file pointing at an existing deployment
//! works the same way.

use hyper::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::http::{Base, Conn};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub base: String,
    /// The advertiser's secret key: postbacks, conversions and stats.
    pub advertiser_key: String,
    pub campaigns: Vec<TargetCampaign>,
    /// Secret keys of affiliates approved on every campaign (referrals).
    #[serde(default)]
    pub affiliate_keys: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetCampaign {
    pub id: String,
    /// `FIXED` or `REV_SHARE`.
    pub compensation_model: String,
    #[serde(default)]
    pub payout_cents: Option<u64>,
    /// REV_SHARE share in basis points (20 % = 2000).
    #[serde(default)]
    pub payout_bp: Option<u64>,
    /// Approved affiliates' tracking codes.
    pub codes: Vec<String>,
}

impl TargetCampaign {
    /// What a lead with `revenue` pays, as the engine computes it
    /// (half-up rounding of revenue × bp / 10 000).
    pub fn payout_for(&self, revenue: u64) -> u64 {
        match self.compensation_model.as_str() {
            "REV_SHARE" => (revenue * self.payout_bp.unwrap_or(0) + 5_000) / 10_000,
            _ => self.payout_cents.unwrap_or(0),
        }
    }

    /// What a click conversion pays: the fixed payout; REV_SHARE pays on
    /// postbacks with revenue only.
    pub fn conversion_payout(&self) -> u64 {
        match self.compensation_model.as_str() {
            "REV_SHARE" => 0,
            _ => self.payout_cents.unwrap_or(0),
        }
    }
}

pub struct SetupPlan {
    pub base: Base,
    pub admin_key: String,
    pub campaigns: usize,
    pub affiliates: usize,
    /// Deposit this much into each campaign, so payouts are escrowed as
    /// they are made instead of queueing for funds (0: no deposit).
    pub fund_cents: u64,
}

/// Creates an advertiser, `campaigns` campaigns (alternately FIXED 500 cents
/// and REV_SHARE 20 %), activates each with a test postback, and approves
/// `affiliates` affiliates on every campaign.
pub async fn setup(plan: &SetupPlan) -> Result<Target, String> {
    let mut api = Conn::new(plan.base.clone());
    let admin = plan.admin_key.as_str();
    let adv =
        expect(&mut api, Method::POST, "/api/v1/admin/advertisers", admin, json!({"name": "Loadtest advertiser"}), 201)
            .await?;
    let key = str_field(&adv, "apiKey")?;
    let mut affiliates = Vec::new();
    let mut affiliate_keys = Vec::new();
    for i in 0..plan.affiliates {
        let aff = expect(
            &mut api,
            Method::POST,
            "/api/v1/admin/affiliates",
            admin,
            json!({"name": format!("Loadtest affiliate {i}")}),
            201,
        )
        .await?;
        affiliates.push(str_field(&aff, "id")?);
        affiliate_keys.push(str_field(&aff, "apiKey")?);
    }
    let mut campaigns = Vec::new();
    for i in 0..plan.campaigns {
        let fixed = i % 2 == 0;
        let mut body =
            json!({"name": format!("Loadtest campaign {i}"), "landingUrl": "https://shop.example.com/landing"});
        if fixed {
            body["compensationModel"] = "FIXED".into();
            body["payoutCents"] = 500.into();
        } else {
            body["compensationModel"] = "REV_SHARE".into();
            body["payoutPercentage"] = 20.into();
        }
        let created = expect(&mut api, Method::POST, "/api/v1/campaigns", &key, body, 201).await?;
        let id = str_field(&created, "id")?;
        let test_code = str_field(&created, "testTrackingCode")?;
        let probe = json!({"swarm_ref": test_code, "externalId": "loadtest-activation", "eventType": "PURCHASE", "revenueCents": 100});
        expect(&mut api, Method::POST, "/api/v1/postback", &key, probe, 200).await?;
        expect(&mut api, Method::POST, &format!("/api/v1/campaigns/{id}/activate"), &key, json!({}), 200).await?;
        if plan.fund_cents > 0 {
            let fund = json!({"amountCents": plan.fund_cents});
            expect(&mut api, Method::POST, &format!("/api/v1/campaigns/{id}/fund"), &key, fund, 201).await?;
        }
        let mut codes = Vec::new();
        for aff in &affiliates {
            let path = format!("/api/v1/campaigns/{id}/affiliates");
            let approval = api.api(Method::POST, &path, &key, Some(&json!({"affiliateId": aff}))).await?;
            if !approval.status.is_success() {
                return Err(format!("POST {path}: {} {}", approval.status, String::from_utf8_lossy(&approval.body)));
            }
            codes.push(str_field(&approval.json(), "trackingCode")?);
        }
        campaigns.push(TargetCampaign {
            id,
            compensation_model: if fixed { "FIXED" } else { "REV_SHARE" }.into(),
            payout_cents: fixed.then_some(500),
            payout_bp: (!fixed).then_some(2000),
            codes,
        });
    }
    Ok(Target { base: plan.base.url.clone(), advertiser_key: key, campaigns, affiliate_keys })
}

async fn expect(
    api: &mut Conn,
    method: Method,
    path: &str,
    key: &str,
    body: Value,
    status: u16,
) -> Result<Value, String> {
    let reply = api.api(method.clone(), path, key, Some(&body)).await.map_err(|e| format!("{method} {path}: {e}"))?;
    if reply.status.as_u16() != status {
        return Err(format!(
            "{method} {path}: expected {status}, got {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        ));
    }
    Ok(reply.json())
}

fn str_field(v: &Value, name: &str) -> Result<String, String> {
    v[name].as_str().map(str::to_string).ok_or_else(|| format!("answer without {name}: {v}"))
}
