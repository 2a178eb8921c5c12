//! API keys. Secret keys are shown once and stored only as a SHA-256 hash: they
//! carry 190 random bits, so a fast hash is enough and lookups stay O(1).
//!
//! Every key has a record ([`ApiKey`]): an id its owner lists and revokes it
//! by, the first characters to recognise it by, and what it may do. A
//! tenant (advertiser or affiliate) holds up to `auth.max_secret_keys`
//! secret keys and can never revoke its last one; an operator can disable a
//! tenant (all its keys refused) and issue it a new key.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ids::{random_base62, AdvertiserId, AffiliateId, CampaignId, KeyId};

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

/// The tenant a key belongs to: who lists, adds and revokes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    Advertiser(AdvertiserId),
    Affiliate(AffiliateId),
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Advertiser(id) => id.fmt(f),
            Owner::Affiliate(id) => id.fmt(f),
        }
    }
}

impl std::str::FromStr for Owner {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        s.parse().map(Owner::Advertiser).or_else(|_| s.parse().map(Owner::Affiliate))
    }
}

impl Serialize for Owner {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Owner {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(|_| serde::de::Error::custom("expected an adv_… or aff_… id"))
    }
}

impl Principal {
    /// Whose key this is.
    pub fn owner(&self) -> Owner {
        match self {
            Principal::Advertiser { id, .. } => Owner::Advertiser(*id),
            Principal::Publishable { advertiser, .. } => Owner::Advertiser(*advertiser),
            Principal::Affiliate { id } => Owner::Affiliate(*id),
        }
    }

    pub fn is_secret(&self) -> bool {
        !matches!(self, Principal::Publishable { .. })
    }

    /// The scopes as the API lists them.
    pub fn scope_names(&self) -> Vec<&'static str> {
        match self {
            Principal::Advertiser { scopes, .. } => scopes.iter().map(|s| s.as_str()).collect(),
            Principal::Affiliate { .. } => vec!["affiliate"],
            Principal::Publishable { .. } => vec!["conversions:browser"],
        }
    }
}

/// A key's record. The key itself is never stored: only its hash (the
/// lookup) and, for secret keys, `prefix`, enough to tell keys apart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: KeyId,
    pub principal: Principal,
    /// `sk_live_` and 4 characters of a secret key; a publishable key whole
    /// (it is public).
    pub prefix: String,
    pub created_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
}

/// Characters of a secret key kept to recognise it: the `sk_live_` prefix
/// and 4 of its 32 random characters (24 bits; the other 166 stay secret).
const SHOWN_SECRET_CHARS: usize = 12;

impl ApiKey {
    /// The record of a key just minted (`key` is shown once, never stored).
    pub fn new(principal: Principal, key: &str, now: u64) -> Self {
        let prefix = if principal.is_secret() { key.chars().take(SHOWN_SECRET_CHARS).collect() } else { key.into() };
        Self { id: KeyId::new(), principal, prefix, created_at: now, revoked_at: None }
    }

    /// Keys stored before key records existed hold only their principal:
    /// their id comes from their hash, so every node and every read agrees
    /// on it without a write.
    pub fn legacy(principal: Principal, hash: &KeyHash) -> Self {
        let id = KeyId(u128::from_be_bytes(hash[..16].try_into().expect("16 of 32 bytes")));
        let prefix = if principal.is_secret() { "sk_live_".into() } else { "pk_aff_".into() };
        Self { id, principal, prefix, created_at: 0, revoked_at: None }
    }

    /// A stored record, or a legacy principal from before key records.
    pub fn decode(json: &[u8], hash: &KeyHash) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(json).or_else(|_| serde_json::from_slice(json).map(|p| Self::legacy(p, hash)))
    }

    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
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
    fn a_key_record_keeps_a_secret_keys_first_characters_only() {
        let key = new_secret_key();
        let record = ApiKey::new(Principal::Affiliate { id: AffiliateId(2) }, &key, 7);
        assert_eq!(record.prefix.len(), 12);
        assert!(key.starts_with(&record.prefix) && record.prefix.starts_with("sk_live_"));
        let public = new_org_publishable_key();
        let record = ApiKey::new(Principal::Publishable { advertiser: AdvertiserId(1), campaign: None }, &public, 7);
        assert_eq!(record.prefix, public, "a publishable key is public");
        assert_eq!(record.principal.owner(), Owner::Advertiser(AdvertiserId(1)));
    }

    #[test]
    fn a_legacy_principal_decodes_with_an_id_derived_from_its_hash() {
        let hash = hash_key("sk_live_old");
        let json = serde_json::to_vec(&Principal::advertiser(AdvertiserId(3))).unwrap();
        let a = ApiKey::decode(&json, &hash).unwrap();
        assert_eq!(a, ApiKey::decode(&json, &hash).unwrap(), "the same id on every read");
        assert_eq!(a.principal.owner(), Owner::Advertiser(AdvertiserId(3)));
        let record = ApiKey::new(Principal::advertiser(AdvertiserId(3)), "sk_live_new", 1);
        assert_eq!(ApiKey::decode(&serde_json::to_vec(&record).unwrap(), &hash).unwrap(), record);
    }

    #[test]
    fn owners_print_and_parse_as_their_ids() {
        let a = Owner::Affiliate(AffiliateId(9));
        assert_eq!(a.to_string().parse::<Owner>(), Ok(a));
        let b = Owner::Advertiser(AdvertiserId(9));
        assert_eq!(b.to_string().parse::<Owner>(), Ok(b));
    }

    #[test]
    fn keys_have_their_documented_prefixes() {
        assert!(new_secret_key().starts_with("sk_live_"));
        assert!(new_org_publishable_key().starts_with("pk_aff_org_"));
        assert!(new_campaign_publishable_key().starts_with("pk_aff_"));
        assert_ne!(hash_key("a"), hash_key("b"));
    }
}
