//! `Keys` on the embedded store: tenants and their keys, each call one read
//! or one write job over the table functions in `keys.rs`.

use super::*;

#[async_trait]
impl Keys for EmbeddedStore {
    async fn put_advertiser(&self, advertiser: &Advertiser, new_keys: &[(ApiKey, KeyHash)]) -> StoreResult<()> {
        let (id, body, new_keys) = (advertiser.id.0, enc(advertiser), new_keys.to_vec());
        self.write(move |txn| keys::put_tenant(txn, keys::ADVERTISERS, id, &body, &new_keys)).await
    }

    async fn get_advertiser(&self, id: AdvertiserId) -> StoreResult<Option<Advertiser>> {
        self.read(move |txn| keys::get_advertiser(txn, id)).await
    }

    async fn put_affiliate(&self, affiliate: &Affiliate, new_keys: &[(ApiKey, KeyHash)]) -> StoreResult<()> {
        let (id, body, new_keys) = (affiliate.id.0, enc(affiliate), new_keys.to_vec());
        self.write(move |txn| keys::put_tenant(txn, keys::AFFILIATES, id, &body, &new_keys)).await
    }

    async fn get_affiliate(&self, id: AffiliateId) -> StoreResult<Option<Affiliate>> {
        self.read(move |txn| keys::get_affiliate(txn, id)).await
    }

    async fn set_disabled(&self, owner: Owner, disabled_at: Option<u64>) -> StoreResult<bool> {
        self.write(move |txn| keys::set_disabled(txn, owner, disabled_at)).await
    }

    async fn key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<ApiKey>> {
        let hash = *hash;
        self.read(move |txn| keys::key_by_hash(txn, &hash)).await
    }

    async fn key_by_id(&self, owner: Owner, id: KeyId) -> StoreResult<Option<ApiKey>> {
        self.read(move |txn| keys::key_by_id(txn, owner, id)).await
    }

    async fn replace_advertiser(&self, advertiser: &Advertiser) -> StoreResult<()> {
        let advertiser = advertiser.clone();
        self.write(move |txn| keys::replace_advertiser(txn, &advertiser)).await
    }

    async fn add_key(&self, key: &ApiKey, hash: KeyHash, max_secret: usize) -> StoreResult<AddKey> {
        let key = key.clone();
        self.write(move |txn| keys::add_key(txn, &key, &hash, max_secret)).await
    }

    async fn list_keys(&self, owner: Owner, before: Option<KeyId>, limit: usize) -> StoreResult<Vec<Listed>> {
        self.read(move |txn| keys::list_keys(txn, owner, before, limit)).await
    }

    async fn revoke_key(&self, owner: Owner, id: KeyId, at: u64) -> StoreResult<Revoke> {
        self.write(move |txn| keys::revoke_key(txn, owner, id, at)).await
    }

    async fn touch_key(&self, _owner: Owner, id: KeyId, at: u64) -> StoreResult<()> {
        self.write(move |txn| keys::touch_key(txn, id, at)).await
    }
}
