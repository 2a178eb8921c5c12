//! The engine's one source of time. Production reads the system clock; a
//! test build of the config (`money.test_clock`) adds an offset that tests
//! move forward, so a 30-day hold is skipped instead of slept through. The
//! offset is kept in the data directory so it survives a `kill -9` restart.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

pub trait Clock: Send + Sync + 'static {
    /// Unix seconds.
    fn now(&self) -> u64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        crate::domain::unix_now()
    }
}

/// The system clock plus an offset that only moves forward.
pub struct OffsetClock {
    offset: AtomicU64,
    file: Option<PathBuf>,
}

impl OffsetClock {
    /// Starts from the offset saved in `file`, if any.
    pub fn load(file: Option<PathBuf>) -> Self {
        let saved = file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()).and_then(|t| t.trim().parse().ok());
        Self { offset: AtomicU64::new(saved.unwrap_or(0)), file }
    }

    /// Moves the clock forward and saves the new offset before returning.
    pub fn advance(&self, seconds: u64) -> std::io::Result<u64> {
        // Saturating: many advances add up, and a test clock must not wrap.
        let add = |o: u64| Some(o.saturating_add(seconds));
        let offset =
            self.offset.fetch_update(Ordering::SeqCst, Ordering::SeqCst, add).unwrap_or(0).saturating_add(seconds);
        if let Some(file) = &self.file {
            crate::private_fs::write_atomic(file, &offset.to_string())?;
        }
        Ok(self.now())
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> u64 {
        crate::domain::unix_now().saturating_add(self.offset.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advanced_clock_keeps_its_offset_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("clock_offset");
        let clock = OffsetClock::load(Some(file.clone()));
        let before = clock.now();
        clock.advance(86_400).unwrap();
        assert!(clock.now() >= before + 86_400);
        assert!(OffsetClock::load(Some(file)).now() >= before + 86_400);
    }
}
