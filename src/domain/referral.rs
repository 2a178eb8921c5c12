//! Agent referral records and their signed tokens.
//!
//! Token layout before base64url: version 2 (1) | referral id (16) |
//! campaign (8) | affiliate (8) | expires-at unix seconds (8) | HMAC-SHA256
//! (32). Version 2 keeps it apart from click tokens (version 1) signed with
//! the same rotating keys. The token is context an affiliate's agent hands
//! over; the advertiser confirms by id and may verify the token first.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::ids::*;
use super::model::Fields;
use super::token::{TokenError, TokenKeys};
use super::validate::{invalid, Invalid};

const VERSION: u8 = 2;
const BODY_LEN: usize = 1 + 16 + 8 + 8 + 8;
const TAG_LEN: usize = 32;
pub const DEFAULT_EXPIRY_HOURS: u64 = 720;
/// At most a year: a referral is context for one recommendation, not a coupon.
pub const MAX_EXPIRY_HOURS: u64 = 24 * 366;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferralStatus {
    Active,
    Confirmed,
    Expired,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Referral {
    pub id: ReferralId,
    pub campaign_id: CampaignId,
    pub affiliate_id: AffiliateId,
    pub metadata: Fields,
    pub created_at: u64,
    pub expires_at: u64,
    pub status: ReferralStatus,
    /// The verified lead its confirmation created.
    pub lead_id: Option<LeadId>,
    pub confirmed_at: Option<u64>,
}

impl Referral {
    /// The status as of `now`: an active referral past its expiry is expired
    /// even before the expiry supervisor has marked it.
    pub fn status_at(&self, now: u64) -> ReferralStatus {
        match self.status {
            ReferralStatus::Active if now >= self.expires_at => ReferralStatus::Expired,
            s => s,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReferralClaims {
    pub id: ReferralId,
    pub campaign: CampaignId,
    pub affiliate: AffiliateId,
    pub expires_at: u64,
}

/// `expiresInHours` → seconds, with the default and the bound.
pub fn expiry_seconds(hours: Option<i64>) -> Result<u64, Invalid> {
    match hours {
        None => Ok(DEFAULT_EXPIRY_HOURS * 3600),
        Some(h) if h >= 1 && (h as u64) <= MAX_EXPIRY_HOURS => Ok(h as u64 * 3600),
        Some(_) => Err(invalid("expiresInHours", format!("must be between 1 and {MAX_EXPIRY_HOURS} hours"))),
    }
}

pub fn sign(keys: &TokenKeys, c: &ReferralClaims) -> String {
    let mut raw = Vec::with_capacity(BODY_LEN + TAG_LEN);
    raw.push(VERSION);
    raw.extend_from_slice(&c.id.0.to_be_bytes());
    raw.extend_from_slice(&c.campaign.0.to_be_bytes());
    raw.extend_from_slice(&c.affiliate.0.to_be_bytes());
    raw.extend_from_slice(&c.expires_at.to_be_bytes());
    let tag = keys.tag(&raw);
    raw.extend_from_slice(&tag);
    URL_SAFE_NO_PAD.encode(raw)
}

pub fn verify(keys: &TokenKeys, token: &str) -> Result<ReferralClaims, TokenError> {
    let raw = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| TokenError::Malformed)?;
    if raw.len() != BODY_LEN + TAG_LEN || raw[0] != VERSION {
        return Err(TokenError::Malformed);
    }
    let (body, tag) = raw.split_at(BODY_LEN);
    if !keys.verifies(body, tag) {
        return Err(TokenError::BadSignature);
    }
    let u64_at = |i: usize| u64::from_be_bytes(body[i..i + 8].try_into().expect("8 bytes"));
    Ok(ReferralClaims {
        id: ReferralId(u128::from_be_bytes(body[1..17].try_into().expect("16 bytes"))),
        campaign: CampaignId(u64_at(17)),
        affiliate: AffiliateId(u64_at(25)),
        expires_at: u64_at(33),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> ReferralClaims {
        ReferralClaims { id: ReferralId(99), campaign: CampaignId(1), affiliate: AffiliateId(2), expires_at: 5_000 }
    }

    #[test]
    fn a_signed_referral_token_verifies_to_its_claims_and_is_url_safe() {
        let keys = TokenKeys::new(vec![b"k".to_vec()]);
        let token = sign(&keys, &claims());
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(verify(&keys, &token), Ok(claims()));
    }

    #[test]
    fn changing_any_signed_field_breaks_the_signature() {
        let keys = TokenKeys::new(vec![b"k".to_vec()]);
        let raw = URL_SAFE_NO_PAD.decode(sign(&keys, &claims())).unwrap();
        for byte in [1, 17, 25, 33, 40] {
            let mut bad = raw.clone();
            bad[byte] ^= 1;
            assert_eq!(verify(&keys, &URL_SAFE_NO_PAD.encode(bad)), Err(TokenError::BadSignature), "byte {byte}");
        }
    }

    #[test]
    fn a_click_token_is_not_a_referral_token() {
        let keys = TokenKeys::new(vec![b"k".to_vec()]);
        let click = crate::domain::token::ClickClaims {
            click: ClickId(1),
            campaign: CampaignId(1),
            affiliate: AffiliateId(2),
            issued_at: 0,
            flagged: false,
            paid: false,
        };
        assert_eq!(verify(&keys, &keys.sign(&click)), Err(TokenError::Malformed));
        assert_eq!(verify(&keys, "%%%"), Err(TokenError::Malformed));
    }

    #[test]
    fn expiry_defaults_to_thirty_days_and_is_bounded() {
        assert_eq!(expiry_seconds(None), Ok(720 * 3600));
        assert_eq!(expiry_seconds(Some(1)), Ok(3600));
        assert!(expiry_seconds(Some(0)).is_err());
        assert!(expiry_seconds(Some(-5)).is_err());
        assert!(expiry_seconds(Some(MAX_EXPIRY_HOURS as i64 + 1)).is_err());
    }

    #[test]
    fn an_active_referral_past_its_expiry_reads_as_expired() {
        let r = Referral {
            id: ReferralId(1),
            campaign_id: CampaignId(1),
            affiliate_id: AffiliateId(1),
            metadata: Fields::new(),
            created_at: 0,
            expires_at: 100,
            status: ReferralStatus::Active,
            lead_id: None,
            confirmed_at: None,
        };
        assert_eq!(r.status_at(99), ReferralStatus::Active);
        assert_eq!(r.status_at(100), ReferralStatus::Expired);
    }
}
