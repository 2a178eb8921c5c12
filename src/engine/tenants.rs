//! Tenants and their keys: what the operator's endpoints and `/api/v1/keys`
//! do. A key is shown once, when it is minted; afterwards only its record.

use super::Engine;
use crate::domain::ids::*;
use crate::domain::keys::*;
use crate::domain::model::{Advertiser, Affiliate};
use crate::error::{Error, Result};
use crate::store::{AddKey, Listed, Revoke};

/// A key just minted: the record kept, and the key shown once.
pub struct NewKey {
    pub record: ApiKey,
    pub key: String,
}

impl NewKey {
    fn mint(principal: Principal, key: String, now: u64) -> Self {
        Self { record: ApiKey::new(principal, &key, now), key }
    }

    fn stored(&self) -> (ApiKey, KeyHash) {
        (self.record.clone(), hash_key(&self.key))
    }
}

/// Who may manage keys: an advertiser's secret key with the campaigns scope
/// (it manages the account), or an affiliate's secret key.
fn manager(who: &Principal) -> Result<Owner> {
    match who {
        Principal::Advertiser { .. } if who.has(Scope::Campaigns) => Ok(who.owner()),
        Principal::Affiliate { .. } => Ok(who.owner()),
        _ => Err(Error::Forbidden("managing keys needs an advertiser's or affiliate's secret key".into())),
    }
}

fn no_key(id: &str) -> Error {
    Error::NotFound(format!("no key '{}'", crate::domain::validate::excerpt(id)))
}

impl Engine {
    pub async fn create_advertiser(&self, name: String) -> Result<(Advertiser, NewKey)> {
        let now = self.now();
        let id = AdvertiserId::random();
        let advertiser =
            Advertiser { id, name, publishable_key: new_org_publishable_key(), created_at: now, disabled_at: None };
        let secret = NewKey::mint(Principal::advertiser(id), new_secret_key(), now);
        let public = Principal::Publishable { advertiser: id, campaign: None };
        let public = NewKey::mint(public, advertiser.publishable_key.clone(), now);
        self.keys.put_advertiser(&advertiser, &[secret.stored(), public.stored()]).await?;
        Ok((advertiser, secret))
    }

    pub async fn create_affiliate(&self, name: String, email: Option<String>) -> Result<(Affiliate, NewKey)> {
        let now = self.now();
        let affiliate = Affiliate { id: AffiliateId::random(), name, created_at: now, disabled_at: None, email };
        let secret = NewKey::mint(Principal::Affiliate { id: affiliate.id }, new_secret_key(), now);
        self.keys.put_affiliate(&affiliate, &[secret.stored()]).await?;
        Ok((affiliate, secret))
    }

    pub async fn affiliate(&self, id: AffiliateId) -> Result<Option<Affiliate>> {
        Ok(self.keys.get_affiliate(id).await?)
    }

    /// Records a new campaign's publishable key.
    pub async fn add_campaign_key(&self, advertiser: AdvertiserId, campaign: CampaignId, key: &str) -> Result<()> {
        let public = Principal::Publishable { advertiser, campaign: Some(campaign) };
        let new = NewKey::mint(public, key.to_string(), self.now());
        let (record, hash) = new.stored();
        self.keys.add_key(&record, hash, usize::MAX).await?;
        Ok(())
    }

    /// An operator disables (every key refused, links dead) or enables a
    /// tenant. This node sees it at once; others within `auth.revalidate_ms`.
    pub async fn set_disabled(&self, owner: Owner, disabled: bool) -> Result<()> {
        let at = disabled.then(|| self.now());
        if !self.keys.set_disabled(owner, at).await? {
            return Err(Error::NotFound(format!("no such tenant '{owner}'")));
        }
        self.catalog.remember_tenant(owner, disabled);
        Ok(())
    }

    /// An operator issues a tenant a new secret key (one that lost theirs).
    pub async fn issue_key(&self, owner: Owner) -> Result<NewKey> {
        let principal = match owner {
            Owner::Advertiser(id) if self.keys.get_advertiser(id).await?.is_some() => Principal::advertiser(id),
            Owner::Affiliate(id) if self.keys.get_affiliate(id).await?.is_some() => Principal::Affiliate { id },
            _ => return Err(Error::NotFound(format!("no such tenant '{owner}'"))),
        };
        self.add_secret_key(principal).await
    }

    /// Another secret key with the caller's own scopes.
    pub async fn create_key(&self, who: &Principal) -> Result<NewKey> {
        manager(who)?;
        self.add_secret_key(who.clone()).await
    }

    async fn add_secret_key(&self, principal: Principal) -> Result<NewKey> {
        let new = NewKey::mint(principal, new_secret_key(), self.now());
        let (record, hash) = new.stored();
        let max = self.config.auth.max_secret_keys;
        match self.keys.add_key(&record, hash, max).await? {
            AddKey::Added => Ok(new),
            AddKey::TooMany => Err(Error::Conflict {
                code: "too_many_keys",
                message: format!("at most {max} active secret keys; delete one you no longer use first"),
            }),
        }
    }

    /// The caller's active keys, newest first (`before`: a page's last id),
    /// each with whether it is the publishable key now shown for its scope.
    pub async fn list_keys(&self, who: &Principal, before: Option<&str>, limit: usize) -> Result<Vec<(Listed, bool)>> {
        let owner = manager(who)?;
        let before = before.map(|b| b.parse::<KeyId>()).transpose();
        let before =
            before.map_err(|_| crate::domain::validate::invalid("before", "must be a key id (a page's nextBefore)"))?;
        let mut out = Vec::new();
        for listed in self.keys.list_keys(owner, before, limit).await? {
            let current = self.is_current_publishable(&listed.key).await?;
            out.push((listed, current));
        }
        Ok(out)
    }

    /// One of the caller's (`owner`'s) active keys, by the id as sent.
    async fn own_key(&self, owner: Owner, id: &str) -> Result<(KeyId, ApiKey)> {
        let key_id: KeyId = id.parse().map_err(|_| no_key(id))?;
        let record = self.keys.key_by_id(owner, key_id).await?.ok_or_else(|| no_key(id))?;
        Ok((key_id, record))
    }

    /// Revokes one of the caller's keys: refused for the last secret key and
    /// for the publishable key currently shown (rotate it first).
    pub async fn revoke_key(&self, who: &Principal, id: &str) -> Result<()> {
        let owner = manager(who)?;
        let (id, record) = self.own_key(owner, id).await?;
        if self.is_current_publishable(&record).await? {
            return Err(Error::Conflict {
                code: "key_in_use",
                message: "this is the publishable key your snippet uses now; rotate it first".into(),
            });
        }
        match self.keys.revoke_key(owner, id, self.now()).await? {
            Revoke::Revoked(record, hash) => {
                self.catalog.remember_key(hash, Some(record));
                Ok(())
            }
            Revoke::NotFound => Err(no_key(&id.to_string())),
            Revoke::LastSecretKey => Err(Error::Conflict {
                code: "last_key",
                message: "this is your only secret key: create another before revoking it".into(),
            }),
        }
    }

    async fn is_current_publishable(&self, record: &ApiKey) -> Result<bool> {
        Ok(match record.principal {
            Principal::Publishable { advertiser, campaign: None } => {
                self.keys.get_advertiser(advertiser).await?.is_some_and(|a| a.publishable_key == record.prefix)
            }
            Principal::Publishable { campaign: Some(c), .. } => {
                self.catalog.campaign(c).await?.is_some_and(|c| c.publishable_key == record.prefix)
            }
            _ => false,
        })
    }

    /// A new publishable key for the same scope (the organisation or one
    /// campaign) becomes the one shown; the old one keeps working until it
    /// is deleted, so pages can switch over first.
    pub async fn rotate_key(&self, who: &Principal, id: &str) -> Result<(NewKey, KeyId)> {
        let owner = manager(who)?;
        let (id, old) = self.own_key(owner, id).await?;
        let key = match old.principal {
            Principal::Publishable { campaign: None, .. } => new_org_publishable_key(),
            Principal::Publishable { campaign: Some(_), .. } => new_campaign_publishable_key(),
            _ => {
                return Err(Error::Conflict {
                    code: "not_publishable",
                    message: "secret keys are rotated by creating a new one (POST /api/v1/keys) and deleting the old"
                        .into(),
                })
            }
        };
        let new = NewKey::mint(old.principal.clone(), key, self.now());
        let (record, hash) = new.stored();
        self.keys.add_key(&record, hash, usize::MAX).await?;
        self.make_current(&new).await?;
        Ok((new, id))
    }

    async fn make_current(&self, new: &NewKey) -> Result<()> {
        match new.record.principal {
            Principal::Publishable { advertiser, campaign: None } => {
                let mut a = self
                    .keys
                    .get_advertiser(advertiser)
                    .await?
                    .ok_or_else(|| Error::NotFound("no advertiser".into()))?;
                a.publishable_key = new.key.clone();
                self.keys.replace_advertiser(&a).await?;
            }
            Principal::Publishable { campaign: Some(c), .. } => {
                self.catalog
                    .update_campaign(c, |c| {
                        c.publishable_key = new.key.clone();
                        Ok::<_, Error>(())
                    })
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }
}
