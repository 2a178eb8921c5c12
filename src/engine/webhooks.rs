//! Webhook endpoints as their owners manage them: create (the secret shown
//! once), list, show, change, delete, rotate the secret, send a test event,
//! list deliveries and redeliver one. An advertiser's or an affiliate's
//! secret key manages its own endpoints only; another tenant's is a 404, so
//! ids reveal nothing.

use std::net::IpAddr;

use super::Engine;
use crate::domain::ids::CampaignId;
use crate::domain::ids::{DeliveryId, WebhookId};
use crate::domain::keys::{Owner, Principal};
use crate::domain::validate::{self, invalid};
use crate::domain::webhook::{self, Delivery, DeliveryStatus, Endpoint, EndpointKind, Event, PostbackMethod};
use crate::error::{Error, Result};

pub struct NewWebhook {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
}

#[derive(Default)]
pub struct WebhookChange {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub description: Option<String>,
}

/// Who may manage webhooks: a tenant's secret key.
fn owner(who: &Principal) -> Result<Owner> {
    if !who.is_secret() {
        return Err(Error::Forbidden("webhooks need a secret key, not a publishable one".into()));
    }
    Ok(who.owner())
}

fn description(text: Option<String>) -> Result<Option<String>> {
    match text {
        Some(d) if d.chars().count() > webhook::MAX_DESCRIPTION_CHARS => {
            Err(invalid("description", format!("must be at most {} characters", webhook::MAX_DESCRIPTION_CHARS)).into())
        }
        other => Ok(other.filter(|d| !d.is_empty())),
    }
}

impl Engine {
    pub async fn create_webhook(&self, who: &Principal, new: NewWebhook) -> Result<Endpoint> {
        let owner = owner(who)?;
        let url = new.url.ok_or_else(|| invalid("url", "is required"))?;
        let url = self.check_target(&url).await?;
        let events = webhook::event_list("events", &new.events.ok_or_else(|| invalid("events", "is required"))?)?;
        let description = description(new.description)?;
        let mine = self.owned_endpoints(owner, true).await?.len();
        let max = self.config.webhooks.max_per_tenant;
        if mine >= max {
            return Err(invalid(
                "url",
                format!("at most {max} webhook endpoints per account (webhooks.max_per_tenant)"),
            )
            .into());
        }
        let endpoint = Endpoint {
            id: WebhookId::new(),
            owner,
            url,
            events,
            description,
            enabled: true,
            disabled_reason: None,
            secret: webhook::new_secret(),
            created_at: self.now(),
            consecutive_failures: 0,
            version: 1,
            kind: EndpointKind::Webhook,
        };
        if !self.hooks.put_endpoint(&endpoint, None).await? {
            return Err(Error::Unavailable("webhook id collision; retry".into()));
        }
        Ok(endpoint)
    }

    pub async fn list_webhooks(&self, who: &Principal) -> Result<Vec<Endpoint>> {
        let owner = owner(who)?;
        let mut mine = self.owned_endpoints(owner, true).await?;
        mine.sort_by_key(|e| std::cmp::Reverse(e.id));
        Ok(mine)
    }

    /// `owner`'s webhooks (`webhooks`) or partner postback URLs.
    async fn owned_endpoints(&self, owner: Owner, webhooks: bool) -> Result<Vec<Endpoint>> {
        let all = self.hooks.list_endpoints().await?.into_iter();
        Ok(all.filter(|e| e.owner == owner && e.kind.is_webhook() == webhooks).collect())
    }

    /// The caller's endpoint `id`: unknown or another tenant's is 404.
    pub async fn webhook(&self, who: &Principal, id: &str) -> Result<Endpoint> {
        let owner = owner(who)?;
        let not_found = || Error::NotFound(format!("no webhook '{}'", validate::excerpt(id)));
        let id: WebhookId = id.parse().map_err(|_| not_found())?;
        let found = self.hooks.get_endpoint(id).await?.filter(|e| e.owner == owner);
        found.ok_or_else(not_found)
    }

    pub async fn change_webhook(&self, who: &Principal, id: &str, change: WebhookChange) -> Result<Endpoint> {
        let url = match change.url {
            Some(url) => Some(self.check_target(&url).await?),
            None => None,
        };
        let events = change.events.map(|e| webhook::event_list("events", &e)).transpose()?;
        if self.webhook(who, id).await?.kind != EndpointKind::Webhook {
            return Err(
                invalid("id", "is a partner postback URL; change it with PUT /api/v1/affiliate/postback-url").into()
            );
        }
        let described = change.description.is_some();
        let description = description(change.description)?;
        self.edit_webhook(who, id, |e| {
            if let Some(url) = &url {
                e.url = url.clone();
            }
            if let Some(events) = &events {
                e.events = events.clone();
            }
            if described {
                e.description = description.clone();
            }
            if let Some(enabled) = change.enabled {
                e.enabled = enabled;
                if enabled {
                    e.disabled_reason = None;
                    e.consecutive_failures = 0;
                }
            }
        })
        .await
    }

    pub async fn rotate_webhook_secret(&self, who: &Principal, id: &str) -> Result<Endpoint> {
        self.edit_webhook(who, id, |e| e.secret = webhook::new_secret()).await
    }

    /// Compare-and-set on the endpoint's version, retried on a race.
    async fn edit_webhook(&self, who: &Principal, id: &str, edit: impl Fn(&mut Endpoint)) -> Result<Endpoint> {
        for _ in 0..8 {
            let current = self.webhook(who, id).await?;
            let mut next = current.clone();
            edit(&mut next);
            next.version = current.version + 1;
            if self.hooks.put_endpoint(&next, Some(current.version)).await? {
                return Ok(next);
            }
        }
        Err(Error::Conflict { code: "edit_conflict", message: "the webhook changed meanwhile; retry".into() })
    }

    pub async fn delete_webhook(&self, who: &Principal, id: &str) -> Result<()> {
        let endpoint = self.webhook(who, id).await?;
        Ok(self.hooks.delete_endpoint(endpoint.id).await?)
    }

    /// Enqueues a `webhook.test` event for this endpoint alone.
    pub async fn test_webhook(&self, who: &Principal, id: &str) -> Result<Delivery> {
        let endpoint = self.webhook(who, id).await?;
        let now = self.now();
        let event = Event {
            id: format!("evt_{:032x}", DeliveryId::new().0),
            kind: "webhook.test".into(),
            created_at: now,
            data: serde_json::json!({"webhookId": endpoint.id, "message": "A test event from Clickledger."}),
        };
        let delivery = Delivery::new(&event, endpoint.id, now);
        self.hooks.enqueue(std::slice::from_ref(&delivery), None).await?;
        Ok(delivery)
    }

    pub async fn webhook_deliveries(
        &self,
        who: &Principal,
        id: &str,
        status: Option<DeliveryStatus>,
        before: Option<DeliveryId>,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        let endpoint = self.webhook(who, id).await?;
        // A status filter reads further than one page, but never without end.
        let mut out = Vec::new();
        let mut from = before;
        for _ in 0..20 {
            let page = self.hooks.list_deliveries(endpoint.id, from, limit.max(50)).await?;
            let last = page.last().map(|d| d.id);
            out.extend(page.into_iter().filter(|d| status.is_none_or(|s| d.status == s)));
            if out.len() >= limit || last.is_none() || status.is_none() {
                break;
            }
            from = last;
        }
        out.truncate(limit);
        Ok(out)
    }

    /// A new delivery of the same event (same id, same bytes), tried now.
    pub async fn redeliver(&self, who: &Principal, id: &str, delivery: &str) -> Result<Delivery> {
        let endpoint = self.webhook(who, id).await?;
        let not_found = || Error::NotFound(format!("no delivery '{}'", validate::excerpt(delivery)));
        let delivery_id: DeliveryId = delivery.parse().map_err(|_| not_found())?;
        let old = self.hooks.get_delivery(endpoint.id, delivery_id).await?.ok_or_else(not_found)?;
        let now = self.now();
        let again = Delivery {
            id: DeliveryId::new(),
            status: DeliveryStatus::Pending,
            attempts: vec![],
            next_attempt_at: Some(now),
            created_at: now,
            ..old
        };
        self.hooks.enqueue(std::slice::from_ref(&again), None).await?;
        Ok(again)
    }

    /// A target URL as saved: its rules, and (unless private targets are
    /// allowed) every address its host resolves to must be public.
    async fn check_target(&self, url: &str) -> Result<String> {
        let parsed = webhook::target_url("url", url)?;
        if self.config.webhooks.allow_private_targets {
            return Ok(parsed.to_string());
        }
        let addrs = resolve(&parsed).await.map_err(|why| invalid("url", why))?;
        if let Some(bad) = addrs.iter().find(|ip| !webhook::public_address(**ip)) {
            return Err(invalid("url", format!("resolves to {bad}, a private or reserved address; refused")).into());
        }
        Ok(parsed.to_string())
    }
}

/// `PUT /api/v1/affiliate/postback-url`.
pub struct PostbackUrl {
    pub url: Option<String>,
    pub campaign_id: Option<String>,
    pub events: Option<Vec<String>>,
    pub method: Option<String>,
}

impl Engine {
    fn postback_owner(who: &Principal) -> Result<Owner> {
        match who {
            Principal::Affiliate { id } => Ok(Owner::Affiliate(*id)),
            _ => Err(Error::Forbidden("partner postback URLs are an affiliate's; use an affiliate key".into())),
        }
    }

    /// The campaign a postback URL is for: one the affiliate is approved on.
    async fn postback_campaign(&self, who: &Principal, campaign: Option<&str>) -> Result<Option<CampaignId>> {
        let Some(text) = campaign else { return Ok(None) };
        let Principal::Affiliate { id } = who else { unreachable!("checked by postback_owner") };
        let not_yours =
            || invalid("campaignId", format!("'{}' is not a campaign you are approved on", validate::excerpt(text)));
        let campaign: CampaignId = text.parse().map_err(|_| not_yours())?;
        self.catalog.approval(campaign, *id).await?.ok_or_else(not_yours)?;
        Ok(Some(campaign))
    }

    /// Sets the affiliate's postback URL for one campaign or all: replaces
    /// the one it had for the same scope.
    pub async fn set_postback_url(&self, who: &Principal, input: PostbackUrl) -> Result<Endpoint> {
        let owner = Self::postback_owner(who)?;
        let template = input.url.ok_or_else(|| invalid("url", "is required"))?;
        let url = webhook::postback_template("url", &template)?;
        self.check_target(url.as_str()).await?;
        let campaign_id = self.postback_campaign(who, input.campaign_id.as_deref()).await?;
        let events = match input.events {
            None => vec!["conversion.recorded".to_string()],
            Some(events) => {
                let events = webhook::event_list("events", &events)?;
                if let Some(bad) = events.iter().find(|e| !webhook::POSTBACK_EVENTS.contains(&e.as_str())) {
                    let known = webhook::POSTBACK_EVENTS.join(", ");
                    return Err(invalid("events", format!("'{bad}' is not a postback event; use {known}")).into());
                }
                events
            }
        };
        let method = match input.method.as_deref() {
            None | Some("GET") => PostbackMethod::Get,
            Some("POST") => PostbackMethod::Post,
            Some(_) => return Err(invalid("method", "must be GET or POST").into()),
        };
        let kind = EndpointKind::Postback { campaign_id, method };
        let existing = self.postback_urls(who).await?.into_iter().find(|e| same_scope(&e.kind, campaign_id));
        let mut endpoint = match &existing {
            Some(e) => e.clone(),
            None => Endpoint {
                id: WebhookId::new(),
                owner,
                url: String::new(),
                events: vec![],
                description: None,
                enabled: true,
                disabled_reason: None,
                secret: webhook::new_secret(),
                created_at: self.now(),
                consecutive_failures: 0,
                version: 0,
                kind: kind.clone(),
            },
        };
        endpoint.url = template;
        endpoint.events = events;
        endpoint.kind = kind;
        endpoint.enabled = true;
        endpoint.disabled_reason = None;
        endpoint.consecutive_failures = 0;
        endpoint.version += 1;
        let expected = existing.as_ref().map(|e| e.version);
        if !self.hooks.put_endpoint(&endpoint, expected).await? {
            return Err(Error::Conflict {
                code: "edit_conflict",
                message: "the postback URL changed meanwhile; retry".into(),
            });
        }
        Ok(endpoint)
    }

    pub async fn postback_urls(&self, who: &Principal) -> Result<Vec<Endpoint>> {
        let owner = Self::postback_owner(who)?;
        self.owned_endpoints(owner, false).await
    }

    /// Removes the postback URL of one campaign, or the affiliate-wide one.
    pub async fn delete_postback_url(&self, who: &Principal, campaign: Option<&str>) -> Result<()> {
        let campaign_id = self.postback_campaign(who, campaign).await?;
        let found = self.postback_urls(who).await?.into_iter().find(|e| same_scope(&e.kind, campaign_id));
        let found = found.ok_or_else(|| Error::NotFound("no postback URL is set for that scope".into()))?;
        Ok(self.hooks.delete_endpoint(found.id).await?)
    }
}

fn same_scope(kind: &EndpointKind, campaign: Option<CampaignId>) -> bool {
    matches!(kind, EndpointKind::Postback { campaign_id, .. } if *campaign_id == campaign)
}

/// The addresses `url`'s host stands for (a literal address is itself).
pub async fn resolve(url: &url::Url) -> std::result::Result<Vec<IpAddr>, String> {
    let port = url.port_or_known_default().unwrap_or(80);
    match url.host() {
        Some(url::Host::Ipv4(ip)) => Ok(vec![IpAddr::V4(ip)]),
        Some(url::Host::Ipv6(ip)) => Ok(vec![IpAddr::V6(ip)]),
        Some(url::Host::Domain(name)) => {
            let lookup = tokio::net::lookup_host((name, port));
            let found = tokio::time::timeout(std::time::Duration::from_secs(5), lookup)
                .await
                .map_err(|_| format!("looking up '{name}' timed out"))?
                .map_err(|e| format!("'{name}' does not resolve ({e})"))?;
            let addrs: Vec<IpAddr> = found.map(|a| a.ip()).collect();
            if addrs.is_empty() {
                return Err(format!("'{name}' does not resolve"));
            }
            Ok(addrs)
        }
        None => Err("has no host".into()),
    }
}
