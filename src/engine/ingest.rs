//! The three ingest paths: a click through `/r/{code}`, a conversion against a
//! click token, and a postback against a tracking code. Each resolves its
//! campaign without a store read where it can and hands the write to the
//! campaign's actor.

use std::net::IpAddr;
use std::time::Instant;

use tokio::sync::oneshot;

use super::campaign::{CampaignMsg, KeyedReply};
use super::guard::Context;
use super::Engine;
use crate::domain::caps::Claim;
use crate::domain::ids::*;
use crate::domain::keys::{KeyHash, Owner, Principal, Scope};
use crate::domain::model::*;
use crate::domain::money::Payout;
use crate::domain::redirect::append_query;
use crate::domain::subids::SubIds;
use crate::domain::token::{within_window, ClickClaims};
use crate::domain::validate::{self, invalid};
use crate::domain::{bot, payout};
use crate::error::{Error, Result};
use crate::metrics;
use crate::store::Keyed;

pub struct ClickInput<'a> {
    pub code: &'a str,
    pub ip: IpAddr,
    pub user_agent: &'a str,
    pub referer: &'a str,
    pub head: bool,
    /// The link's `sub1`…`sub5`, already cleaned (`SubIds::lenient`).
    pub subs: SubIds,
    /// The link's query carried a paid-traffic click id (`gclid`, …).
    pub paid: bool,
}

pub struct ConversionInput {
    pub click_id: Option<String>,
    pub email: Option<String>,
    pub properties: Option<serde_json::Map<String, serde_json::Value>>,
    /// The browser's `Origin` header, checked against the allowlist on the
    /// publishable-key path.
    pub origin: Option<String>,
    pub client: IpAddr,
    /// Hash of the key the caller presented (the abuse limit's bucket).
    pub key: KeyHash,
}

/// Who sent a conversion, and so which checks apply.
enum Caller {
    /// A secret key with `affiliate:write`: the advertiser's own backend.
    Server { advertiser: AdvertiserId },
    /// A publishable key from a page: origin allowlist, campaign guard, limit.
    Browser { advertiser: AdvertiserId, guard: Option<CampaignId> },
}

#[derive(Debug)]
pub enum ConversionAnswer {
    /// Recorded with its status: approved, held for review, or rejected.
    Recorded(Box<Conversion>),
    Duplicate(ConversionId),
    Ignored(&'static str),
}

pub struct PostbackInput {
    pub swarm_ref: Option<String>,
    pub external_id: Option<String>,
    pub event_type: Option<String>,
    pub revenue_cents: Option<i64>,
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Checked already (`SubIds::strict`).
    pub subs: SubIds,
}

#[derive(Debug)]
pub enum PostbackAnswer {
    Test {
        campaign: CampaignId,
        confirmed_at: u64,
    },
    Recorded(Lead),
    Duplicate(Lead),
    /// A `REFUND`: the lead's payout was reversed (or already was).
    Reversed {
        lead: Lead,
        payout: Payout,
    },
}

/// Which counter a keyed write's outcome goes to. Direct and referral leads
/// have their own (`metrics::lead`, `metrics::referral`), counted by callers.
#[derive(Clone, Copy)]
enum Path {
    Conversion,
    /// A conversion of a click flagged as a bot: counted with that reason.
    BotClickConversion,
    Postback,
    Lead,
}

impl Path {
    fn outcome(self, outcome: &'static str, reason: &'static str) {
        match self {
            Path::Conversion => metrics::keyed_outcome(false, outcome, reason),
            Path::BotClickConversion if reason == "none" => metrics::keyed_outcome(false, outcome, "bot_click"),
            Path::BotClickConversion => metrics::keyed_outcome(false, outcome, reason),
            Path::Postback => metrics::keyed_outcome(true, outcome, reason),
            Path::Lead => {}
        }
    }
}

impl Engine {
    /// Returns the redirect target. The click is queued for the campaign's next
    /// group commit; the visitor does not wait for it.
    pub async fn click(&self, input: ClickInput<'_>) -> Result<String> {
        let not_found = || Error::NotFound(format!("no active link '{}'", input.code));
        let code = self.catalog.code(input.code).await?.ok_or_else(not_found)?;
        let affiliate = code.affiliate_id.ok_or_else(not_found)?;
        let campaign = self.catalog.campaign(code.campaign_id).await?.ok_or_else(not_found)?;
        if campaign.status != CampaignStatus::Active || !campaign.admits(affiliate) {
            return Err(not_found());
        }
        // A disabled affiliate's (or advertiser's) links are dead. Cached,
        // so this costs two map lookups, and a store read every
        // `auth.revalidate_ms` per tenant.
        let (aff, adv) = (Owner::Affiliate(affiliate), Owner::Advertiser(campaign.advertiser_id));
        if self.catalog.disabled(aff).await || self.catalog.disabled(adv).await {
            return Err(not_found());
        }
        let flagged = input.head || bot::is_bot(input.user_agent);
        let (at, ip_hash) = (self.now(), self.hash_ip(input.ip));
        let window = campaign.rules.unique_click_window_seconds;
        let duplicate = !flagged && self.click_guard.repeat(&code.code, ip_hash, input.user_agent, at, window);
        // Only counted clicks take capacity; bots and repeats are never capped.
        let (capped, windows) = match flagged || duplicate {
            true => (false, Vec::new()),
            false => self.take_click(&campaign, affiliate, at).await?,
        };
        let click = Click {
            id: ClickId::new(),
            campaign_id: campaign.id,
            affiliate_id: affiliate,
            tracking_code: code.code.clone(),
            at,
            ip_hash,
            user_agent: truncate(input.user_agent, 512),
            referer: truncate(input.referer, 1024),
            flagged,
            subs: input.subs,
            duplicate,
            capped,
            paid_traffic: input.paid,
        };
        if capped {
            self.registry.send(campaign.id, CampaignMsg::Click(click, windows)).await?;
            metrics::click(flagged);
            return campaign.fallback_url.clone().ok_or_else(not_found);
        }
        let claims = ClickClaims {
            click: click.id,
            campaign: campaign.id,
            affiliate,
            issued_at: click.at,
            flagged,
            paid: click.paid_traffic,
        };
        // Without sub-IDs (the common case) the token lives on the stack.
        let (short, long);
        let token = if click.subs.is_empty() {
            short = self.tokens.sign_array(&claims);
            std::str::from_utf8(&short).expect("base64 is ASCII")
        } else {
            long = self.tokens.sign_with_subs(&claims, &click.subs);
            long.as_str()
        };
        self.registry.send(campaign.id, CampaignMsg::Click(click, windows)).await?;
        metrics::click(flagged);
        let promo = campaign.promo_code.as_deref();
        let params = [("irw_id", token), ("swarm_ref", code.code.as_str()), ("promo", promo.unwrap_or_default())];
        Ok(append_query(&campaign.landing_url, &params[..if promo.is_some() { 3 } else { 2 }]))
    }

    pub async fn convert(&self, who: &Principal, input: ConversionInput) -> Result<ConversionAnswer> {
        let caller = match who {
            Principal::Publishable { advertiser, campaign } => {
                Caller::Browser { advertiser: *advertiser, guard: *campaign }
            }
            _ => Caller::Server { advertiser: Self::conversion_server(who)? },
        };
        if matches!(caller, Caller::Browser { .. }) {
            let bucket = (input.key, super::limiter::client_network(input.client));
            self.limiter.take(bucket, Instant::now()).map_err(|retry_after| Error::RateLimited { retry_after })?;
        }
        let email = match (&caller, input.email.as_deref().map(|e| validate::email("email", e))) {
            (_, None) => None,
            (_, Some(Ok(e))) => Some(e),
            // A form's odd email must not cost the advertiser the attribution.
            (Caller::Browser { .. }, Some(Err(_))) => None,
            (Caller::Server { .. }, Some(Err(e))) => return Err(e.into()),
        };
        let props = input.properties.unwrap_or_default();
        let token = input.click_id.as_deref().map(str::trim).unwrap_or("");
        if token.is_empty() {
            return Ok(ignored("missing_token"));
        }
        let Ok((claims, subs)) = self.tokens.verify_with_subs(token) else {
            return Ok(ignored("bad_signature"));
        };
        let Some(campaign) = self.catalog.campaign(claims.campaign).await? else {
            return Ok(ignored("bad_signature"));
        };
        if let Some(reason) = self.refuse(&caller, &campaign, input.origin.as_deref())? {
            return Ok(self.ignored_for(campaign.id, reason).await);
        }
        let (fields, extra) =
            validate::split_fields("properties", &props, &campaign.field_mapping, self.config.field_limits())?;
        if !within_window(claims.issued_at, self.now(), campaign.attribution_window_days) {
            return Ok(self.ignored_for(campaign.id, "expired").await);
        }
        if campaign.status != CampaignStatus::Active {
            return Ok(self.ignored_for(campaign.id, "campaign_inactive").await);
        }
        let conversion = Conversion {
            id: ConversionId::new(),
            campaign_id: campaign.id,
            click_id: claims.click,
            affiliate_id: claims.affiliate,
            email,
            fields,
            extra,
            created_at: self.now(),
            payout_cents: match campaign.compensation_model {
                CompensationModel::Fixed => campaign.payout_cents.unwrap_or(0),
                CompensationModel::RevShare => 0,
            },
            bot_click: claims.flagged,
            subs,
            status: ConversionStatus::Approved,
            reason: None,
            flags: vec![],
            reviewed_at: None,
            counted: false,
        };
        let path = if claims.flagged { Path::BotClickConversion } else { Path::Conversion };
        let ctx = Context {
            seconds_since_click: Some(conversion.created_at.saturating_sub(claims.issued_at)),
            bot_click: claims.flagged,
            paid_traffic: claims.paid,
        };
        let (keyed, claim) = self.guard(&campaign, Keyed::Conversion(conversion), ctx).await?;
        match self.record(keyed, claim, path).await? {
            (true, Keyed::Conversion(c)) => Ok(ConversionAnswer::Recorded(Box::new(c))),
            (false, Keyed::Conversion(c)) => Ok(ConversionAnswer::Duplicate(c.id)),
            _ => unreachable!("a conversion key only ever holds a conversion"),
        }
    }

    /// The checks that depend on who is calling. A secret key of another
    /// advertiser is an authorization error; a page's key that does not fit
    /// the click is a lenient `ignored`, because the snippet must never
    /// surface errors.
    fn refuse(&self, caller: &Caller, campaign: &Campaign, origin: Option<&str>) -> Result<Option<&'static str>> {
        match caller {
            Caller::Server { advertiser } if campaign.advertiser_id != *advertiser => {
                Err(Error::Forbidden("this click belongs to another advertiser's campaign".into()))
            }
            Caller::Server { .. } => Ok(None),
            Caller::Browser { advertiser, guard } => {
                if campaign.advertiser_id != *advertiser || guard.is_some_and(|g| g != campaign.id) {
                    return Ok(Some("campaign_mismatch"));
                }
                Ok((!origin_allowed(&campaign.allowed_origins, origin)).then_some("origin_not_allowed"))
            }
        }
    }

    /// Counts an ignored conversion in its campaign's stats (best effort: the
    /// answer does not wait for it, and a full queue only loses the count).
    async fn ignored_for(&self, campaign: CampaignId, reason: &'static str) -> ConversionAnswer {
        let _ = self.registry.send(campaign, CampaignMsg::Ignored(reason)).await;
        ignored(reason)
    }

    /// The advertiser a key may send postbacks for (batches ask once, up front).
    pub fn postback_sender(who: &Principal) -> Result<AdvertiserId> {
        let Principal::Advertiser { id, .. } = who else {
            return Err(Error::Forbidden("postbacks need an advertiser key".into()));
        };
        if !who.has(Scope::Postbacks) {
            return Err(Error::Forbidden("this key lacks the postbacks scope".into()));
        }
        Ok(*id)
    }

    /// Whether a key may send server-to-server conversions (secret key with
    /// `affiliate:write`; publishable keys are the browser's).
    pub fn conversion_server(who: &Principal) -> Result<AdvertiserId> {
        match who {
            Principal::Advertiser { id, .. } if who.has(Scope::AffiliateWrite) => Ok(*id),
            _ => Err(Error::Forbidden("this key lacks the affiliate:write scope".into())),
        }
    }

    pub async fn postback(&self, who: &Principal, input: PostbackInput) -> Result<PostbackAnswer> {
        let advertiser = &Self::postback_sender(who)?;
        let swarm_ref = required(input.swarm_ref, "swarm_ref")?;
        let external_id = required(input.external_id, "externalId")?;
        if external_id.chars().count() > self.config.limits.max_external_id_len {
            let max = self.config.limits.max_external_id_len;
            return Err(invalid("externalId", format!("must be at most {max} characters")).into());
        }
        if external_id.starts_with(INTERNAL_KEY_PREFIX) {
            return Err(invalid("externalId", format!("must not start with '{INTERNAL_KEY_PREFIX}' (reserved)")).into());
        }
        let event = required(input.event_type, "eventType")?;
        let event = match EventType::parse(&event) {
            Some(t) => Some(t),
            None if event == EventType::REFUND => None,
            None => return Err(invalid("eventType", format!("must be one of {}", EventType::ALL)).into()),
        };
        let revenue = payout::revenue_cents(input.revenue_cents)?;
        let code = self
            .catalog
            .code(&swarm_ref)
            .await?
            .ok_or_else(|| Error::NotFound(format!("unknown swarm_ref '{}'", validate::excerpt(&swarm_ref))))?;
        let campaign = self
            .catalog
            .campaign(code.campaign_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("unknown swarm_ref '{}'", validate::excerpt(&swarm_ref))))?;
        if campaign.advertiser_id != *advertiser {
            return Err(Error::Forbidden("this swarm_ref belongs to another advertiser's campaign".into()));
        }
        // A refund undoes an earlier lead, so it is answered before the
        // dedup path (which would take it for a repeat of that lead), in any
        // campaign state, and whatever revenue it carries.
        let Some(event_type) = event else {
            return self.refund(&campaign, &external_id).await;
        };
        let payout_cents = payout::payout_for(&campaign, revenue)?;
        let (fields, extra) = validate::split_fields(
            "metadata",
            &input.metadata.unwrap_or_default(),
            &campaign.field_mapping,
            self.config.field_limits(),
        )?;
        let Some(affiliate) = code.affiliate_id else {
            return self.confirm_tracking(&campaign).await;
        };
        if campaign.status != CampaignStatus::Active {
            metrics::keyed_outcome(true, "rejected", "campaign_inactive");
            return Err(Error::Conflict {
                code: "campaign_inactive",
                message: "the campaign is not active; activate it first".into(),
            });
        }
        let lead = Lead {
            event_type,
            revenue_cents: revenue,
            payout_cents,
            fields,
            extra,
            subs: input.subs,
            ..Lead::verified(campaign.id, affiliate, code.code.clone(), external_id, self.now())
        };
        let (keyed, claim) = self.guard(&campaign, Keyed::Lead(lead), Context::default()).await?;
        match self.record(keyed, claim, Path::Postback).await? {
            (true, Keyed::Lead(l)) => Ok(PostbackAnswer::Recorded(l)),
            (false, Keyed::Lead(l)) => Ok(PostbackAnswer::Duplicate(l)),
            _ => unreachable!("a lead key only ever holds a lead"),
        }
    }

    /// `eventType: "REFUND"`: reverses the payout of the lead the original
    /// postback recorded under this externalId.
    async fn refund(&self, campaign: &Campaign, external_id: &str) -> Result<PostbackAnswer> {
        let Some(lead) = self.store.get_lead(campaign.id, external_id).await? else {
            metrics::keyed_outcome(true, "rejected", "unknown_external_id");
            return Err(Error::NotFound(format!(
                "no conversion with this externalId ('{}') in this campaign; nothing to refund",
                validate::excerpt(external_id)
            )));
        };
        let payout = self.money.reverse(&Keyed::Lead(lead.clone()), "refund").await?;
        metrics::keyed_outcome(true, "refunded", "none");
        Ok(PostbackAnswer::Reversed { lead, payout })
    }

    /// Records a direct or referral lead through its campaign's actor (the
    /// same dedup path as postbacks) and waits until it is durable. Returns
    /// (newly recorded?, the lead on file under its key).
    /// With `guard`, the campaign's rules and caps apply (referral
    /// confirmations); direct leads have their review instead.
    pub(crate) async fn record_lead(&self, lead: Lead, guard: Option<&Campaign>) -> Result<(bool, Lead)> {
        let (keyed, claim) = match guard {
            Some(campaign) => self.guard(campaign, Keyed::Lead(lead), Context::default()).await?,
            None => (Keyed::Lead(lead), None),
        };
        match self.record(keyed, claim, Path::Lead).await? {
            (fresh, Keyed::Lead(l)) => Ok((fresh, l)),
            _ => unreachable!("a lead key only ever holds a lead"),
        }
    }

    /// A postback on the test code proves the integration: it stamps
    /// `trackingConfirmedAt` (once) and records no lead.
    async fn confirm_tracking(&self, campaign: &Campaign) -> Result<PostbackAnswer> {
        let now = self.now();
        let saved = self
            .catalog
            .update_campaign(campaign.id, |c| {
                c.tracking_confirmed_at.get_or_insert(now);
                Ok::<_, Error>(())
            })
            .await?
            .ok_or_else(|| Error::NotFound("the campaign is gone".into()))?;
        metrics::keyed_outcome(true, "test", "none");
        Ok(PostbackAnswer::Test { campaign: campaign.id, confirmed_at: saved.tracking_confirmed_at.unwrap_or(now) })
    }

    /// Sends a keyed write to its campaign's actor and waits until it is
    /// durable. Returns (newly recorded?, the record on file).
    async fn record(&self, keyed: Keyed, claim: Option<Claim>, path: Path) -> Result<(bool, Keyed)> {
        let (tx, rx) = oneshot::channel();
        let campaign = keyed.campaign();
        self.registry.send(campaign, CampaignMsg::Keyed(keyed, claim, tx.into())).await.inspect_err(|_| {
            path.outcome("rejected", "overloaded");
        })?;
        let reply = rx
            .await
            .map_err(|_| Error::Unavailable("the campaign actor stopped; nothing was recorded, retry".into()))?;
        match reply {
            KeyedReply::Recorded(k) => {
                path.outcome("recorded", "none");
                metrics::conversion_status(
                    k.status(),
                    k.reason().filter(|_| k.status() == "rejected").unwrap_or("none"),
                );
                super::guard::log_outcome(&k);
                Ok((true, k))
            }
            KeyedReply::Duplicate(k) => {
                path.outcome("duplicate", "none");
                Ok((false, k))
            }
            KeyedReply::Failed(e) => {
                path.outcome("rejected", "store_unavailable");
                Err(e.into())
            }
        }
    }
}

fn ignored(reason: &'static str) -> ConversionAnswer {
    metrics::keyed_outcome(false, "ignored", reason);
    ConversionAnswer::Ignored(reason)
}

/// An empty allowlist accepts any origin; otherwise the browser's `Origin`
/// must be on it (a call without one, i.e. not from a browser page, is not).
pub fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    allowed.is_empty()
        || origin.is_some_and(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(o.trim_end_matches('/'))))
}

fn required(value: Option<String>, field: &str) -> Result<String> {
    match value.map(|v| v.trim().to_string()) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(invalid(field, "is required").into()),
    }
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
