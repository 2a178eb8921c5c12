//! The click log's files (`clicks.rs` is the log): which segments exist,
//! the one open for appending, appends cut back when they fail, and expiry
//! of whole days.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::clicks::{day_of, Pos};
use super::segment::Encoder;
use super::*;
use crate::domain::keyed::ClickKind;

pub(super) const DIR: &str = "clicks";
const SEGMENT_MAX_BYTES: u64 = 1 << 30;

/// Segment files, oldest first: (number, day, path).
pub(super) fn list(dir: &Path) -> io::Result<Vec<(u64, u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let parsed = name.strip_suffix(".clicks").and_then(|n| n.split_once('-'));
        if let Some((Ok(seq), Ok(day))) = parsed.map(|(s, d)| (s.parse(), d.parse())) {
            out.push((seq, day, path));
        }
    }
    out.sort();
    Ok(out)
}

/// The segment files and the one open for appending.
pub(super) struct Segments {
    dir: PathBuf,
    next_seq: u64,
    open: Option<Open>,
    buf: Vec<u8>,
    faults: Option<Arc<DiskFaults>>,
}

struct Open {
    seq: u64,
    day: u64,
    path: PathBuf,
    file: File,
    len: u64,
    encoder: Encoder,
}

impl Segments {
    pub fn new(dir: PathBuf, next_seq: u64, faults: Option<Arc<DiskFaults>>) -> Self {
        Self { dir, next_seq, open: None, buf: Vec::with_capacity(1 << 16), faults }
    }

    /// The upgrade's writer: every segment there was is deleted first (an
    /// interrupted upgrade's), then numbering starts at 1.
    pub fn for_upgrade(data_dir: &Path) -> StoreResult<Self> {
        let dir = data_dir.join(DIR);
        crate::private_fs::create_dir(&dir)?;
        for (_, _, path) in list(&dir)? {
            std::fs::remove_file(path)?;
        }
        Ok(Self::new(dir, 1, None))
    }

    /// Appends `clicks` as one record per (day, campaign) and syncs. On
    /// failure everything this call wrote is cut off again, so a retry
    /// starts clean. Returns each record's end and counts.
    pub fn append(&mut self, clicks: &[&Click]) -> io::Result<Vec<(Pos, CampaignId, CampaignStats)>> {
        let mut groups: Vec<((u64, CampaignId), Vec<&Click>)> = Vec::new();
        for click in clicks {
            let key = (day_of(click.id), click.campaign_id);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, group)) => group.push(click),
                None => groups.push((key, vec![click])),
            }
        }
        groups.sort_by_key(|(k, _)| k.0);
        let mut touched = Vec::new();
        let mut entries = Vec::with_capacity(groups.len());
        match self.write_groups(&groups, &mut touched, &mut entries).and_then(|()| self.sync()) {
            Ok(()) => Ok(entries),
            Err(e) => {
                self.undo(&touched);
                Err(e)
            }
        }
    }

    fn write_groups(
        &mut self,
        groups: &[((u64, CampaignId), Vec<&Click>)],
        touched: &mut Vec<(u64, PathBuf, u64)>,
        entries: &mut Vec<(Pos, CampaignId, CampaignStats)>,
    ) -> io::Result<()> {
        for ((day, campaign), group) in groups {
            if let Some(faults) = &self.faults {
                faults.check()?;
            }
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            let open = self.open_for(*day, touched)?;
            open.encoder.record(*campaign, group, &mut buf);
            let written = open.file.write_all(&buf);
            open.len += buf.len() as u64;
            let end = Pos { segment: open.seq, offset: open.len };
            self.buf = buf;
            written?;
            let kind = |k| group.iter().filter(|c| ClickKind::of(c) == k).count() as u64;
            let (bots, dups, capped) = (kind(ClickKind::Bot), kind(ClickKind::Duplicate), kind(ClickKind::Capped));
            entries.push((end, *campaign, clicks_delta(group.len() as u64, bots, dups, capped)));
        }
        Ok(())
    }

    /// The open segment if it takes `day`'s clicks, else a new one (the
    /// old one synced first).
    fn open_for(&mut self, day: u64, touched: &mut Vec<(u64, PathBuf, u64)>) -> io::Result<&mut Open> {
        let fits = |o: &Open| o.day == day && !o.encoder.full() && o.len < SEGMENT_MAX_BYTES;
        if !self.open.as_ref().is_some_and(fits) {
            self.sync()?;
            let seq = self.next_seq;
            let path = self.dir.join(format!("{seq:010}-{day}.clicks"));
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options.open(&path)?;
            File::open(&self.dir)?.sync_all()?;
            self.next_seq += 1;
            self.open = Some(Open { seq, day, path, file, len: 0, encoder: Encoder::default() });
        }
        let open = self.open.as_mut().expect("opened above");
        if !touched.iter().any(|t| t.0 == open.seq) {
            touched.push((open.seq, open.path.clone(), open.len));
        }
        Ok(open)
    }

    pub fn sync(&mut self) -> io::Result<()> {
        if let Some(open) = &self.open {
            if let Some(faults) = &self.faults {
                faults.check()?;
            }
            open.file.sync_data()?;
        }
        Ok(())
    }

    /// Cuts what a failed append wrote. The open segment is closed: its
    /// encoder may know strings whose definitions were just cut.
    fn undo(&mut self, touched: &[(u64, PathBuf, u64)]) {
        self.open = None;
        for (_, path, len) in touched.iter().rev() {
            let cut = if *len == 0 {
                std::fs::remove_file(path)
            } else {
                OpenOptions::new().write(true).open(path).and_then(|f| f.set_len(*len).and_then(|()| f.sync_all()))
            };
            if let Err(e) = cut {
                tracing::error!(segment = %path.display(), error = %e, "could not cut a failed click log append");
            }
        }
    }

    /// Deletes up to `limit` segments of days before `before_day`.
    pub fn expire(&mut self, before_day: u64, limit: usize) -> io::Result<usize> {
        let old: Vec<_> = list(&self.dir)?.into_iter().filter(|s| s.1 < before_day).take(limit).collect();
        for (seq, _, path) in &old {
            if self.open.as_ref().is_some_and(|o| o.seq == *seq) {
                self.open = None;
            }
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        if !old.is_empty() {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(old.len())
    }

    /// Where the appends end (the upgrade's checkpoint).
    pub fn end(&self) -> Pos {
        self.open.as_ref().map_or(Pos::default(), |o| Pos { segment: o.seq, offset: o.len })
    }
}
