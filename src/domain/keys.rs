//! API keys. Secret keys are shown once and stored only as a SHA-256 hash: they
//! carry 190 random bits, so a fast hash is enough and lookups stay O(1).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ids::{random_base62, AdvertiserId, AffiliateId, CampaignId};

pub type KeyHash = [u8; 32];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Create and manage the advertiser's own campaigns.
    Campaigns,
    /// Fire postbacks for the advertiser's own campaigns.
    Postbacks,
    /// Record affiliate conversions (the seed's `affiliate:write`).
    #[serde(rename = "affiliate:write")]
    AffiliateWrite,
}

impl Scope {
    /// The name as the API documents it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Campaigns => "campaigns",
            Scope::Postbacks => "postbacks",
            Scope::AffiliateWrite => "affiliate:write",
        }
    }
}

/// Who a secret key belongs to and what it may do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Principal {
    Advertiser {
        id: AdvertiserId,
        scopes: Vec<Scope>,
    },
    Affiliate {
        id: AffiliateId,
    },
    /// A public key for the browser snippet: the organisation's
    /// (`campaign: None`, any of its campaigns) or one campaign's, which only
    /// guards that the visitor's click belongs to that campaign.
    Publishable {
        advertiser: AdvertiserId,
        campaign: Option<CampaignId>,
    },
}

impl Principal {
    pub fn advertiser(id: AdvertiserId) -> Self {
        Principal::Advertiser { id, scopes: vec![Scope::Campaigns, Scope::Postbacks, Scope::AffiliateWrite] }
    }

    pub fn has(&self, scope: Scope) -> bool {
        matches!(self, Principal::Advertiser { scopes, .. } if scopes.contains(&scope))
    }
}

pub fn new_secret_key() -> String {
    format!("sk_live_{}", random_base62(32))
}

pub fn new_org_publishable_key() -> String {
    format!("pk_aff_org_{}", random_base62(24))
}

pub fn new_campaign_publishable_key() -> String {
    format!("pk_aff_{}", random_base62(24))
}

pub fn hash_key(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advertiser_key_carries_affiliate_write_and_an_affiliate_key_does_not() {
        assert!(Principal::advertiser(AdvertiserId(1)).has(Scope::AffiliateWrite));
        assert!(!Principal::Affiliate { id: AffiliateId(1) }.has(Scope::AffiliateWrite));
    }

    #[test]
    fn keys_have_their_documented_prefixes() {
        assert!(new_secret_key().starts_with("sk_live_"));
        assert!(new_org_publishable_key().starts_with("pk_aff_org_"));
        assert!(new_campaign_publishable_key().starts_with("pk_aff_"));
        assert_ne!(hash_key("a"), hash_key("b"));
    }
}
