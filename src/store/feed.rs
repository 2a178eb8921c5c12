//! The change feed: what the store committed, read back in commit order from
//! a cursor. The webhook outbox and the report rollups of later issues
//! follow it instead of writing rows of their own per event.
//!
//! - **Embedded:** one `changes` row per change, numbered in the same redb
//!   transaction as its cause, so the feed holds exactly what committed, in
//!   commit order, once each. The cursor is the last number read.
//! - **CQL** has no global order. A change row is written *before* its
//!   cause's conditional insert (as the money path's intents are), in a
//!   partition per shard and minute; a read walks each shard in id order up
//!   to `now - LAG_SECS` (so clocks must agree within that) and keeps only
//!   the rows whose cause is stored: a record whose stored id is the row's.
//!   A row whose record is missing holds its shard back for
//!   `GRACE_SECS` (the insert may still be in flight) and is then passed
//!   over. The cursor is a position per shard. Order is per shard, and a
//!   record's changes all fall in one shard.
//!
//! On both, a change carries a stable `id`, so a consumer that saves its
//! cursor after acting on a page acts on each change at least once and can
//! tell a repeat. Changes are kept `retention.change_days` (default 7), then
//! dropped (TTL on CQL).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Keyed, StoreResult};
use crate::domain::model::{Campaign, Conversion, ConversionStatus, Lead, LeadStatus};
use crate::domain::money::{Move, Payout, Step};
use crate::domain::referral::{Referral, ReferralStatus};

/// CQL: a read stops this far behind the wall clock, so a node whose clock
/// runs up to this much behind never writes below a cursor already passed.
pub const LAG_SECS: u64 = 5;
/// CQL: how long a change row waits for its cause to be stored.
pub const GRACE_SECS: u64 = 120;
/// CQL: change rows are spread over this many partitions per minute.
pub const SHARDS: u32 = 16;

/// One committed change.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Change {
    /// Stable across reads. A recorded record's change has the record's id;
    /// the others a fresh time-ordered id, minted when the change is made
    /// (on CQL that places it at the feed's head, never behind a cursor).
    pub id: u128,
    /// When the cause happened (unix seconds).
    pub at: u64,
    pub event: ChangeEvent,
}

/// What changed. Each kind after `Recorded` is written by the store method
/// that makes the change: in its transaction (embedded), or before its
/// conditional write and confirmed against the stored object when read (CQL).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ChangeEvent {
    /// A keyed event went in at intake (a click's conversion, a postback's lead).
    Recorded { record: Keyed },
    /// A direct lead's review decided it: verified or rejected.
    Reviewed { lead: Lead },
    /// A click conversion held for review was approved or rejected.
    ConversionReviewed { conversion: Conversion },
    /// A payout took a step (escrow, release, credit, cancel, clawback).
    Moved { payout: Payout, step: Step },
    /// A referral expired unconfirmed.
    Expired { referral: Referral },
    /// A campaign's test postback confirmed its tracking.
    TrackingConfirmed { campaign: Campaign },
}

impl Change {
    pub fn recorded(record: &Keyed) -> Self {
        let (id, at) = match record {
            Keyed::Conversion(c) => (c.id.0, c.created_at),
            Keyed::Lead(l) => (l.id.0, l.created_at),
        };
        Self { id, at, event: ChangeEvent::Recorded { record: record.clone() } }
    }

    /// Any other change, made now, at `at` (the engine's time of it).
    pub fn new(at: u64, event: ChangeEvent) -> Self {
        Self { id: crate::domain::ids::time_ordered_id(), at, event }
    }

    /// A lead's review, if this replacement of `before` is one.
    pub fn review(lead: &Lead, before: LeadStatus) -> Option<Self> {
        let decided = matches!(lead.status, LeadStatus::Verified | LeadStatus::Rejected);
        (decided && before == LeadStatus::PendingReview).then(|| {
            Self::new(lead.reviewed_at.unwrap_or(lead.created_at), ChangeEvent::Reviewed { lead: lead.clone() })
        })
    }

    /// A held conversion's review decision, if this replacement is one.
    pub fn conversion_review(c: &Conversion, before: ConversionStatus) -> Option<Self> {
        let decided = c.status != ConversionStatus::PendingReview;
        (decided && before == ConversionStatus::PendingReview).then(|| {
            Self::new(c.reviewed_at.unwrap_or(c.created_at), ChangeEvent::ConversionReviewed { conversion: c.clone() })
        })
    }

    /// A referral's expiry, if this replacement is one.
    pub fn expiry(referral: &Referral) -> Option<Self> {
        (referral.status == ReferralStatus::Expired)
            .then(|| Self::new(referral.expires_at, ChangeEvent::Expired { referral: referral.clone() }))
    }

    pub fn moved(mv: &Move) -> Self {
        let p = &mv.after;
        Self::new(p.step_at(mv.step).unwrap_or(p.created_at), ChangeEvent::Moved { payout: p.clone(), step: mv.step })
    }

    /// Tracking confirmation, if `campaign` replaces one (`before`) that had none.
    pub fn tracking(campaign: &Campaign, before: Option<&Campaign>) -> Option<Self> {
        let confirmed = campaign.tracking_confirmed_at?;
        before
            .is_some_and(|b| b.tracking_confirmed_at.is_none())
            .then(|| Self::new(confirmed, ChangeEvent::TrackingConfirmed { campaign: campaign.clone() }))
    }
}

/// Where a reader is: the last position read, per shard (the embedded
/// store has one shard). The default reads from the oldest kept change.
/// Opaque to callers; store it as its bytes (`to_bytes`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedCursor(pub BTreeMap<u32, u128>);

impl FeedCursor {
    pub fn at(&self, shard: u32) -> u128 {
        self.0.get(&shard).copied().unwrap_or(0)
    }

    /// Compact bytes for a URL: per shard, its number (2 bytes) and
    /// position (16), big-endian. Sixteen shards: 288 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * 18);
        for (shard, at) in &self.0 {
            out.extend_from_slice(&(*shard as u16).to_be_bytes());
            out.extend_from_slice(&at.to_be_bytes());
        }
        out
    }

    /// The inverse of [`Self::to_bytes`]; `None` for bytes it never made.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() % 18 != 0 {
            return None;
        }
        let mut cursor = BTreeMap::new();
        for entry in bytes.chunks_exact(18) {
            let shard = u32::from(u16::from_be_bytes(entry[..2].try_into().ok()?));
            cursor.insert(shard, u128::from_be_bytes(entry[2..].try_into().ok()?));
        }
        Some(Self(cursor))
    }
}

#[derive(Clone, Debug, Default)]
pub struct FeedPage {
    pub changes: Vec<Change>,
    /// Pass back for the next page (also when `changes` is empty).
    pub next: FeedCursor,
}

#[async_trait]
pub trait Feed: Send + Sync + 'static {
    /// Up to `limit` changes after `after`, oldest first (per shard on CQL).
    /// `now` (unix seconds) bounds what CQL may return yet.
    async fn changes(&self, after: &FeedCursor, now: u64, limit: usize) -> StoreResult<FeedPage>;
    /// Drops changes older than `keep_days` before `now`: up to `limit`
    /// rows per call on the embedded store (call again while it returns
    /// `limit`); CQL rows carry the retention as their TTL (returns 0).
    async fn expire_changes(&self, keep_days: u32, now: u64, limit: usize) -> StoreResult<usize>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_its_bytes_and_odd_bytes_are_no_cursor() {
        let cursor = FeedCursor((0..SHARDS).map(|s| (s, u128::MAX - u128::from(s))).collect());
        assert_eq!(cursor.to_bytes().len(), 18 * SHARDS as usize);
        assert_eq!(FeedCursor::from_bytes(&cursor.to_bytes()), Some(cursor));
        assert_eq!(FeedCursor::from_bytes(&[]), Some(FeedCursor::default()));
        assert_eq!(FeedCursor::from_bytes(b"nope"), None);
    }
}
