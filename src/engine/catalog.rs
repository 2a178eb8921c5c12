//! The small, read-mostly catalog the hot paths consult on every request:
//! campaigns, tracking codes, key records and tenants' status. Loaded from
//! the store at start, kept in `DashMap`s, written through on change and
//! read through on a miss (so a code another node created is found on first
//! use). Campaigns, keys and tenants can change on another node, so a cached
//! one older than its refresh interval is re-read: a key revoked or a tenant
//! disabled anywhere is refused everywhere within `auth.revalidate_ms`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::domain::ids::{AffiliateId, CampaignId, KeyId};
use crate::domain::keys::{hash_key, ApiKey, KeyHash, Owner};
use crate::domain::model::{Campaign, TrackingCode};
use crate::store::{Keys, Store, StoreResult};

/// A key's use is written at most this often (seconds): `lastUsedAt` is
/// that coarse, and a busy key costs one small write a minute.
const TOUCH_EVERY_SECS: u64 = 60;

/// Edits that keep losing the compare-and-set give up (503) after this many tries.
const MAX_EDIT_ATTEMPTS: usize = 16;

pub struct Catalog {
    store: Arc<dyn Store>,
    campaigns: DashMap<CampaignId, (Arc<Campaign>, Instant)>,
    refresh: Duration,
    codes: DashMap<String, Arc<TrackingCode>>,
    /// (campaign, affiliate) → its code: who is approved where.
    approvals: DashMap<(CampaignId, AffiliateId), Arc<TrackingCode>>,
    /// When every code was last read from the store (see `approval`).
    codes_loaded: tokio::sync::Mutex<Instant>,
    keys_store: Arc<dyn Keys>,
    /// Key hash → its record (revoked ones too), and when it was read.
    keys: DashMap<KeyHash, (Arc<ApiKey>, Instant)>,
    /// Tenant → disabled?, and when it was read.
    tenants: DashMap<Owner, (bool, Instant)>,
    /// Affiliate → its email (the `selfReferral` rule), and when it was read.
    emails: DashMap<AffiliateId, (Option<Arc<str>>, Instant)>,
    revalidate: Duration,
    /// When each key's use was last written.
    touched: DashMap<KeyId, u64>,
}

impl Catalog {
    pub async fn load(
        store: Arc<dyn Store>,
        keys_store: Arc<dyn Keys>,
        refresh: Duration,
        revalidate: Duration,
    ) -> StoreResult<Self> {
        let catalog = Self {
            store: store.clone(),
            campaigns: DashMap::new(),
            refresh,
            codes: DashMap::new(),
            approvals: DashMap::new(),
            codes_loaded: tokio::sync::Mutex::new(Instant::now()),
            keys_store,
            keys: DashMap::new(),
            tenants: DashMap::new(),
            emails: DashMap::new(),
            revalidate,
            touched: DashMap::new(),
        };
        for c in store.list_campaigns().await? {
            catalog.remember(c);
        }
        for code in store.list_tracking_codes().await? {
            catalog.index_code(Arc::new(code));
        }
        Ok(catalog)
    }

    fn index_code(&self, code: Arc<TrackingCode>) {
        if let Some(affiliate) = code.affiliate_id {
            self.approvals.insert((code.campaign_id, affiliate), code.clone());
        }
        self.codes.insert(code.code.clone(), code);
    }

    /// The affiliate's code on the campaign: `Some` exactly when it is
    /// approved there. A miss may be an approval made on another node since
    /// this one loaded, so the codes are re-read from the store, but at most
    /// once per `refresh`, so that a caller who is not approved cannot turn
    /// every request into a scan. (A code is never taken back, so a hit
    /// needs no re-check; a removal lives on the campaign, see
    /// `Campaign::admits`, which callers check.)
    pub async fn approval(
        &self,
        campaign: CampaignId,
        affiliate: AffiliateId,
    ) -> StoreResult<Option<Arc<TrackingCode>>> {
        if let Some(code) = self.approvals.get(&(campaign, affiliate)) {
            return Ok(Some(code.clone()));
        }
        let mut loaded = self.codes_loaded.lock().await;
        if loaded.elapsed() >= self.refresh {
            for code in self.store.list_tracking_codes().await? {
                self.index_code(Arc::new(code));
            }
            *loaded = Instant::now();
        }
        Ok(self.approvals.get(&(campaign, affiliate)).map(|c| c.clone()))
    }

    pub fn campaign_count(&self) -> usize {
        self.campaigns.len()
    }

    /// The longest attribution window of the campaigns this node knows.
    pub fn longest_window_days(&self) -> Option<u32> {
        self.campaigns.iter().map(|c| c.value().0.attribution_window_days).max()
    }

    /// A key's record, revoked or not. Unknown keys are not cached, so a key
    /// created on another node works at once; a known one is re-read once
    /// it is older than `revalidate`, so a revocation elsewhere is seen. If
    /// that re-read fails, the cached record serves (the store is down, so
    /// only what needs no store works anyway) and is tried again later.
    pub async fn key(&self, key: &str) -> StoreResult<Option<Arc<ApiKey>>> {
        let hash = hash_key(key);
        let cached = self.keys.get(&hash).map(|e| e.value().clone());
        match cached {
            Some((record, at)) if at.elapsed() < self.revalidate => Ok(Some(record)),
            Some((stale, _)) => match self.keys_store.key_by_hash(&hash).await {
                Ok(found) => Ok(self.remember_key(hash, found)),
                Err(e) => {
                    tracing::debug!(error = %e, "key re-read failed; serving the cached record");
                    self.keys.insert(hash, (stale.clone(), Instant::now()));
                    Ok(Some(stale))
                }
            },
            None => Ok(self.remember_key(hash, self.keys_store.key_by_hash(&hash).await?)),
        }
    }

    /// Caches `found` (or forgets the hash when there is no such key).
    pub fn remember_key(&self, hash: KeyHash, found: Option<ApiKey>) -> Option<Arc<ApiKey>> {
        match found {
            Some(record) => {
                let record = Arc::new(record);
                self.keys.insert(hash, (record.clone(), Instant::now()));
                Some(record)
            }
            None => {
                self.keys.remove(&hash);
                None
            }
        }
    }

    /// Whether resolving `key` would need no store read.
    pub fn knows_key(&self, key: &str) -> bool {
        self.keys.contains_key(&hash_key(key))
    }

    /// Whether an operator disabled `owner`, re-read once older than
    /// `revalidate`. If the store cannot say, the last answer stands (or, for
    /// a tenant never read, enabled: its key was just found valid).
    pub async fn disabled(&self, owner: Owner) -> bool {
        let cached = self.tenants.get(&owner).map(|e| *e.value());
        if let Some((disabled, _)) = cached.filter(|(_, at)| at.elapsed() < self.revalidate) {
            return disabled;
        }
        let read = match owner {
            Owner::Advertiser(id) => self.keys_store.get_advertiser(id).await.map(|a| a.and_then(|a| a.disabled_at)),
            Owner::Affiliate(id) => self.keys_store.get_affiliate(id).await.map(|a| a.and_then(|a| a.disabled_at)),
        };
        let disabled = match read {
            Ok(at) => at.is_some(),
            Err(e) => {
                tracing::debug!(error = %e, %owner, "tenant re-read failed; keeping the last answer");
                cached.is_some_and(|(d, _)| d)
            }
        };
        self.remember_tenant(owner, disabled);
        disabled
    }

    /// An affiliate's email, re-read once older than `revalidate` (so a
    /// conversion with an email costs a map lookup, not a store read).
    pub async fn affiliate_email(&self, id: AffiliateId) -> StoreResult<Option<Arc<str>>> {
        if let Some(found) = self.emails.get(&id).filter(|e| e.1.elapsed() < self.revalidate) {
            return Ok(found.0.clone());
        }
        let email: Option<Arc<str>> = self.keys_store.get_affiliate(id).await?.and_then(|a| a.email).map(Into::into);
        self.emails.insert(id, (email.clone(), Instant::now()));
        Ok(email)
    }

    pub fn remember_tenant(&self, owner: Owner, disabled: bool) {
        self.tenants.insert(owner, (disabled, Instant::now()));
    }

    /// Whether this use of `id` at `now` should be written (once a minute).
    pub fn should_touch(&self, id: KeyId, now: u64) -> bool {
        let mut last = self.touched.entry(id).or_insert(0);
        if now.saturating_sub(*last) < TOUCH_EVERY_SECS {
            return false;
        }
        *last = now;
        true
    }

    pub async fn campaign(&self, id: CampaignId) -> StoreResult<Option<Arc<Campaign>>> {
        let cached = self.campaigns.get(&id).map(|e| e.value().clone());
        match cached {
            Some((c, at)) if at.elapsed() < self.refresh => Ok(Some(c)),
            Some((stale, _)) => match self.store.get_campaign(id).await {
                Ok(found) => Ok(found.map(|c| self.remember(c))),
                // The store is down: keep serving what we knew rather than fail
                // redirects; the next request tries again.
                Err(e) => {
                    tracing::debug!(campaign = %id, error = %e, "campaign refresh failed; serving the cached copy");
                    Ok(Some(stale))
                }
            },
            None => Ok(self.store.get_campaign(id).await?.map(|c| self.remember(c))),
        }
    }

    fn remember(&self, campaign: Campaign) -> Arc<Campaign> {
        let campaign = Arc::new(campaign);
        self.campaigns.insert(campaign.id, (campaign.clone(), Instant::now()));
        campaign
    }

    /// Applies `edit` to the freshest stored campaign and saves it with
    /// compare-and-set on its version, retrying when another request or
    /// another node edited it first. Returns `Ok(None)` if it does not exist.
    pub async fn update_campaign<E>(
        &self,
        id: CampaignId,
        mut edit: impl FnMut(&mut Campaign) -> Result<(), E>,
    ) -> Result<Option<Arc<Campaign>>, E>
    where
        E: From<crate::store::StoreError>,
    {
        for _ in 0..MAX_EDIT_ATTEMPTS {
            let Some(current) = self.store.get_campaign(id).await? else { return Ok(None) };
            let mut next = current.clone();
            edit(&mut next)?;
            next.version = current.version + 1;
            if self.store.replace_campaign(&next, current.version).await? {
                return Ok(Some(self.remember(next)));
            }
        }
        Err(crate::store::StoreError::Failed(format!("campaign {id} is being edited concurrently; retry")).into())
    }

    /// Stores a new campaign.
    pub async fn save_campaign(&self, campaign: Campaign) -> StoreResult<Arc<Campaign>> {
        self.store.put_campaign(&campaign).await?;
        Ok(self.remember(campaign))
    }

    pub async fn code(&self, code: &str) -> StoreResult<Option<Arc<TrackingCode>>> {
        if let Some(c) = self.codes.get(code) {
            return Ok(Some(c.clone()));
        }
        Ok(self.store.get_tracking_code(code).await?.map(|c| {
            let c = Arc::new(c);
            self.index_code(c.clone());
            c
        }))
    }

    /// Records a new code, or returns the one its (campaign, affiliate) pair
    /// already has.
    pub async fn add_code(&self, code: TrackingCode) -> StoreResult<Arc<TrackingCode>> {
        let stored = Arc::new(self.store.insert_tracking_code(&code).await?);
        self.index_code(stored.clone());
        Ok(stored)
    }
}
