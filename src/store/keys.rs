//! The `Keys` contract: tenants (advertisers, affiliates) and the life of
//! their keys. Every backend keeps, per key, the record under its hash (what
//! authentication reads, revoked records included, so a revocation is seen)
//! and an index of each owner's active keys (what listing, the last-key rule
//! and the per-owner bound read). Writes go index first: a crash in between
//! leaves a listed key that does not work yet (it was never handed out) or a
//! revoked one that still works until the revocation is retried (it was
//! never acknowledged).

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::ids::*;
use crate::domain::keys::{ApiKey, KeyHash, Owner};
use crate::domain::model::{Advertiser, Affiliate};

/// What became of adding a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddKey {
    Added,
    /// The owner already holds the most active secret keys allowed.
    TooMany,
}

/// What became of revoking a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revoke {
    /// Revoked now (or by a revocation that died half way): the record and
    /// its hash, so this node can forget its cached copy at once.
    Revoked(ApiKey, KeyHash),
    /// Not an active key of this owner.
    NotFound,
    /// The owner's only active secret key: it would lock the owner out.
    LastSecretKey,
}

/// A key as its owner lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub key: ApiKey,
    /// Unix seconds, to about a minute (see `Keys::touch_key`).
    pub last_used_at: Option<u64>,
}

#[async_trait]
pub trait Keys: Send + Sync + 'static {
    /// A new advertiser with its first keys, in one write.
    async fn put_advertiser(&self, advertiser: &Advertiser, keys: &[(ApiKey, KeyHash)]) -> StoreResult<()>;
    async fn get_advertiser(&self, id: AdvertiserId) -> StoreResult<Option<Advertiser>>;
    /// A new affiliate with its first key, in one write.
    async fn put_affiliate(&self, affiliate: &Affiliate, keys: &[(ApiKey, KeyHash)]) -> StoreResult<()>;
    async fn get_affiliate(&self, id: AffiliateId) -> StoreResult<Option<Affiliate>>;
    /// Sets or clears a tenant's `disabled_at`; `false` if there is no such tenant.
    async fn set_disabled(&self, owner: Owner, disabled_at: Option<u64>) -> StoreResult<bool>;

    /// The record of the key with this hash, revoked or not.
    async fn key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<ApiKey>>;
    /// One of an owner's active keys by id.
    async fn key_by_id(&self, owner: Owner, id: KeyId) -> StoreResult<Option<ApiKey>>;
    /// Replaces an advertiser's record (its current publishable key).
    async fn replace_advertiser(&self, advertiser: &Advertiser) -> StoreResult<()>;
    /// Adds a key to its owner's; a secret key only while the owner holds
    /// fewer than `max_secret` active ones.
    async fn add_key(&self, key: &ApiKey, hash: KeyHash, max_secret: usize) -> StoreResult<AddKey>;
    /// An owner's active keys, newest first, older than `before` if given.
    async fn list_keys(&self, owner: Owner, before: Option<KeyId>, limit: usize) -> StoreResult<Vec<Listed>>;
    /// Revokes an owner's key at `at`, unless it is the owner's last active
    /// secret key. Racing revocations of an owner's last two keys leave one.
    async fn revoke_key(&self, owner: Owner, id: KeyId, at: u64) -> StoreResult<Revoke>;
    /// Records that a key was used at `at` (callers do so at most once a
    /// minute per key, so this is cheap and `lastUsedAt` is that coarse).
    async fn touch_key(&self, owner: Owner, id: KeyId, at: u64) -> StoreResult<()>;
}
