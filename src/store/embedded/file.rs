//! The database file, and what happens when writing to it fails. redb
//! refuses every write after an I/O error ("close and re-open the
//! database"), so a full disk would turn into 503s until a restart even
//! after space is freed. Instead the writer marks the store failing (so
//! `/readyz` answers 503), then closes and reopens the file, and probes it
//! with a write, until that succeeds. Nothing acknowledged is lost: a write
//! that failed was answered as failed.
//!
//! `DiskFaults` is the seam the tests fail writes through: a backend around
//! the real file whose writes fail with "no space left" while it is set.

use std::io;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redb::backends::FileBackend;
use redb::{BackendError, Database, StorageBackend};

use crate::store::{StoreError, StoreResult};

/// How long a reopen waits for readers still holding the old handle.
const REOPEN_TRIES: usize = 100;
const REOPEN_PAUSE: Duration = Duration::from_millis(20);

/// The open database, swapped for a fresh one after a write failure.
pub struct Db {
    current: RwLock<Option<Arc<Database>>>,
    path: PathBuf,
    faults: Option<Arc<DiskFaults>>,
    /// Why writes fail, while they do.
    failing: Mutex<Option<String>>,
    /// The last write refused by the disk, until a write lands after it.
    last_failure: Mutex<Option<(Instant, String)>>,
}

impl Db {
    pub fn open(path: PathBuf, faults: Option<Arc<DiskFaults>>) -> StoreResult<Self> {
        let db = open_file(&path, faults.as_ref()).map_err(|e| StoreError::Failed(e.to_string()))?;
        let failing = Mutex::new(None);
        Ok(Self { current: RwLock::new(Some(Arc::new(db))), path, faults, failing, last_failure: Mutex::new(None) })
    }

    /// The database to read or write now.
    pub fn get(&self) -> StoreResult<Arc<Database>> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        current.clone().ok_or_else(|| StoreError::Unavailable("the store is reopening after a write failure".into()))
    }

    /// Why writes are failing, if they are.
    pub fn failing(&self) -> Option<String> {
        self.failing.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_failing(&self, why: Option<String>) {
        *self.failing.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }

    /// A real write (not a probe) was refused by the disk.
    pub fn write_failed(&self, why: &str) {
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), why.to_string()));
    }

    /// A real write landed: the disk takes writes again.
    pub fn write_landed(&self) {
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Why the last real write failed, if it did within `within` and none
    /// has landed since. A probe's empty commit can land on a disk too full
    /// for any real write (redb rewrites its header in place), so readiness
    /// asks this as well as [`Db::failing`].
    pub fn failed_recently(&self, within: Duration) -> Option<String> {
        let last = self.last_failure.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref().filter(|(at, _)| at.elapsed() < within).map(|(_, why)| why.clone())
    }

    /// Closes the database and opens it again. redb holds a lock on the
    /// file, so the old handle must be gone first: readers still holding it
    /// are waited for, briefly.
    pub fn reopen(&self) -> StoreResult<()> {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        drop(current.take());
        let mut last = String::new();
        for _ in 0..REOPEN_TRIES {
            match open_file(&self.path, self.faults.as_ref()) {
                Ok(db) => {
                    *current = Some(Arc::new(db));
                    return Ok(());
                }
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(REOPEN_PAUSE);
        }
        Err(StoreError::Unavailable(format!("could not reopen {}: {last}", self.path.display())))
    }
}

fn open_file(path: &PathBuf, faults: Option<&Arc<DiskFaults>>) -> Result<Database, redb::DatabaseError> {
    match faults {
        None => Database::create(path),
        Some(faults) => {
            let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
            let backend = FaultyFile { inner: FileBackend::new(file)?, faults: faults.clone() };
            redb::Builder::new().create_with_backend(backend)
        }
    }
}

/// Whether a store error is redb's I/O failure (or its refusal after one),
/// the kind a reopen can cure once the disk has room again.
pub fn is_io(e: &StoreError) -> bool {
    e.is_unavailable()
}

/// Test seam: while `full` is set, every write to the file fails the way a
/// full disk fails it.
#[derive(Debug, Default)]
pub struct DiskFaults {
    full: AtomicBool,
}

impl DiskFaults {
    pub fn set_full(&self, full: bool) {
        self.full.store(full, Ordering::SeqCst);
    }

    pub(super) fn check(&self) -> io::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "no space left on device (injected)"));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: FileBackend,
    faults: Arc<DiskFaults>,
}

impl StorageBackend for FaultyFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.faults.check()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.faults.check()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.faults.check()?;
        self.inner.write(offset, data)
    }
    fn close(&self) -> io::Result<()> {
        self.inner.close()
    }
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }
    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }
    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }
    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }
    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }
    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
