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

use std::sync::mpsc;

use redb::{Database, WriteTransaction};
use tokio::sync::oneshot;

use super::err;
use crate::store::{StoreError, StoreResult};

/// How many waiting jobs one transaction may fold together.
const MAX_FOLD: usize = 256;

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
            (None, None) => Err(StoreError("write job finished without running".into())),
        };
        let _ = self.reply.send(answer);
    }
}

/// Blocks for one job, then folds in whatever else is already waiting.
pub fn write_loop(db: &Database, jobs: mpsc::Receiver<Job>, quick_repair: bool) {
    while let Ok(first) = jobs.recv() {
        let mut fold = vec![first];
        while fold.len() < MAX_FOLD {
            match jobs.try_recv() {
                Ok(job) => fold.push(job),
                Err(_) => break,
            }
        }
        run_fold(db, fold, quick_repair);
    }
}

/// Commits `fold` as one transaction, or each job alone if that fails.
fn run_fold(db: &Database, mut fold: Vec<Job>, quick_repair: bool) {
    if fold.len() > 1 {
        match commit(db, &mut fold, quick_repair) {
            Ok(()) => fold.into_iter().for_each(|job| job.finish(None)),
            Err(_) => fold.into_iter().for_each(|job| commit_alone(db, job, quick_repair)),
        }
    } else {
        fold.into_iter().for_each(|job| commit_alone(db, job, quick_repair));
    }
}

fn commit_alone(db: &Database, mut job: Job, quick_repair: bool) {
    let result = commit(db, std::slice::from_mut(&mut job), quick_repair);
    job.finish(result.err());
}

/// Runs `jobs` in one transaction and commits it; on any error nothing of
/// it is written (an uncommitted redb transaction rolls back when dropped).
fn commit(db: &Database, jobs: &mut [Job], quick_repair: bool) -> StoreResult<()> {
    let mut txn = db.begin_write().map_err(err)?;
    txn.set_quick_repair(quick_repair);
    for job in jobs.iter_mut() {
        job.run(&txn)?;
    }
    txn.commit().map_err(err)
}

#[cfg(test)]
mod tests {
    use redb::{ReadableDatabase, ReadableTable, TableDefinition};

    use super::*;

    const T: TableDefinition<&str, u64> = TableDefinition::new("t");

    fn put(key: &'static str, fail: bool) -> (Job, oneshot::Receiver<StoreResult<()>>) {
        let (reply, answer) = oneshot::channel();
        let f = move |txn: &WriteTransaction| {
            txn.open_table(T).map_err(err)?.insert(key, 1).map_err(err)?;
            if fail {
                return Err(StoreError(format!("{key} refused")));
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
        let db = Database::create(dir.path().join("t.redb")).unwrap();
        let (a, a_answer) = put("a", false);
        let (b, b_answer) = put("b", true);
        let (c, c_answer) = put("c", false);
        run_fold(&db, vec![a, b, c], false);
        assert!(a_answer.blocking_recv().unwrap().is_ok());
        assert_eq!(b_answer.blocking_recv().unwrap().unwrap_err().0, "b refused");
        assert!(c_answer.blocking_recv().unwrap().is_ok());
        assert!(stored(&db, "a") && stored(&db, "c"));
        assert!(!stored(&db, "b"), "the failed job's own write must be rolled back");
    }

    #[test]
    fn folded_jobs_see_the_writes_of_the_jobs_before_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("t.redb")).unwrap();
        let (a, _a) = put("a", false);
        let (reply, answer) = oneshot::channel();
        let read_a = move |txn: &WriteTransaction| Ok(txn.open_table(T).map_err(err)?.get("a").map_err(err)?.is_some());
        run_fold(&db, vec![a, Box::new(Typed::new(read_a, reply))], false);
        assert!(answer.blocking_recv().unwrap().unwrap());
    }
}
