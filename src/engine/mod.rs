//! The engine: the catalog the front end reads, the registry of per-campaign
//! actors it shards work to, and the ingest rules between them; after
//! attribution, referrals, direct-lead review and payments, which turn
//! records into money through `money`.

pub mod campaign;
pub mod campaigns;
pub mod catalog;
pub mod clickguard;
pub mod clock;
pub mod dedup;
pub mod guard;
pub mod ingest;
pub mod leads;
pub mod limiter;
pub mod listings;
pub mod money;
pub mod outbox;
pub mod payments;
pub mod readiness;
pub mod rebuild;
pub mod referrals;
pub mod registry;
pub mod retention;
pub mod review;
pub mod supervisor;
pub mod tenants;
pub mod webhooks;

use std::net::IpAddr;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Config;
use crate::domain::ids::{AdvertiserId, CampaignId, KeyId};
use crate::domain::keys::{hash_key, ApiKey, KeyHash, Principal};
use crate::domain::model::{Campaign, IpHash};
use crate::domain::token::TokenKeys;
use crate::error::{Error, Result};
use crate::secrets::Secrets;
use crate::store::{Backend, Feed, Hooks, Keys, Ledger, Store, StoreResult};
use catalog::Catalog;
use registry::Registry;

pub struct Engine {
    pub config: Config,
    store: Arc<dyn Store>,
    ledger: Arc<dyn Ledger>,
    keys: Arc<dyn Keys>,
    /// What the store committed, in order (`store::feed`).
    feed: Arc<dyn Feed>,
    /// Webhook endpoints and the outbox (`store::hooks`).
    hooks: Arc<dyn Hooks>,
    pub catalog: Catalog,
    pub registry: Registry,
    pub tokens: TokenKeys,
    /// Browser conversions, per (publishable key, client network).
    pub limiter: limiter::Limiter<(KeyHash, IpAddr)>,
    /// Writes with a secret key, per key: affiliates' and advertisers'.
    affiliate_writes: limiter::Limiter<KeyId>,
    advertiser_writes: limiter::Limiter<KeyId>,
    pub money: Arc<money::Money>,
    pub clock: Arc<dyn clock::Clock>,
    /// Present only with `money.test_clock`: lets tests move time forward.
    pub test_clock: Option<Arc<clock::OffsetClock>>,
    /// Base URL for partners' `/r/{code}` links.
    pub public_base: String,
    /// The unique-click window and click caps, in memory (`clickguard`).
    pub click_guard: clickguard::ClickGuard,
    /// The client-address HMAC with its key already absorbed: each click
    /// clones it instead of setting the key up again.
    ip_mac: Hmac<Sha256>,
    admin_key: KeyHash,
}

impl Engine {
    pub async fn start(
        config: Config,
        backend: Arc<dyn Backend>,
        secrets: &Secrets,
        public_base: String,
    ) -> StoreResult<Self> {
        let store: Arc<dyn Store> = backend.clone();
        let ledger: Arc<dyn Ledger> = backend.clone();
        let keys: Arc<dyn Keys> = backend.clone();
        let feed: Arc<dyn Feed> = backend.clone();
        let hooks: Arc<dyn Hooks> = backend;
        let refresh = std::time::Duration::from_millis(config.engine.catalog_refresh_ms);
        let revalidate = std::time::Duration::from_millis(config.auth.revalidate_ms);
        let catalog = Catalog::load(store.clone(), keys.clone(), refresh, revalidate).await?;
        let registry = Registry::new(store.clone(), config.engine.clone());
        let tokens = TokenKeys::new(secrets.token_keys.iter().map(|k| k.as_bytes().to_vec()).collect());
        let limiter = limiter::Limiter::new(config.http.browser_rate_per_sec, f64::from(config.http.browser_burst));
        let l = &config.limits;
        let affiliate_writes = limiter::Limiter::new(l.affiliate_writes_per_sec, f64::from(l.affiliate_write_burst));
        let advertiser_writes = limiter::Limiter::new(l.advertiser_writes_per_sec, f64::from(l.advertiser_write_burst));
        let test_clock = config
            .money
            .test_clock
            .then(|| Arc::new(clock::OffsetClock::load(Some(config.data_dir.join("clock_offset")))));
        let clock: Arc<dyn clock::Clock> = match &test_clock {
            Some(c) => c.clone(),
            None => Arc::new(clock::SystemClock),
        };
        let money = Arc::new(money::Money {
            ledger: ledger.clone(),
            store: store.clone(),
            clock: clock.clone(),
            config: config.money.clone(),
        });
        Ok(Self {
            money,
            clock,
            test_clock,
            limiter,
            affiliate_writes,
            advertiser_writes,
            config,
            store,
            ledger,
            keys,
            feed,
            hooks,
            catalog,
            registry,
            tokens,
            public_base,
            click_guard: Default::default(),
            ip_mac: Hmac::<Sha256>::new_from_slice(secrets.ip_hash_key.as_bytes()).expect("any key length"),
            admin_key: hash_key(&secrets.admin_key),
        })
    }

    /// Resolves a secret or publishable key: unknown or revoked is 401, a
    /// disabled tenant's key 403. A `write` spends a token of the key's
    /// bucket (429 when it is empty). Use is recorded about once a minute.
    pub async fn authenticate(&self, key: &str, write: bool) -> Result<Principal> {
        let record = self.catalog.key(key).await?.ok_or(Error::Unauthorized("the API key is not valid"))?;
        if record.revoked_at.is_some() {
            return Err(Error::Unauthorized("this API key was revoked"));
        }
        let principal = record.principal.clone();
        if self.catalog.disabled(principal.owner()).await {
            return Err(Error::Disabled(format!("{} is disabled; ask the operator", principal.owner())));
        }
        if write {
            let bucket = match principal {
                Principal::Affiliate { .. } => Some(&self.affiliate_writes),
                Principal::Advertiser { .. } => Some(&self.advertiser_writes),
                // The browser path has its own limit, per client.
                Principal::Publishable { .. } => None,
            };
            if let Some(Err(wait)) = bucket.map(|b| b.take(record.id, std::time::Instant::now())) {
                return Err(Error::RateLimited { retry_after: wait });
            }
        }
        self.touch(&record);
        Ok(principal)
    }

    /// Writes a key's `lastUsedAt` in the background, at most once a minute.
    fn touch(&self, record: &ApiKey) {
        let now = self.now();
        if self.catalog.should_touch(record.id, now) {
            let (keys, owner, id) = (self.keys.clone(), record.principal.owner(), record.id);
            tokio::spawn(async move {
                if let Err(e) = keys.touch_key(owner, id, now).await {
                    tracing::debug!(error = %e, key = %id, "could not record a key's use");
                }
            });
        }
    }

    /// Constant-time comparison of hashes, so timing reveals nothing of the key.
    pub fn is_admin(&self, key: &str) -> bool {
        use subtle::ConstantTimeEq;
        hash_key(key).ct_eq(&self.admin_key).into()
    }

    /// A keyed hash of the client address: stable per visitor, not reversible
    /// without the key, so click logs hold no raw IPs. Over the address's
    /// octets (an IPv4-mapped IPv6 address as its IPv4 one).
    pub fn hash_ip(&self, ip: IpAddr) -> IpHash {
        let mut mac = self.ip_mac.clone();
        match ip.to_canonical() {
            IpAddr::V4(v4) => mac.update(&v4.octets()),
            IpAddr::V6(v6) => mac.update(&v6.octets()),
        }
        let tag = mac.finalize().into_bytes();
        IpHash(tag[..16].try_into().expect("a SHA-256 tag has 32 bytes"))
    }

    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The campaign, if `advertiser` owns it: unknown is 404, another
    /// advertiser's is 403 (the money and review endpoints' rule).
    pub async fn owned_campaign(&self, advertiser: AdvertiserId, id: CampaignId) -> Result<Arc<Campaign>> {
        let campaign =
            self.catalog.campaign(id).await?.ok_or_else(|| Error::NotFound(format!("no campaign '{id}'")))?;
        if campaign.advertiser_id != advertiser {
            return Err(Error::Forbidden(format!("campaign '{id}' belongs to another advertiser")));
        }
        Ok(campaign)
    }
}

#[cfg(test)]
mod campaign_tests;
