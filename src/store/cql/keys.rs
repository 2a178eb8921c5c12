//! Tenants and keys on CQL. An owner's keys live in one `owner_keys`
//! partition whose `version` static every add and revoke compares and sets,
//! so two nodes revoking an owner's last two keys at once leave one, and the
//! per-owner bound holds exactly. The record a request authenticates with is
//! the `api_keys` row under the key's hash, written after the index.

use futures::future::join_all;
use scylla::statement::batch::{Batch as CqlBatch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::DeserializeRow;

use super::due::MAX_ROUNDS;
use super::money::Write;
use super::statements::{prepare, Kind};
use super::{json, parse, session::Profiles, ScyllaStore};
use crate::domain::ids::*;
use crate::domain::keys::{ApiKey, KeyHash, Owner};
use crate::domain::model::{Advertiser, Affiliate};
use crate::store::{AddKey, Listed, Revoke, StoreError, StoreResult};

pub struct KeyStatements {
    select_version: PreparedStatement,
    select_slice: PreparedStatement,
    select_one: PreparedStatement,
    select_page: PreparedStatement,
    select_first_page: PreparedStatement,
    insert_index: PreparedStatement,
    mark_revoked: PreparedStatement,
    delete_index: PreparedStatement,
    set_version_if: PreparedStatement,
    set_version: PreparedStatement,
    insert_last_used: PreparedStatement,
    select_last_used: PreparedStatement,
    scan_api_keys: PreparedStatement,
}

impl KeyStatements {
    pub async fn prepare(
        session: &scylla::client::session::Session,
        profiles: &Profiles,
        ks: &str,
    ) -> StoreResult<Self> {
        use Kind::*;
        let p = |kind, cql: &'static str| prepare(session, profiles, ks, kind, cql);
        Ok(Self {
            select_version: p(SerialRead, "SELECT version FROM {ks}.owner_keys WHERE owner = ? LIMIT 1").await?,
            select_slice: p(
                SerialRead,
                "SELECT key_id, key_hash, revoked_at FROM {ks}.owner_keys WHERE owner = ? AND secret = ?",
            )
            .await?,
            select_one: p(
                SerialRead,
                "SELECT key_id, key_hash, revoked_at FROM {ks}.owner_keys WHERE owner = ? AND secret = ? AND key_id = ?",
            )
            .await?,
            select_first_page: p(
                Plain,
                "SELECT key_id, key_hash, revoked_at FROM {ks}.owner_keys WHERE owner = ? AND secret = ? LIMIT ?",
            )
            .await?,
            select_page: p(
                Plain,
                "SELECT key_id, key_hash, revoked_at FROM {ks}.owner_keys \
                 WHERE owner = ? AND secret = ? AND key_id < ? LIMIT ?",
            )
            .await?,
            insert_index: p(
                Batched,
                "INSERT INTO {ks}.owner_keys (owner, secret, key_id, key_hash) VALUES (?, ?, ?, ?)",
            )
            .await?,
            mark_revoked: p(
                Batched,
                "UPDATE {ks}.owner_keys SET revoked_at = ? WHERE owner = ? AND secret = ? AND key_id = ?",
            )
            .await?,
            delete_index: p(Plain, "DELETE FROM {ks}.owner_keys WHERE owner = ? AND secret = ? AND key_id = ?").await?,
            set_version_if: p(Batched, "UPDATE {ks}.owner_keys SET version = ? WHERE owner = ? IF version = ?").await?,
            set_version: p(Batched, "UPDATE {ks}.owner_keys SET version = ? WHERE owner = ?").await?,
            insert_last_used: p(Plain, "INSERT INTO {ks}.key_last_used (key_id, at) VALUES (?, ?)").await?,
            select_last_used: p(Plain, "SELECT at FROM {ks}.key_last_used WHERE key_id = ?").await?,
            scan_api_keys: p(Scan, "SELECT key_hash, principal FROM {ks}.api_keys").await?,
        })
    }
}

#[derive(DeserializeRow)]
struct VersionRow {
    version: Option<i64>,
}

#[derive(DeserializeRow)]
struct IndexRow {
    key_id: String,
    key_hash: Vec<u8>,
    revoked_at: Option<i64>,
}

#[derive(DeserializeRow)]
struct AtRow {
    at: Option<i64>,
}

#[derive(DeserializeRow)]
struct ApiKeyRow {
    key_hash: Vec<u8>,
    principal: String,
}

/// One index row, read back.
struct Indexed {
    id: KeyId,
    hash: KeyHash,
    revoked: bool,
}

fn indexed(row: IndexRow) -> StoreResult<Indexed> {
    let id =
        row.key_id.parse().map_err(|_| StoreError::Failed(format!("bad key id '{}' in owner_keys", row.key_id)))?;
    let hash = row.key_hash.as_slice().try_into()?;
    Ok(Indexed { id, hash, revoked: row.revoked_at.is_some() })
}

impl ScyllaStore {
    fn kst(&self) -> &KeyStatements {
        &self.st.keys
    }

    async fn owner_version(&self, owner: &str) -> StoreResult<Option<i64>> {
        let rows = self.exec(&self.kst().select_version, (owner,)).await?.into_rows_result()?;
        let row: Option<VersionRow> = rows.maybe_first_row()?;
        Ok(row.and_then(|r| r.version))
    }

    async fn owner_slice(&self, owner: &str, secret: bool) -> StoreResult<Vec<Indexed>> {
        let rows = self.exec(&self.kst().select_slice, (owner, secret)).await?.into_rows_result()?;
        rows.rows::<IndexRow>()?.map(|r| indexed(r?)).collect()
    }

    /// The index rows and tenant row of a new tenant, as one logged batch.
    async fn put_tenant(
        &self,
        tenant: (&PreparedStatement, (i64, String)),
        keys: &[(ApiKey, KeyHash)],
    ) -> StoreResult<()> {
        let mut batch = CqlBatch::new(BatchType::Logged);
        let mut values: Vec<Box<dyn scylla::serialize::row::SerializeRow + Send + Sync>> = Vec::new();
        batch.append_statement(tenant.0.clone());
        values.push(Box::new(tenant.1));
        for (key, hash) in keys {
            let owner = key.principal.owner().to_string();
            batch.append_statement(self.kst().insert_index.clone());
            values.push(Box::new((owner.clone(), key.principal.is_secret(), key.id.to_string(), hash.to_vec())));
            batch.append_statement(self.st.insert_api_key.clone());
            values.push(Box::new((hash.to_vec(), json(key))));
        }
        if let Some((key, _)) = keys.first() {
            batch.append_statement(self.kst().set_version.clone());
            values.push(Box::new((1i64, key.principal.owner().to_string())));
        }
        let _permit = self.permits.acquire().await?;
        self.session.batch(&batch, values).await.map(drop).map_err(StoreError::from)
    }

    pub(super) async fn put_advertiser_row(&self, a: &Advertiser, keys: &[(ApiKey, KeyHash)]) -> StoreResult<()> {
        self.put_tenant((&self.st.insert_advertiser, (a.id.0 as i64, json(a))), keys).await
    }

    pub(super) async fn put_affiliate_row(&self, a: &Affiliate, keys: &[(ApiKey, KeyHash)]) -> StoreResult<()> {
        self.put_tenant((&self.st.insert_affiliate, (a.id.0 as i64, json(a))), keys).await
    }

    pub(super) async fn key_record(&self, hash: &KeyHash) -> StoreResult<Option<ApiKey>> {
        let rows = self.exec(&self.st.select_api_key, (hash.to_vec(),)).await?.into_rows_result()?;
        let row: Option<super::rows::BodyRow> = rows.maybe_first_row()?;
        row.map(|r| ApiKey::decode(r.body.as_bytes(), hash).map_err(StoreError::from)).transpose()
    }

    /// A compare-and-set round on the owner's version with `writes`.
    async fn owner_cas(&self, owner: &str, version: Option<i64>, mut writes: Vec<Write<'_>>) -> StoreResult<bool> {
        let next = version.unwrap_or(0) + 1;
        writes.push((&self.kst().set_version_if, Box::new((next, owner.to_string(), version))));
        self.lwt_batch(writes).await
    }

    pub(super) async fn insert_key(&self, key: &ApiKey, hash: KeyHash, max_secret: usize) -> StoreResult<AddKey> {
        let (owner, secret) = (key.principal.owner().to_string(), key.principal.is_secret());
        for _ in 0..MAX_ROUNDS {
            // The version before the slice: a change in between bumps it.
            let version = self.owner_version(&owner).await?;
            if secret && self.owner_slice(&owner, true).await?.iter().filter(|k| !k.revoked).count() >= max_secret {
                return Ok(AddKey::TooMany);
            }
            let row = (owner.clone(), secret, key.id.to_string(), hash.to_vec());
            if self.owner_cas(&owner, version, vec![(&self.kst().insert_index, Box::new(row))]).await? {
                self.exec(&self.st.insert_api_key, (hash.to_vec(), json(key))).await?;
                return Ok(AddKey::Added);
            }
        }
        Err(StoreError::Failed(format!("the keys of {owner} stayed contended for {MAX_ROUNDS} rounds; retry")))
    }

    /// Finds `id` among the owner's index rows: (secret?, row, active secret keys).
    async fn find_indexed(&self, owner: &str, id: KeyId) -> StoreResult<Option<(bool, Indexed, usize)>> {
        let secret = self.owner_slice(owner, true).await?;
        let active = secret.iter().filter(|k| !k.revoked).count();
        if let Some(found) = secret.into_iter().find(|k| k.id == id) {
            return Ok(Some((true, found, active)));
        }
        let one = (owner, false, id.to_string());
        let rows = self.exec(&self.kst().select_one, one).await?.into_rows_result()?;
        let row: Option<IndexRow> = rows.maybe_first_row()?;
        Ok(row.map(indexed).transpose()?.map(|k| (false, k, active)))
    }

    async fn owner_slice_page(
        &self,
        owner: &str,
        secret: bool,
        before: Option<KeyId>,
        limit: usize,
    ) -> StoreResult<Vec<Indexed>> {
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let result = match before {
            Some(b) => self.exec(&self.kst().select_page, (owner, secret, b.to_string(), limit)).await?,
            None => self.exec(&self.kst().select_first_page, (owner, secret, limit)).await?,
        };
        let rows = result.into_rows_result()?;
        rows.rows::<IndexRow>()?.map(|r| indexed(r?)).collect()
    }

    pub(super) async fn revoke(&self, owner: Owner, id: KeyId, at: u64) -> StoreResult<Revoke> {
        let owner = owner.to_string();
        for _ in 0..MAX_ROUNDS {
            let version = self.owner_version(&owner).await?;
            let Some((secret, found, active)) = self.find_indexed(&owner, id).await? else {
                return Ok(Revoke::NotFound);
            };
            if !found.revoked {
                if secret && active <= 1 {
                    return Ok(Revoke::LastSecretKey);
                }
                let mark = (at as i64, owner.clone(), secret, id.to_string());
                if !self.owner_cas(&owner, version, vec![(&self.kst().mark_revoked, Box::new(mark))]).await? {
                    continue;
                }
            }
            // Marked (now, or by a revocation that died here): finish it.
            let mut key = self
                .key_record(&found.hash)
                .await?
                .ok_or_else(|| StoreError::Failed(format!("key {id} has no record")))?;
            key.revoked_at.get_or_insert(at);
            self.exec(&self.st.insert_api_key, (found.hash.to_vec(), json(&key))).await?;
            self.exec(&self.kst().delete_index, (owner.clone(), secret, id.to_string())).await?;
            return Ok(Revoke::Revoked(key, found.hash));
        }
        Err(StoreError::Failed(format!("the keys of {owner} stayed contended for {MAX_ROUNDS} rounds; retry")))
    }

    pub(super) async fn key_of(&self, owner: Owner, id: KeyId) -> StoreResult<Option<ApiKey>> {
        let Some((_, found, _)) = self.find_indexed(&owner.to_string(), id).await? else { return Ok(None) };
        if found.revoked {
            return Ok(None);
        }
        self.key_record(&found.hash).await
    }

    pub(super) async fn owner_keys(
        &self,
        owner: Owner,
        before: Option<KeyId>,
        limit: usize,
    ) -> StoreResult<Vec<Listed>> {
        let owner = owner.to_string();
        let mut rows: Vec<Indexed> = self.owner_slice(&owner, true).await?;
        rows.retain(|k| before.is_none_or(|b| k.id < b));
        rows.extend(self.owner_slice_page(&owner, false, before, limit).await?);
        rows.retain(|k| !k.revoked);
        rows.sort_by_key(|k| std::cmp::Reverse(k.id));
        rows.truncate(limit);
        let listed = join_all(rows.iter().map(|k| self.listed(k))).await;
        Ok(listed.into_iter().collect::<StoreResult<Vec<_>>>()?.into_iter().flatten().collect())
    }

    async fn listed(&self, k: &Indexed) -> StoreResult<Option<Listed>> {
        let Some(key) = self.key_record(&k.hash).await? else { return Ok(None) };
        let rows = self.exec(&self.kst().select_last_used, (k.id.to_string(),)).await?.into_rows_result()?;
        let at: Option<AtRow> = rows.maybe_first_row()?;
        Ok(Some(Listed { key, last_used_at: at.and_then(|a| a.at).map(|a| a as u64) }))
    }

    pub(super) async fn touch(&self, id: KeyId, at: u64) -> StoreResult<()> {
        self.exec(&self.kst().insert_last_used, (id.to_string(), at as i64)).await.map(drop)
    }

    pub(super) async fn disable(&self, owner: Owner, disabled_at: Option<u64>) -> StoreResult<bool> {
        match owner {
            Owner::Advertiser(id) => {
                let Some(mut a): Option<Advertiser> = self.body(&self.st.select_advertiser, (id.0 as i64,)).await?
                else {
                    return Ok(false);
                };
                a.disabled_at = disabled_at;
                self.exec(&self.st.insert_advertiser, (id.0 as i64, json(&a))).await?;
            }
            Owner::Affiliate(id) => {
                let Some(mut a): Option<Affiliate> = self.body(&self.st.select_affiliate, (id.0 as i64,)).await? else {
                    return Ok(false);
                };
                a.disabled_at = disabled_at;
                self.exec(&self.st.insert_affiliate, (id.0 as i64, json(&a))).await?;
            }
        }
        Ok(true)
    }

    /// Indexes keys stored before key records existed (schema version 3):
    /// each gets the id its hash gives it, and its record is rewritten as
    /// an `ApiKey`. Idempotent, so `clickledger migrate` runs it every time.
    pub(super) async fn index_legacy_keys(&self) -> StoreResult<u64> {
        use futures::StreamExt;
        let pager = self.session.execute_iter(self.kst().scan_api_keys.clone(), &[]).await?;
        let mut rows = pager.rows_stream::<ApiKeyRow>()?;
        let mut indexed = 0;
        while let Some(row) = rows.next().await {
            let row = row?;
            if parse::<ApiKey>(&row.principal).is_ok() {
                continue;
            }
            let hash: KeyHash = row.key_hash.as_slice().try_into()?;
            let key = ApiKey::decode(row.principal.as_bytes(), &hash)?;
            let index =
                (key.principal.owner().to_string(), key.principal.is_secret(), key.id.to_string(), hash.to_vec());
            self.exec(&self.kst().insert_index, index).await?;
            self.exec(&self.st.insert_api_key, (hash.to_vec(), json(&key))).await?;
            indexed += 1;
        }
        Ok(indexed)
    }
}
