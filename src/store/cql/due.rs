//! The due-time index on CQL: `due` rows in hour buckets per queue, a
//! directory of the buckets that ever held an item (`due_buckets`), and a
//! per-queue watermark below which no item is left (`due_watermark`).
//!
//! A poll reads the watermark, lists the directory from there up to
//! `up_to`'s hour, and reads those buckets oldest first; so it never walks
//! empty hours, and an hour whose items were all removed is skipped once the
//! watermark passes it. Nothing is lost to a raise racing a write:
//! - a poll raises the watermark only to the first bucket it found non-empty,
//!   never past `up_to`'s hour nor closer than `POLL_LAG` hours to the wall
//!   clock, and only `IF version` is still what it read before scanning;
//! - a write into an hour older than `WRITE_LAG` hours first writes the item,
//!   then lowers the watermark to that hour and bumps its version (even when
//!   it was already low enough), so a poll that scanned before the item
//!   landed cannot raise past it afterwards;
//! - every other write lands at or above any possible watermark (clocks may
//!   disagree by up to an hour), so it is one blind insert.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::join_all;
use futures::StreamExt;

use super::ledger_rows::*;
use super::{schema, ScyllaStore};
use crate::store::{Due, DueItem, Queue, StoreError, StoreResult};

pub const BUCKET_SECS: u64 = 3600;
const POLL_LAG: i64 = 2;
const WRITE_LAG: i64 = 1;
/// Compare-and-set rounds before giving up on a contended row.
pub const MAX_ROUNDS: usize = 64;

pub fn bucket(at: u64) -> i64 {
    (at / BUCKET_SECS) as i64
}

fn at_i64(at: u64) -> i64 {
    i64::try_from(at).unwrap_or(i64::MAX)
}

impl ScyllaStore {
    pub(super) async fn put_due_items(&self, items: &[Due]) -> StoreResult<()> {
        let st = &self.st.ledger;
        let buckets: BTreeSet<(Queue, i64)> = items.iter().map(|d| (d.queue, bucket(d.at))).collect();
        let unseen = self.due_listed.unlisted(buckets.iter().copied());
        // The directory row before the item: an item is never in an unlisted hour.
        let dirs = unseen.iter().map(|(q, b)| self.exec(&st.insert_due_bucket, (q.as_str(), *b)));
        join_all(dirs).await.into_iter().try_for_each(|r| r.map(drop))?;
        self.due_listed.mark(&unseen);
        let writes = items
            .iter()
            .map(|d| self.exec(&st.insert_due, (d.queue.as_str(), bucket(d.at), at_i64(d.at), d.item.key())));
        join_all(writes).await.into_iter().try_for_each(|r| r.map(drop))?;
        let now = bucket(crate::domain::unix_now());
        let mut oldest: BTreeMap<Queue, i64> = BTreeMap::new();
        for (q, b) in buckets.into_iter().filter(|(_, b)| *b < now - WRITE_LAG) {
            oldest.entry(q).and_modify(|o| *o = (*o).min(b)).or_insert(b);
        }
        for (queue, b) in oldest {
            self.lower_watermark(queue, b).await?;
        }
        Ok(())
    }

    pub(super) async fn remove_due_item(&self, d: &Due) -> StoreResult<()> {
        let key = (d.queue.as_str(), bucket(d.at), at_i64(d.at), d.item.key());
        self.exec(&self.st.ledger.delete_due, key).await.map(drop)
    }

    pub(super) async fn due_items(&self, queue: Queue, up_to: u64, limit: usize) -> StoreResult<Vec<Due>> {
        if limit == 0 {
            return Ok(vec![]);
        }
        let st = &self.st.ledger;
        let (q, up) = (queue.as_str(), bucket(up_to));
        let mark = self.watermark(queue).await?;
        let from = mark.map_or(0, |(b, _)| b);
        if from > up {
            return Ok(vec![]);
        }
        let pager = self.session.execute_iter(st.select_due_buckets.clone(), (q, from, up)).await?;
        let mut dirs = pager.rows_stream::<BucketRow>()?;
        let mut out = Vec::new();
        let mut first_full = None;
        while let Some(dir) = dirs.next().await {
            let b = dir?.bucket;
            let want = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
            let rows = self.exec(&st.select_due, (q, b, at_i64(up_to), want)).await?;
            let rows = rows.into_rows_result()?;
            for row in rows.rows::<DueRow>()? {
                let row = row?;
                first_full.get_or_insert(b);
                // An unreadable key is skipped rather than wedging the whole queue.
                if let Some(item) = DueItem::parse(&row.item) {
                    out.push(Due::new(queue, row.at.max(0) as u64, item));
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        let target = first_full.unwrap_or(up).min(bucket(crate::domain::unix_now()) - POLL_LAG);
        if target > from {
            // Losing this race only means the next poll starts lower.
            self.set_watermark(queue, mark, target).await?;
        }
        Ok(out)
    }

    async fn watermark(&self, queue: Queue) -> StoreResult<Option<(i64, i64)>> {
        let rows = self.exec(&self.st.ledger.select_watermark, (queue.as_str(),)).await?;
        let row: Option<WatermarkRow> = rows.into_rows_result()?.maybe_first_row()?;
        Ok(row.map(|r| (r.bucket.unwrap_or(0), r.version.unwrap_or(0))))
    }

    async fn set_watermark(&self, queue: Queue, read: Option<(i64, i64)>, to: i64) -> StoreResult<bool> {
        let st = &self.st.ledger;
        let result = match read {
            None => self.exec(&st.insert_watermark_if_absent, (queue.as_str(), to)).await?,
            Some((_, v)) => self.exec(&st.update_watermark_if, (to, v + 1, queue.as_str(), v)).await?,
        };
        schema::applied(result)
    }

    async fn lower_watermark(&self, queue: Queue, to: i64) -> StoreResult<()> {
        for _ in 0..MAX_ROUNDS {
            let read = self.watermark(queue).await?;
            let to = read.map_or(to, |(b, _)| b.min(to));
            if self.set_watermark(queue, read, to).await? {
                return Ok(());
            }
        }
        Err(StoreError::Failed(format!("the {} queue's watermark stayed contended; retry", queue.as_str())))
    }
}
