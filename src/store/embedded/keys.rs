//! Tenants and keys on the embedded store. One process owns the file, so
//! every rule (the last-key rule, the per-owner bound) is checked inside the
//! writer's transaction and holds exactly.

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

use super::{dec, enc, get_json};
use crate::domain::ids::*;
use crate::domain::keys::{ApiKey, KeyHash, Owner};
use crate::domain::model::{Advertiser, Affiliate};
use crate::store::{AddKey, Listed, Revoke, StoreError, StoreResult};

pub const ADVERTISERS: TableDefinition<u64, &[u8]> = TableDefinition::new("advertisers");
pub const AFFILIATES: TableDefinition<u64, &[u8]> = TableDefinition::new("affiliates");
/// Key hash → `ApiKey` JSON (or, from before key records, `Principal` JSON).
pub const API_KEYS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("api_keys");
/// (owner kind, owner id, secret?, key id) → key hash: each owner's active
/// keys, secret ones apart from publishable ones (a campaign each).
const OWNER_KEYS: TableDefinition<(u8, u64, bool, u128), &[u8]> = TableDefinition::new("owner_keys");
/// Key id → when it was last used (coarse; see `Keys::touch_key`).
const KEY_LAST_USED: TableDefinition<u128, u64> = TableDefinition::new("key_last_used");

pub fn table_names() -> Vec<String> {
    use redb::TableHandle;
    [ADVERTISERS.name(), AFFILIATES.name(), API_KEYS.name(), OWNER_KEYS.name(), KEY_LAST_USED.name()]
        .map(str::to_string)
        .to_vec()
}

/// Opens every table and indexes keys stored before key records existed.
pub fn open_tables(txn: &WriteTransaction) -> StoreResult<()> {
    txn.open_table(ADVERTISERS)?;
    txn.open_table(AFFILIATES)?;
    txn.open_table(KEY_LAST_USED)?;
    let mut owners = txn.open_table(OWNER_KEYS)?;
    if owners.is_empty()? {
        let keys = txn.open_table(API_KEYS)?;
        for row in keys.iter()? {
            let (hash, value) = row?;
            let hash: KeyHash = hash.value().try_into()?;
            let key = ApiKey::decode(value.value(), &hash)?;
            if key.is_active() {
                owners.insert(index_key(&key), hash.as_slice())?;
            }
        }
    }
    Ok(())
}

fn owner_parts(owner: Owner) -> (u8, u64) {
    match owner {
        Owner::Advertiser(id) => (0, id.0),
        Owner::Affiliate(id) => (1, id.0),
    }
}

fn index_key(key: &ApiKey) -> (u8, u64, bool, u128) {
    let (kind, id) = owner_parts(key.principal.owner());
    (kind, id, key.principal.is_secret(), key.id.0)
}

pub fn put_tenant(
    txn: &WriteTransaction,
    table: TableDefinition<u64, &[u8]>,
    id: u64,
    body: &[u8],
    keys: &[(ApiKey, KeyHash)],
) -> StoreResult<()> {
    txn.open_table(table)?.insert(id, body)?;
    for (key, hash) in keys {
        insert_key(txn, key, hash)?;
    }
    Ok(())
}

fn insert_key(txn: &WriteTransaction, key: &ApiKey, hash: &KeyHash) -> StoreResult<()> {
    txn.open_table(OWNER_KEYS)?.insert(index_key(key), hash.as_slice())?;
    txn.open_table(API_KEYS)?.insert(hash.as_slice(), enc(key).as_slice())?;
    Ok(())
}

/// The hashes of an owner's active keys of one kind, newest first.
fn owner_hashes<T: ReadableTable<(u8, u64, bool, u128), &'static [u8]>>(
    table: &T,
    owner: Owner,
    secret: bool,
) -> StoreResult<Vec<(KeyId, KeyHash)>> {
    let (kind, id) = owner_parts(owner);
    let mut out = Vec::new();
    for row in table.range((kind, id, secret, 0u128)..=(kind, id, secret, u128::MAX))?.rev() {
        let (k, v) = row?;
        out.push((KeyId(k.value().3), v.value().try_into()?));
    }
    Ok(out)
}

pub fn add_key(txn: &WriteTransaction, key: &ApiKey, hash: &KeyHash, max_secret: usize) -> StoreResult<AddKey> {
    if key.principal.is_secret() {
        let owners = txn.open_table(OWNER_KEYS)?;
        if owner_hashes(&owners, key.principal.owner(), true)?.len() >= max_secret {
            return Ok(AddKey::TooMany);
        }
    }
    insert_key(txn, key, hash)?;
    Ok(AddKey::Added)
}

pub fn key_by_hash(txn: &ReadTransaction, hash: &KeyHash) -> StoreResult<Option<ApiKey>> {
    let table = txn.open_table(API_KEYS)?;
    let found = table.get(hash.as_slice())?;
    found.map(|v| ApiKey::decode(v.value(), hash).map_err(StoreError::from)).transpose()
}

pub fn list_keys(txn: &ReadTransaction, owner: Owner, before: Option<KeyId>, limit: usize) -> StoreResult<Vec<Listed>> {
    let owners = txn.open_table(OWNER_KEYS)?;
    let used = txn.open_table(KEY_LAST_USED)?;
    let mut hashes = owner_hashes(&owners, owner, true)?;
    hashes.extend(owner_hashes(&owners, owner, false)?);
    hashes.sort_by_key(|h| std::cmp::Reverse(h.0));
    let mut out = Vec::new();
    for (id, hash) in hashes.into_iter().filter(|(id, _)| before.is_none_or(|b| *id < b)).take(limit) {
        let Some(key) = key_by_hash(txn, &hash)? else { continue };
        let last_used_at = used.get(id.0)?.map(|v| v.value());
        out.push(Listed { key, last_used_at });
    }
    Ok(out)
}

pub fn revoke_key(txn: &WriteTransaction, owner: Owner, id: KeyId, at: u64) -> StoreResult<Revoke> {
    let mut owners = txn.open_table(OWNER_KEYS)?;
    let secret = owner_hashes(&owners, owner, true)?;
    let (is_secret, hash) = match secret.iter().find(|(k, _)| *k == id) {
        Some((_, hash)) => (true, *hash),
        None => match owner_hashes(&owners, owner, false)?.into_iter().find(|(k, _)| *k == id) {
            Some((_, hash)) => (false, hash),
            None => return Ok(Revoke::NotFound),
        },
    };
    if is_secret && secret.len() == 1 {
        return Ok(Revoke::LastSecretKey);
    }
    let (kind, owner_id) = owner_parts(owner);
    owners.remove((kind, owner_id, is_secret, id.0))?;
    let mut keys = txn.open_table(API_KEYS)?;
    let stored = keys.get(hash.as_slice())?.map(|v| ApiKey::decode(v.value(), &hash)).transpose();
    let mut key = stored?.ok_or_else(|| StoreError::Failed(format!("key {id} is indexed but has no record")))?;
    key.revoked_at.get_or_insert(at);
    keys.insert(hash.as_slice(), enc(&key).as_slice())?;
    Ok(Revoke::Revoked(key, hash))
}

pub fn key_by_id(txn: &ReadTransaction, owner: Owner, id: KeyId) -> StoreResult<Option<ApiKey>> {
    let owners = txn.open_table(OWNER_KEYS)?;
    let (kind, owner_id) = owner_parts(owner);
    for secret in [true, false] {
        if let Some(hash) = owners.get((kind, owner_id, secret, id.0))? {
            let hash: KeyHash = hash.value().try_into()?;
            return key_by_hash(txn, &hash);
        }
    }
    Ok(None)
}

pub fn replace_advertiser(txn: &WriteTransaction, a: &Advertiser) -> StoreResult<()> {
    txn.open_table(ADVERTISERS)?.insert(a.id.0, enc(a).as_slice())?;
    Ok(())
}

pub fn touch_key(txn: &WriteTransaction, id: KeyId, at: u64) -> StoreResult<()> {
    txn.open_table(KEY_LAST_USED)?.insert(id.0, at)?;
    Ok(())
}

pub fn set_disabled(txn: &WriteTransaction, owner: Owner, disabled_at: Option<u64>) -> StoreResult<bool> {
    match owner {
        Owner::Advertiser(id) => {
            let mut table = txn.open_table(ADVERTISERS)?;
            let Some(mut a) = table.get(id.0)?.map(|v| dec::<Advertiser>(v.value())).transpose()? else {
                return Ok(false);
            };
            a.disabled_at = disabled_at;
            table.insert(id.0, enc(&a).as_slice())?;
        }
        Owner::Affiliate(id) => {
            let mut table = txn.open_table(AFFILIATES)?;
            let Some(mut a) = table.get(id.0)?.map(|v| dec::<Affiliate>(v.value())).transpose()? else {
                return Ok(false);
            };
            a.disabled_at = disabled_at;
            table.insert(id.0, enc(&a).as_slice())?;
        }
    }
    Ok(true)
}

pub fn get_advertiser(txn: &ReadTransaction, id: AdvertiserId) -> StoreResult<Option<Advertiser>> {
    get_json(txn, ADVERTISERS, id.0)
}

pub fn get_affiliate(txn: &ReadTransaction, id: AffiliateId) -> StoreResult<Option<Affiliate>> {
    get_json(txn, AFFILIATES, id.0)
}
