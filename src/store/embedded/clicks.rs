//! The click log, outside redb: segment files in `<data dir>/clicks/`
//! (format in `segment.rs`), appended by a thread of their own that folds
//! whatever batches are waiting into one `fdatasync`. A click costs no
//! B-tree insert, no copied page and no redb commit.
//!
//! Counting stays exact across crashes: each durable append leaves its
//! counts in memory (`Pending`), and once a second the redb writer moves
//! them into the stats table together with the log position they cover (a
//! checkpoint, `meta` table). Opening the store replays the records after
//! the checkpoint, truncates a torn tail and checkpoints again; reads of
//! the stats add the counts the snapshot's checkpoint does not cover yet.
//!
//! A segment holds the clicks of one UTC day (by click id), so retention
//! deletes whole files and a lookup by id scans one day. A new segment
//! starts at a new day, after 1 GiB, when its string dictionary reaches
//! `segment::DICT_MAX_BYTES`, and at every start (the encoder's dictionary
//! is not rebuilt).

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub(super) use super::clickfiles::Segments;
use super::clickfiles::{list, DIR};
use super::segment::{self, Decoder};
use super::writer::{Job, WriteJob};
use super::*;

const MAX_FOLD: usize = 256;
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Click ids remembered as already logged for a batch whose redb half
/// failed; beyond this (a store failing for a long time) the set is
/// dropped and a retry may log such clicks twice.
const RETRIED_MAX: usize = 1 << 20;
const SEGMENT_KEY: &str = "click_log_segment";
const OFFSET_KEY: &str = "click_log_offset";

/// A place in the log: the end of a record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Pos {
    // Ordered segment first: appends only ever move forward.
    pub segment: u64,
    pub offset: u64,
}

/// Durable counts not yet in the stats table, and what the appender and
/// the checkpoint share.
#[derive(Default)]
pub(super) struct Pending {
    entries: Vec<(Pos, CampaignId, CampaignStats)>,
    checkpointing: bool,
    retried: HashSet<ClickId>,
}

type Shared = Arc<Mutex<Pending>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Pending> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

enum Msg {
    Append(Arc<Batch>, oneshot::Sender<StoreResult<()>>),
    Expire { before_day: u64, limit: usize, reply: oneshot::Sender<StoreResult<usize>> },
}

pub(super) struct ClickLog {
    reader: LogReader,
    tx: mpsc::SyncSender<Msg>,
    thread: JoinHandle<()>,
}

/// The reads, for a blocking-pool thread.
#[derive(Clone)]
pub(super) struct LogReader {
    dir: PathBuf,
    shared: Shared,
}

impl ClickLog {
    /// Starts the appender; `next_seq` comes from [`recover`].
    pub fn start(
        data_dir: &Path,
        next_seq: u64,
        queue: usize,
        store_writer: mpsc::SyncSender<Job>,
        db: Arc<file::Db>,
        faults: Option<Arc<DiskFaults>>,
    ) -> StoreResult<Self> {
        let dir = data_dir.join(DIR);
        let shared = Shared::default();
        let segments = Segments::new(dir.clone(), next_seq, faults);
        let appender = Appender { segments, shared: shared.clone(), store_writer, db, last_checkpoint: Instant::now() };
        let (tx, rx) = mpsc::sync_channel(queue.max(1));
        let thread = std::thread::Builder::new().name("click-writer".into()).spawn(move || appender.run(rx))?;
        Ok(Self { reader: LogReader { dir, shared }, tx, thread })
    }

    pub fn reader(&self) -> LogReader {
        self.reader.clone()
    }

    pub fn is_running(&self) -> bool {
        !self.thread.is_finished()
    }

    /// Durably logs the batch's clicks (those not logged by an earlier try).
    pub async fn append(&self, batch: Arc<Batch>) -> StoreResult<()> {
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Append(batch, reply)).await?;
        answer.await.map_err(|_| StoreError::Unavailable("the click writer dropped the batch".into()))?
    }

    /// The batch's clicks are logged but the batch failed: its retry must
    /// not log (and count) them again.
    pub fn mark_retried(&self, clicks: &[Click]) {
        let mut pending = lock(&self.reader.shared);
        if pending.retried.len() + clicks.len() > RETRIED_MAX {
            tracing::warn!("too many clicks awaiting a retry; a retry may now log some twice");
            pending.retried.clear();
        }
        pending.retried.extend(clicks.iter().map(|c| c.id));
    }

    /// Deletes up to `limit` segments of days before `before_day`.
    pub async fn expire(&self, before_day: u64, limit: usize) -> StoreResult<usize> {
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Expire { before_day, limit, reply }).await?;
        answer.await.map_err(|_| StoreError::Unavailable("the click writer dropped the request".into()))?
    }

    async fn send(&self, msg: Msg) -> StoreResult<()> {
        let stopped = || StoreError::Unavailable("the click writer has stopped".into());
        match self.tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(mpsc::TrySendError::Full(msg)) => {
                let tx = self.tx.clone();
                tokio::task::spawn_blocking(move || tx.send(msg)).await?.map_err(|_| stopped())
            }
            Err(mpsc::TrySendError::Disconnected(_)) => Err(stopped()),
        }
    }
}

impl LogReader {
    /// A campaign's counters as of one consistent snapshot: the stats row
    /// plus the durable counts its checkpoint does not cover. The snapshot
    /// is taken under the lock the checkpoint's pruning needs, so no count
    /// is seen twice or missed.
    pub fn stats(&self, db: &redb::Database, campaign: CampaignId) -> StoreResult<CampaignStats> {
        let (txn, extra) = {
            let pending = lock(&self.shared);
            let txn = db.begin_read()?;
            let at = checkpoint(&txn.open_table(format::META)?)?;
            let mut extra = CampaignStats::default();
            for (_, _, delta) in pending.entries.iter().filter(|(pos, c, _)| *pos > at && *c == campaign) {
                extra.add(delta);
            }
            (txn, extra)
        };
        let mut stats: CampaignStats = get_json(&txn, STATS, campaign.0)?.unwrap_or_default();
        stats.add(&extra);
        Ok(stats)
    }

    /// A click by id: the segments of its day, newest first (tests and
    /// audits; nothing on the request path reads clicks back).
    pub fn find(&self, campaign: CampaignId, id: ClickId) -> StoreResult<Option<Click>> {
        let day = day_of(id);
        for (_, _, path) in list(&self.dir)?.into_iter().rev().filter(|s| s.1 == day) {
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let mut decoder = Decoder::default();
            let mut found = None;
            let want = |s: &segment::Summary| s.campaign == campaign && (s.first..=s.last).contains(&id.0);
            segment::scan(&mut BufReader::with_capacity(1 << 18, file), 0, |payload, _| {
                if let Some(clicks) = decoder.read(payload, want)? {
                    found = clicks.into_iter().find(|c| c.id == id);
                }
                Ok(found.is_none())
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }
}

/// The UTC day a click id was minted on (ids start with their millisecond).
pub(super) fn day_of(id: ClickId) -> u64 {
    ((id.0 >> 80) as u64) / 86_400_000
}

/// The appender thread: folds, appends, syncs, answers, checkpoints.
struct Appender {
    segments: Segments,
    shared: Shared,
    store_writer: mpsc::SyncSender<Job>,
    /// Told of a refused append, for readiness.
    db: Arc<file::Db>,
    last_checkpoint: Instant,
}

impl Appender {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        loop {
            let first = match rx.recv_timeout(CHECKPOINT_EVERY) {
                Ok(msg) => Some(msg),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let mut fold = Vec::new();
            let mut other = Vec::new();
            for msg in first.into_iter().chain(std::iter::from_fn(|| rx.try_recv().ok())).take(MAX_FOLD) {
                match msg {
                    Msg::Append(batch, reply) => fold.push((batch, reply)),
                    msg => other.push(msg),
                }
            }
            if !fold.is_empty() {
                self.append(fold);
            }
            for msg in other {
                if let Msg::Expire { before_day, limit, reply } = msg {
                    let _ = reply.send(self.expire(before_day, limit));
                }
            }
            self.maybe_checkpoint();
        }
    }

    fn append(&mut self, fold: Vec<(Arc<Batch>, oneshot::Sender<StoreResult<()>>)>) {
        let (fresh, skipped) = {
            let pending = lock(&self.shared);
            let mut seen = HashSet::new();
            let mut skipped = Vec::new();
            let mut fresh: Vec<&Click> = Vec::new();
            for click in fold.iter().flat_map(|(b, _)| b.clicks.iter()) {
                if pending.retried.contains(&click.id) {
                    skipped.push(click.id);
                } else if seen.insert(click.id) {
                    fresh.push(click);
                }
            }
            (fresh, skipped)
        };
        let result = self.segments.append(&fresh).map_err(StoreError::from);
        if let Err(e) = &result {
            tracing::error!(error = %e, "the click log cannot write");
            self.db.write_failed(e.message());
        }
        if let Ok(entries) = &result {
            let mut pending = lock(&self.shared);
            for id in &skipped {
                pending.retried.remove(id);
            }
            pending.entries.extend_from_slice(entries);
        }
        for (_, reply) in fold {
            let _ = reply.send(result.as_ref().map(|_| ()).map_err(Clone::clone));
        }
    }

    /// Counts must be in the stats table before their records can go, so
    /// expiry checkpoints everything first (nothing appends meanwhile: this
    /// thread is the appender).
    fn expire(&mut self, before_day: u64, limit: usize) -> StoreResult<usize> {
        while lock(&self.shared).checkpointing {
            std::thread::sleep(Duration::from_millis(5));
        }
        let upto = lock(&self.shared).entries.last().map(|e| e.0);
        if let Some(upto) = upto {
            lock(&self.shared).checkpointing = true;
            let (done, landed) = mpsc::channel();
            let job: Job = Box::new(Checkpoint { shared: self.shared.clone(), upto, done: Some(done) });
            if self.store_writer.send(job).is_err() {
                lock(&self.shared).checkpointing = false;
                return Err(StoreError::Unavailable("store writer has stopped".into()));
            }
            landed.recv()??;
        }
        self.segments.expire(before_day, limit).map_err(StoreError::from)
    }

    /// Hands the counts to the redb writer once a second, one checkpoint
    /// at a time; a full writer queue just means the next second.
    fn maybe_checkpoint(&mut self) {
        if self.last_checkpoint.elapsed() < CHECKPOINT_EVERY {
            return;
        }
        let upto = {
            let mut pending = lock(&self.shared);
            let Some(&(upto, _, _)) = pending.entries.last() else { return };
            if pending.checkpointing {
                return;
            }
            pending.checkpointing = true;
            upto
        };
        self.last_checkpoint = Instant::now();
        let job: Job = Box::new(Checkpoint { shared: self.shared.clone(), upto, done: None });
        if self.store_writer.try_send(job).is_err() {
            lock(&self.shared).checkpointing = false;
        }
    }
}

/// Moves the counts up to `upto` into the stats table and records `upto`.
struct Checkpoint {
    shared: Shared,
    upto: Pos,
    /// Told the outcome, if someone waits for it.
    done: Option<mpsc::Sender<StoreResult<()>>>,
}

impl WriteJob for Checkpoint {
    fn run(&mut self, txn: &WriteTransaction) -> StoreResult<()> {
        let mut sums: HashMap<CampaignId, CampaignStats> = HashMap::new();
        for (_, campaign, delta) in lock(&self.shared).entries.iter().filter(|e| e.0 <= self.upto) {
            sums.entry(*campaign).or_default().add(delta);
        }
        let mut stats = txn.open_table(STATS)?;
        for (campaign, delta) in sums {
            events::add_stats(&mut stats, campaign, &delta)?;
        }
        set_checkpoint(txn, self.upto)
    }

    fn finish(self: Box<Self>, failed: Option<StoreError>) {
        let mut pending = lock(&self.shared);
        if failed.is_none() {
            pending.entries.retain(|e| e.0 > self.upto);
        }
        pending.checkpointing = false;
        drop(pending);
        if let Some(done) = self.done {
            let _ = done.send(failed.map_or(Ok(()), Err));
        }
    }
}

fn checkpoint(meta: &impl ReadableTable<&'static str, u64>) -> StoreResult<Pos> {
    let get = |key| meta.get(key).map_err(StoreError::from).map(|v| v.map_or(0, |v| v.value()));
    Ok(Pos { segment: get(SEGMENT_KEY)?, offset: get(OFFSET_KEY)? })
}

pub(super) fn set_checkpoint(txn: &WriteTransaction, at: Pos) -> StoreResult<()> {
    let mut meta = txn.open_table(format::META)?;
    meta.insert(SEGMENT_KEY, at.segment)?;
    meta.insert(OFFSET_KEY, at.offset)?;
    Ok(())
}

/// In the opening transaction: counts the records after the checkpoint,
/// cuts a torn tail, and checkpoints the end. Returns the next segment
/// number.
pub(super) fn recover(data_dir: &Path, txn: &WriteTransaction) -> StoreResult<u64> {
    let dir = data_dir.join(DIR);
    crate::private_fs::create_dir(&dir)?;
    let at = checkpoint(&txn.open_table(format::META)?)?;
    let mut sums: HashMap<CampaignId, CampaignStats> = HashMap::new();
    let mut end = at;
    let segments = list(&dir)?;
    for (seq, _, path) in segments.iter().filter(|s| s.0 >= at.segment) {
        let from = if *seq == at.segment { at.offset } else { 0 };
        let valid = replay(path, from, &mut sums)?;
        end = Pos { segment: *seq, offset: valid };
    }
    let mut stats = txn.open_table(STATS)?;
    for (campaign, delta) in sums {
        events::add_stats(&mut stats, campaign, &delta)?;
    }
    set_checkpoint(txn, end)?;
    Ok(segments.last().map_or(0, |s| s.0).max(end.segment) + 1)
}

/// Counts one segment's records from `from`; truncates what follows the
/// last whole one. Returns where the records end.
fn replay(path: &Path, from: u64, sums: &mut HashMap<CampaignId, CampaignStats>) -> io::Result<u64> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    if from >= len {
        return Ok(from.min(len));
    }
    file.seek(SeekFrom::Start(from))?;
    let valid = segment::scan(&mut BufReader::with_capacity(1 << 18, &file), from, |payload, _| {
        let s = segment::summary(payload)?;
        sums.entry(s.campaign).or_default().add(&clicks_delta(s.clicks, s.flagged, s.duplicate, s.capped));
        Ok(true)
    })?;
    if valid < len {
        tracing::warn!(segment = %path.display(), valid, len, "cutting a torn click log tail");
        file.set_len(valid)?;
        file.sync_all()?;
    }
    Ok(valid)
}

#[cfg(test)]
#[path = "clicks_tests.rs"]
mod tests;
