//! The one thread that writes. Every write (a campaign's group commit, a
//! money step, an admin change) is a job on its queue; the thread takes the
//! first job, folds in whatever else is already waiting, and runs them all
//! in one redb transaction: one commit, one fsync, however many callers.
//!
//! Jobs waiting together are concurrent (none of their callers has seen
//! another's answer), so any order among them is a valid serial order. A job
//! sees the writes of the jobs before it in the same transaction, exactly as
//! if each had committed alone. Answers are sent only after the commit lands.
//!
//! If one job fails, the whole transaction is rolled back and every job of
//! the fold is run again in a transaction of its own, so one bad job fails
//! only itself.
//!
//! If the file refuses writes (a full disk), the store is marked failing and
//! the writer reopens the database and probes it before each job, and every
//! second without jobs, until a write lands again (see `file`).

use std::sync::mpsc;
use std::time::Duration;

use redb::{Database, WriteTransaction};
use tokio::sync::oneshot;

use super::file::{is_io, Db};
use crate::store::{StoreError, StoreResult};

/// How many waiting jobs one transaction may fold together.
const MAX_FOLD: usize = 256;
/// While writes fail, how often the writer tries to recover without jobs.
const RECOVER_EVERY: Duration = Duration::from_secs(1);

pub type Job = Box<dyn WriteJob>;

pub trait WriteJob: Send {
    /// Does its writes in `txn` and keeps its answer until the commit lands.
    /// May run more than once (after a rolled-back fold), each time on a
    /// fresh transaction.
    fn run(&mut self, txn: &WriteTransaction) -> StoreResult<()>;
    /// Sends the kept answer, or `failed` if its transaction did not commit.
    fn finish(self: Box<Self>, failed: Option<StoreError>);
}

/// A closure and the caller waiting for what it returns.
pub struct Typed<T, F> {
    f: F,
    out: Option<T>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Typed<T, F> {
    pub fn new(f: F, reply: oneshot::Sender<StoreResult<T>>) -> Self {
        Self { f, out: None, reply }
    }
}

impl<T, F> WriteJob for Typed<T, F>
where
    T: Send,
    F: FnMut(&WriteTransaction) -> StoreResult<T> + Send,
{
    fn run(&mut self, txn: &WriteTransaction) -> StoreResult<()> {
        self.out = Some((self.f)(txn)?);
        Ok(())
    }

    fn finish(self: Box<Self>, failed: Option<StoreError>) {
        let answer = match (failed, self.out) {
            (Some(e), _) => Err(e),
            (None, Some(out)) => Ok(out),
            (None, None) => Err(StoreError::Failed("write job finished without running".into())),
        };
        let _ = self.reply.send(answer);
    }
}

/// Blocks for one job, then folds in whatever else is already waiting.
pub fn write_loop(db: &Db, jobs: mpsc::Receiver<Job>, quick_repair: bool) {
    loop {
        let first = if db.failing().is_some() {
            match jobs.recv_timeout(RECOVER_EVERY) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match jobs.recv() {
                Ok(job) => Some(job),
                Err(_) => return,
            }
        };
        if db.failing().is_some() {
            recover(db, quick_repair);
        }
        let Some(first) = first else { continue };
        let mut fold = vec![first];
        while fold.len() < MAX_FOLD {
            match jobs.try_recv() {
                Ok(job) => fold.push(job),
                Err(_) => break,
            }
        }
        if let Some(e) = run_fold(db, fold, quick_repair) {
            tracing::error!(error = %e, "the store cannot write; reopening it until it can");
            recover(db, quick_repair);
        }
    }
}

/// Reopens the database and proves a write lands; clears `failing` if so.
fn recover(db: &Db, quick_repair: bool) {
    let probe = || {
        let mut txn = db.get()?.begin_write()?;
        txn.set_quick_repair(quick_repair);
        txn.commit().map_err(StoreError::from)
    };
    match db.reopen().and_then(|()| probe()) {
        Ok(()) => {
            if db.failing().is_some() {
                tracing::info!("the store writes again");
            }
            db.set_failing(None);
        }
        Err(e) => db.set_failing(Some(e.message().to_string())),
    }
}

/// Commits `fold` as one transaction, or each job alone if that fails.
/// Returns an I/O failure, if a job met one.
fn run_fold(db: &Db, mut fold: Vec<Job>, quick_repair: bool) -> Option<StoreError> {
    let database = match db.get() {
        Ok(d) => d,
        Err(e) => {
            fold.into_iter().for_each(|job| job.finish(Some(e.clone())));
            return None;
        }
    };
    if fold.len() > 1 && commit(&database, &mut fold, quick_repair).is_ok() {
        db.write_landed();
        fold.into_iter().for_each(|job| job.finish(None));
        return None;
    }
    let mut io = None;
    for mut job in fold {
        let result = commit(&database, std::slice::from_mut(&mut job), quick_repair);
        if result.is_ok() {
            db.write_landed();
        }
        if let Err(e) = &result {
            if is_io(e) && io.is_none() {
                // Before the caller hears of it: whoever it tells next
                // (readiness, a retry) must find the store failing.
                db.write_failed(e.message());
                db.set_failing(Some(e.message().to_string()));
                io = Some(e.clone());
            }
        }
        job.finish(result.err());
    }
    io
}

/// Runs `jobs` in one transaction and commits it; on any error nothing of
/// it is written (an uncommitted redb transaction rolls back when dropped).
fn commit(db: &Database, jobs: &mut [Job], quick_repair: bool) -> StoreResult<()> {
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(quick_repair);
    for job in jobs.iter_mut() {
        job.run(&txn)?;
    }
    txn.commit().map_err(StoreError::from)
}

#[cfg(test)]
mod tests {
    use redb::{ReadableDatabase, ReadableTable, TableDefinition};

    use super::*;

    const T: TableDefinition<&str, u64> = TableDefinition::new("t");

    fn put(key: &'static str, fail: bool) -> (Job, oneshot::Receiver<StoreResult<()>>) {
        let (reply, answer) = oneshot::channel();
        let f = move |txn: &WriteTransaction| {
            txn.open_table(T)?.insert(key, 1)?;
            if fail {
                return Err(StoreError::Failed(format!("{key} refused")));
            }
            Ok(())
        };
        (Box::new(Typed::new(f, reply)), answer)
    }

    fn stored(db: &Database, key: &str) -> bool {
        let txn = db.begin_read().unwrap();
        txn.open_table(T).map(|t| t.get(key).unwrap().is_some()).unwrap_or(false)
    }

    #[test]
    fn a_failing_job_fails_alone_and_the_jobs_folded_with_it_still_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("t.redb"), None).unwrap();
        let (a, a_answer) = put("a", false);
        let (b, b_answer) = put("b", true);
        let (c, c_answer) = put("c", false);
        run_fold(&db, vec![a, b, c], false);
        assert!(a_answer.blocking_recv().unwrap().is_ok());
        assert_eq!(b_answer.blocking_recv().unwrap().unwrap_err().message(), "b refused");
        assert!(c_answer.blocking_recv().unwrap().is_ok());
        let db = db.get().unwrap();
        assert!(stored(&db, "a") && stored(&db, "c"));
        assert!(!stored(&db, "b"), "the failed job's own write must be rolled back");
    }

    #[test]
    fn folded_jobs_see_the_writes_of_the_jobs_before_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("t.redb"), None).unwrap();
        let (a, _a) = put("a", false);
        let (reply, answer) = oneshot::channel();
        let read_a = move |txn: &WriteTransaction| Ok(txn.open_table(T)?.get("a")?.is_some());
        run_fold(&db, vec![a, Box::new(Typed::new(read_a, reply))], false);
        assert!(answer.blocking_recv().unwrap().unwrap());
    }
}
