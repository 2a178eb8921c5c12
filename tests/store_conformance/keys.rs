//! The `Keys` contract: tenants with their first keys, records by hash,
//! each owner's active keys, the last-key rule and the per-owner bound (also
//! when two revocations race), disabling a tenant. Each check uses its own
//! tenants.

use std::sync::Arc;

use clickledger::domain::ids::*;
use clickledger::domain::keys::*;
use clickledger::domain::model::*;
use clickledger::store::*;

type Shared = Arc<dyn Backend>;

pub async fn suite(store: &Shared) {
    a_tenant_is_stored_with_its_first_keys(store).await;
    keys_are_listed_newest_first_in_pages_with_their_last_use(store).await;
    an_owner_holds_at_most_max_secret_keys_and_publishable_ones_do_not_count(store).await;
    a_revoked_key_keeps_its_record_and_leaves_the_list(store).await;
    the_last_secret_key_cannot_be_revoked(store).await;
    racing_revocations_of_the_last_two_keys_leave_one(store).await;
    a_tenant_is_disabled_and_enabled(store).await;
}

fn advertiser(id: u64) -> Advertiser {
    Advertiser {
        id: AdvertiserId(id),
        name: "a".into(),
        publishable_key: format!("pk_aff_org_{id}"),
        created_at: 0,
        disabled_at: None,
    }
}

fn minted(principal: Principal, key: &str) -> (ApiKey, KeyHash) {
    (ApiKey::new(principal, key, 1), hash_key(key))
}

/// An affiliate with `n` secret keys `sk_live_{tag}{i}`; returns their records.
async fn affiliate_with_keys(store: &Shared, id: u64, n: usize) -> Vec<ApiKey> {
    let aff = Affiliate { id: AffiliateId(id), name: "b".into(), created_at: 0, disabled_at: None, email: None };
    let keys: Vec<_> =
        (0..n).map(|i| minted(Principal::Affiliate { id: aff.id }, &format!("sk_live_{id}_{i}"))).collect();
    store.put_affiliate(&aff, &keys[..1]).await.unwrap();
    for (key, hash) in &keys[1..] {
        assert_eq!(store.add_key(key, *hash, 20).await.unwrap(), AddKey::Added);
    }
    keys.into_iter().map(|(k, _)| k).collect()
}

async fn a_tenant_is_stored_with_its_first_keys(store: &Shared) {
    let adv = advertiser(901);
    let secret = minted(Principal::advertiser(adv.id), "sk_live_901");
    let public = minted(Principal::Publishable { advertiser: adv.id, campaign: None }, &adv.publishable_key);
    store.put_advertiser(&adv, &[secret.clone(), public.clone()]).await.unwrap();
    assert_eq!(store.get_advertiser(adv.id).await.unwrap().unwrap().name, "a");
    assert_eq!(store.key_by_hash(&secret.1).await.unwrap(), Some(secret.0.clone()));
    assert_eq!(store.key_by_hash(&public.1).await.unwrap(), Some(public.0.clone()));
    assert_eq!(store.key_by_hash(&hash_key("sk_live_nope")).await.unwrap(), None);
    assert_eq!(store.key_by_id(Owner::Advertiser(adv.id), secret.0.id).await.unwrap(), Some(secret.0));
    assert_eq!(
        store.key_by_id(Owner::Advertiser(AdvertiserId(902)), public.0.id).await.unwrap(),
        None,
        "not its owner"
    );
    assert!(store.get_affiliate(AffiliateId(901)).await.unwrap().is_none());
}

async fn keys_are_listed_newest_first_in_pages_with_their_last_use(store: &Shared) {
    // Ids are time-ordered to the millisecond: keys minted in one are in id order.
    let mut keys = affiliate_with_keys(store, 910, 3).await;
    keys.sort_by_key(|k| std::cmp::Reverse(k.id));
    let owner = Owner::Affiliate(AffiliateId(910));
    store.touch_key(owner, keys[2].id, 1_234).await.unwrap();
    let first = store.list_keys(owner, None, 2).await.unwrap();
    assert_eq!(first.iter().map(|l| l.key.id).collect::<Vec<_>>(), vec![keys[0].id, keys[1].id]);
    let rest = store.list_keys(owner, Some(keys[1].id), 2).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!((rest[0].key.id, rest[0].last_used_at), (keys[2].id, Some(1_234)));
    assert_eq!(first[0].last_used_at, None);
}

async fn an_owner_holds_at_most_max_secret_keys_and_publishable_ones_do_not_count(store: &Shared) {
    let adv = advertiser(920);
    store.put_advertiser(&adv, &[minted(Principal::advertiser(adv.id), "sk_live_920_0")]).await.unwrap();
    let (second, hash) = minted(Principal::advertiser(adv.id), "sk_live_920_1");
    assert_eq!(store.add_key(&second, hash, 2).await.unwrap(), AddKey::Added);
    let (third, hash) = minted(Principal::advertiser(adv.id), "sk_live_920_2");
    assert_eq!(store.add_key(&third, hash, 2).await.unwrap(), AddKey::TooMany);
    assert_eq!(store.key_by_hash(&hash).await.unwrap(), None, "a refused key is not stored");
    let public = Principal::Publishable { advertiser: adv.id, campaign: Some(CampaignId(920)) };
    let (public, hash) = minted(public, "pk_aff_920");
    assert_eq!(store.add_key(&public, hash, 2).await.unwrap(), AddKey::Added);
    assert_eq!(store.list_keys(Owner::Advertiser(adv.id), None, 10).await.unwrap().len(), 3);
}

async fn a_revoked_key_keeps_its_record_and_leaves_the_list(store: &Shared) {
    let keys = affiliate_with_keys(store, 930, 2).await;
    let owner = Owner::Affiliate(AffiliateId(930));
    let Revoke::Revoked(record, hash) = store.revoke_key(owner, keys[0].id, 77).await.unwrap() else { panic!() };
    assert_eq!((record.id, record.revoked_at), (keys[0].id, Some(77)));
    assert_eq!(hash, hash_key("sk_live_930_0"));
    assert_eq!(store.key_by_hash(&hash).await.unwrap().unwrap().revoked_at, Some(77), "authentication sees it");
    let listed = store.list_keys(owner, None, 10).await.unwrap();
    assert_eq!(listed.iter().map(|l| l.key.id).collect::<Vec<_>>(), vec![keys[1].id]);
    assert_eq!(store.revoke_key(owner, keys[0].id, 78).await.unwrap(), Revoke::NotFound, "revoked already");
    let other = Owner::Affiliate(AffiliateId(931));
    assert_eq!(store.revoke_key(other, keys[1].id, 78).await.unwrap(), Revoke::NotFound, "not the owner's key");
}

async fn the_last_secret_key_cannot_be_revoked(store: &Shared) {
    let keys = affiliate_with_keys(store, 940, 1).await;
    let owner = Owner::Affiliate(AffiliateId(940));
    assert_eq!(store.revoke_key(owner, keys[0].id, 1).await.unwrap(), Revoke::LastSecretKey);
    assert!(store.key_by_hash(&hash_key("sk_live_940_0")).await.unwrap().unwrap().is_active());
}

async fn racing_revocations_of_the_last_two_keys_leave_one(store: &Shared) {
    for round in 0..3 {
        let id = 950 + round;
        let keys = affiliate_with_keys(store, id, 2).await;
        let owner = Owner::Affiliate(AffiliateId(id));
        let (a, b) = tokio::join!(store.revoke_key(owner, keys[0].id, 5), store.revoke_key(owner, keys[1].id, 5));
        let outcomes = [a.unwrap(), b.unwrap()];
        let revoked = outcomes.iter().filter(|o| matches!(o, Revoke::Revoked(..))).count();
        assert_eq!(revoked, 1, "round {round}: {outcomes:?}");
        assert!(outcomes.contains(&Revoke::LastSecretKey), "{outcomes:?}");
        assert_eq!(store.list_keys(owner, None, 10).await.unwrap().len(), 1);
    }
}

async fn a_tenant_is_disabled_and_enabled(store: &Shared) {
    affiliate_with_keys(store, 960, 1).await;
    let owner = Owner::Affiliate(AffiliateId(960));
    assert!(store.set_disabled(owner, Some(9)).await.unwrap());
    assert_eq!(store.get_affiliate(AffiliateId(960)).await.unwrap().unwrap().disabled_at, Some(9));
    assert!(store.set_disabled(owner, None).await.unwrap());
    assert_eq!(store.get_affiliate(AffiliateId(960)).await.unwrap().unwrap().disabled_at, None);
    assert!(!store.set_disabled(Owner::Advertiser(AdvertiserId(961)), Some(1)).await.unwrap(), "no such tenant");
}
