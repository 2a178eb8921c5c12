//! The guards on the money before a record is written: the campaign's fraud
//! rules decide its status (approved, held for review, rejected) and its
//! caps the claim the store checks in the same commit as the record.

use super::Engine;
use crate::domain::caps::Claim;
use crate::domain::ids::AffiliateId;
use crate::domain::model::*;
use crate::domain::rules::{self, Action, Facts, Reason, Verdict};
use crate::error::Result;
use crate::metrics;
use crate::store::Keyed;

/// What the rules know beyond the record itself.
#[derive(Default)]
pub struct Context {
    pub seconds_since_click: Option<u64>,
    pub bot_click: bool,
    pub paid_traffic: bool,
}

impl Engine {
    /// The record with the status the rules give it, and the cap claim it
    /// makes (none when rejected: a rejected record takes no capacity).
    pub(crate) async fn guard(
        &self,
        campaign: &Campaign,
        keyed: Keyed,
        ctx: Context,
    ) -> Result<(Keyed, Option<Claim>)> {
        let (affiliate, email) = match &keyed {
            Keyed::Conversion(c) => (c.affiliate_id, c.email.clone()),
            Keyed::Lead(l) => (l.affiliate_id, lead_email(l)),
        };
        let affiliate_email = match (&email, campaign.rules.self_referral) {
            (Some(_), Action::Flag | Action::Reject) => self.affiliate_email(affiliate).await?,
            _ => None,
        };
        let facts = Facts {
            seconds_since_click: ctx.seconds_since_click,
            bot_click: ctx.bot_click,
            paid_traffic: ctx.paid_traffic,
            email: email.as_deref(),
            affiliate_email: affiliate_email.as_deref(),
        };
        let verdict = if campaign.admits(affiliate) {
            rules::judge(&campaign.rules, &facts)
        } else {
            Verdict::Rejected { reason: Reason::AffiliateRemoved, flags: Vec::new() }
        };
        count_hits(&campaign.rules, &verdict);
        let keyed = with_verdict(keyed, &verdict);
        let claim = match verdict {
            Verdict::Rejected { .. } => None,
            _ => campaign.claim(affiliate, keyed.created_at(), keyed.cents()),
        };
        Ok((keyed, claim))
    }

    async fn affiliate_email(&self, id: AffiliateId) -> Result<Option<std::sync::Arc<str>>> {
        Ok(self.catalog.affiliate_email(id).await?)
    }
}

/// A lead's email: the mapped `email` field, if the advertiser sent one.
fn lead_email(lead: &Lead) -> Option<String> {
    let email = lead.fields.get("email").or_else(|| lead.extra.get("email"))?.as_str()?;
    crate::domain::validate::email("email", email).ok()
}

fn names(reasons: &[Reason]) -> Vec<String> {
    reasons.iter().map(|r| r.as_str().to_string()).collect()
}

fn with_verdict(mut keyed: Keyed, verdict: &Verdict) -> Keyed {
    match (&mut keyed, verdict) {
        (_, Verdict::Approved) => {}
        (Keyed::Conversion(c), Verdict::Flagged(flags)) => {
            c.status = ConversionStatus::PendingReview;
            c.flags = names(flags);
        }
        (Keyed::Conversion(c), Verdict::Rejected { reason, flags }) => {
            c.status = ConversionStatus::Rejected;
            c.reason = Some(reason.as_str().to_string());
            c.flags = names(flags);
        }
        // A direct lead waits for review anyway; its flags tell the reviewer why else.
        (Keyed::Lead(l), Verdict::Flagged(flags)) => {
            l.status = LeadStatus::PendingReview;
            l.flags = names(flags);
        }
        (Keyed::Lead(l), Verdict::Rejected { reason, flags }) => {
            l.status = LeadStatus::Rejected;
            l.rejection_reason = Some(reason.as_str().to_string());
            l.flags = names(flags);
        }
    }
    keyed
}

fn count_hits(rules: &rules::Rules, verdict: &Verdict) {
    let hits = match verdict {
        Verdict::Approved => return,
        Verdict::Flagged(flags) => flags,
        Verdict::Rejected { flags, .. } => flags,
    };
    for reason in hits {
        let action = match action_of(rules, *reason) {
            Action::Reject => "reject",
            _ => "flag",
        };
        metrics::rule_hit(reason.as_str(), action);
    }
}

fn action_of(rules: &rules::Rules, reason: Reason) -> Action {
    match reason {
        Reason::TooFast => rules.min_seconds_to_convert.action,
        Reason::TooLate => rules.max_seconds_to_convert.action,
        Reason::SelfReferral => rules.self_referral,
        Reason::DisposableEmail => rules.disposable_email,
        Reason::PaidTraffic => rules.paid_traffic_click_ids,
        Reason::BotClick => rules.bot_click,
        Reason::CapReached | Reason::AffiliateRemoved => Action::Reject,
    }
}

/// The info log line for a record that was not approved: its codes, never
/// the email itself.
pub fn log_outcome(keyed: &Keyed) {
    let flags = match keyed {
        Keyed::Conversion(c) => &c.flags,
        Keyed::Lead(l) => &l.flags,
    };
    let status = keyed.status();
    if status != "approved" {
        tracing::info!(
            record = %keyed.id_text(),
            campaign = %keyed.campaign(),
            status,
            reason = keyed.reason().unwrap_or(""),
            flags = %flags.join(","),
            "conversion not approved"
        );
    }
}

impl Engine {
    /// Takes one click of each click cap that applies, or none if one is
    /// full: `(capped, keys of the windows counted against)`. A window's
    /// stored count is read on its first click here and refreshed in the
    /// background every few seconds (`clickguard`).
    pub(crate) async fn take_click(
        &self,
        campaign: &Campaign,
        affiliate: AffiliateId,
        now: u64,
    ) -> Result<(bool, Vec<String>)> {
        let windows = self.click_guard.windows(campaign, affiliate, now);
        if windows.is_empty() {
            return Ok((false, Vec::new()));
        }
        if windows.iter().any(|w| w.count.stale(now)) {
            self.refresh_click_counts(campaign.id, &windows, now).await?;
        }
        for (i, w) in windows.iter().enumerate() {
            if !w.count.try_take(w.limit) {
                windows[..i].iter().for_each(|w| w.count.give_back());
                metrics::cap_reached("clicks", w.window.period());
                return Ok((true, Vec::new()));
            }
        }
        Ok((false, windows.into_iter().map(|w| w.key).collect()))
    }

    /// Folds the stored counts in: at once for a window never read (so a
    /// restarted node does not start from zero), else in the background.
    async fn refresh_click_counts(
        &self,
        campaign: crate::domain::ids::CampaignId,
        windows: &[super::clickguard::Capped],
        now: u64,
    ) -> Result<()> {
        let counts: Vec<(String, std::sync::Arc<super::clickguard::Count>)> =
            windows.iter().map(|w| (w.key.clone(), w.count.clone())).collect();
        let first = windows.iter().any(|w| w.count.never_read());
        counts.iter().for_each(|(_, c)| c.mark_reading(now));
        let store = self.store.clone();
        let read = async move {
            let stats = store.get_stats(campaign).await?;
            for (key, count) in counts {
                count.fold(stats.click_windows.get(&key).copied().unwrap_or(0), now);
            }
            Ok::<_, crate::store::StoreError>(())
        };
        if first {
            read.await?;
        } else {
            tokio::spawn(async move {
                if let Err(e) = read.await {
                    tracing::debug!(error = %e, "could not refresh click cap counts");
                }
            });
        }
        Ok(())
    }
}
