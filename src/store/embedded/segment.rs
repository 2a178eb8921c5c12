//! The click log's file format: segments of checksummed records, each
//! record one campaign's clicks of one flush. A segment carries its own
//! string dictionary: a user agent, referer or tracking code is written the
//! first time the segment sees it (in the record that first uses it) and is
//! a small integer in every click after that, so a click costs about 40
//! bytes whatever the batch size.
//!
//! A record on disk: `len (u32 LE) | crc32 of payload (u32 LE) | payload`.
//! The payload (integers LEB128 varints unless sized):
//! `format (u8 = 1) | campaign | count | flagged | first id (16) | last id
//! (16) | base_at | new strings (n | (len | utf-8) × n) | clicks`, each click
//! `id (16, big-endian) | affiliate | code | at - base_at | ip_hash (16) |
//! user_agent | referer | flags (u8)`, the strings as dictionary ids. The
//! summary before the strings is all that counting needs, so a replay reads
//! no dictionary.

use std::collections::HashMap;
use std::io::{self, Read};

use crate::domain::ids::CampaignId;
use crate::domain::keyed::ClickKind;
use crate::domain::model::Click;
use crate::store::clicklog::{read_click, varint, write_click, Corrupt, Reader};

const FORMAT: u8 = 1;
/// Format 2 adds, after `flagged`, the counts of duplicate and capped
/// clicks (logged, not counted). Written only when a record has any, so
/// the common record is byte for byte what it was.
const FORMAT_2: u8 = 2;
pub const HEADER: usize = 8;
/// A segment's dictionary stops growing here: the writer starts a new
/// segment, so the encoder's memory stays bounded.
pub const DICT_MAX_BYTES: usize = 16 << 20;
/// A record is one flush of one campaign (`engine.max_batch` clicks at
/// most); anything bigger is damage, not data.
const RECORD_MAX_BYTES: usize = 64 << 20;

/// What a record holds, readable without the dictionary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub campaign: CampaignId,
    pub clicks: u64,
    /// Bot clicks (flagged, and neither duplicate nor capped).
    pub flagged: u64,
    pub duplicate: u64,
    pub capped: u64,
    pub first: u128,
    pub last: u128,
}

/// The writer's half of a segment's dictionary.
#[derive(Default)]
pub struct Encoder {
    ids: HashMap<Box<str>, u32>,
    bytes: usize,
}

impl Encoder {
    pub fn full(&self) -> bool {
        self.bytes >= DICT_MAX_BYTES
    }

    /// Appends one framed record of `campaign`'s clicks to `out`.
    pub fn record(&mut self, campaign: CampaignId, clicks: &[&Click], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER]);
        let count = |kind: ClickKind| clicks.iter().filter(|c| ClickKind::of(c) == kind).count() as u64;
        let (duplicate, capped) = (count(ClickKind::Duplicate), count(ClickKind::Capped));
        let extended = duplicate + capped > 0;
        out.push(if extended { FORMAT_2 } else { FORMAT });
        varint(out, campaign.0);
        varint(out, clicks.len() as u64);
        varint(out, count(ClickKind::Bot));
        if extended {
            varint(out, duplicate);
            varint(out, capped);
        }
        let first = clicks.iter().map(|c| c.id.0).min().unwrap_or(0);
        let last = clicks.iter().map(|c| c.id.0).max().unwrap_or(0);
        out.extend_from_slice(&first.to_be_bytes());
        out.extend_from_slice(&last.to_be_bytes());
        let base_at = clicks.iter().map(|c| c.at).min().unwrap_or(0);
        varint(out, base_at);
        let mut new: Vec<&str> = Vec::new();
        let ids: Vec<[u32; 3]> = clicks
            .iter()
            .map(|c| [&c.tracking_code, &c.user_agent, &c.referer].map(|s| self.id(s, &mut new)))
            .collect();
        varint(out, new.len() as u64);
        for s in new {
            varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        for (c, strings) in clicks.iter().zip(ids) {
            write_click(out, c, base_at, strings.map(u64::from));
        }
        let payload = &out[start + HEADER..];
        let (len, crc) = (payload.len() as u32, crc32fast::hash(payload));
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    }

    fn id<'a>(&mut self, s: &'a str, new: &mut Vec<&'a str>) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.ids.len() as u32;
        self.ids.insert(s.into(), id);
        self.bytes += s.len() + 32;
        new.push(s);
        id
    }
}

/// A record's summary.
pub fn summary(payload: &[u8]) -> Result<Summary, Corrupt> {
    Ok(parse_summary(&mut Reader::new(payload))?.0)
}

fn parse_summary(r: &mut Reader<'_>) -> Result<(Summary, u64), Corrupt> {
    let format = r.byte()?;
    if format != FORMAT && format != FORMAT_2 {
        return Err(Corrupt("unknown record format"));
    }
    let campaign = CampaignId(r.varint()?);
    let (clicks, flagged) = (r.varint()?, r.varint()?);
    let (duplicate, capped) = if format == FORMAT_2 { (r.varint()?, r.varint()?) } else { (0, 0) };
    let first = u128::from_be_bytes(r.array()?);
    let last = u128::from_be_bytes(r.array()?);
    let base_at = r.varint()?;
    Ok((Summary { campaign, clicks, flagged, duplicate, capped, first, last }, base_at))
}

/// The reader's half: a segment read from its start learns every string.
#[derive(Default)]
pub struct Decoder {
    strings: Vec<String>,
}

impl Decoder {
    /// Learns a record's new strings; decodes its clicks only if `want`
    /// says so after seeing the summary.
    pub fn read(&mut self, payload: &[u8], want: impl Fn(&Summary) -> bool) -> Result<Option<Vec<Click>>, Corrupt> {
        let mut r = Reader::new(payload);
        let (summary, base_at) = parse_summary(&mut r)?;
        for _ in 0..r.len()? {
            self.strings.push(r.string()?.to_string());
        }
        if !want(&summary) {
            return Ok(None);
        }
        let string = |i: u64| self.strings.get(i as usize).cloned().ok_or(Corrupt("string id"));
        let count = usize::try_from(summary.clicks).map_err(|_| Corrupt("count"))?;
        let clicks = (0..count).map(|_| read_click(&mut r, summary.campaign, base_at, &string));
        clicks.collect::<Result<Vec<_>, _>>().map(Some)
    }
}

/// Reads framed records from `input` (positioned at `offset`), handing each
/// payload and the offset just past it to `each`, which returns `false` to
/// stop. Returns the offset where the valid records end: a short or
/// mismatched record (a write torn by a crash) ends the scan there.
pub fn scan(
    input: &mut impl Read,
    mut offset: u64,
    mut each: impl FnMut(&[u8], u64) -> Result<bool, Corrupt>,
) -> io::Result<u64> {
    let mut header = [0u8; HEADER];
    let mut payload = Vec::new();
    loop {
        if !read_full(input, &mut header)? {
            return Ok(offset);
        }
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if len > RECORD_MAX_BYTES {
            return Ok(offset);
        }
        payload.resize(len, 0);
        if !read_full(input, &mut payload)? || crc32fast::hash(&payload) != crc {
            return Ok(offset);
        }
        offset += (HEADER + len) as u64;
        match each(&payload, offset) {
            Ok(true) => {}
            Ok(false) => return Ok(offset),
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
        }
    }
}

/// Fills `buf`; `false` if the input ended first.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match input.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::clicklog::tests::click;

    fn records(batches: &[Vec<Click>]) -> Vec<u8> {
        let mut encoder = Encoder::default();
        let mut out = Vec::new();
        for batch in batches {
            encoder.record(CampaignId(7), &batch.iter().collect::<Vec<_>>(), &mut out);
        }
        out
    }

    fn read_all(bytes: &[u8]) -> (Vec<Click>, u64) {
        let mut decoder = Decoder::default();
        let mut clicks = Vec::new();
        let end = scan(&mut &bytes[..], 0, |p, _| {
            clicks.extend(decoder.read(p, |_| true)?.unwrap());
            Ok(true)
        })
        .unwrap();
        (clicks, end)
    }

    #[test]
    fn records_read_back_as_written_with_strings_from_earlier_records() {
        let a: Vec<Click> = (0..30).map(|n| click(n, if n % 3 == 0 { "Mozilla/5.0 A" } else { "curl/8" })).collect();
        let b: Vec<Click> = (30..60).map(|n| click(n, "curl/8")).collect();
        let bytes = records(&[a.clone(), b.clone()]);
        let (back, end) = read_all(&bytes);
        assert_eq!(format!("{back:?}"), format!("{:?}", [a, b].concat()));
        assert_eq!(end, bytes.len() as u64);
    }

    #[test]
    fn a_string_costs_once_per_segment_not_once_per_record() {
        let ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0";
        let batches: Vec<Vec<Click>> = (0..100).map(|b| (0..10).map(|n| click(b * 10 + n, ua)).collect()).collect();
        let per_click = records(&batches).len() / 1000;
        assert!(per_click <= 48, "{per_click} bytes per click in records of 10");
    }

    #[test]
    fn the_summary_counts_without_the_dictionary() {
        let clicks: Vec<Click> = (1..=10).map(|n| click(n, "ua")).collect();
        let bytes = records(std::slice::from_ref(&clicks));
        let s = summary(&bytes[HEADER..]).unwrap();
        assert_eq!((s.campaign, s.clicks, s.flagged), (CampaignId(7), 10, 2));
        assert_eq!((s.first, s.last), (clicks[0].id.0, clicks[9].id.0));
    }

    #[test]
    fn a_torn_or_damaged_tail_ends_the_scan_at_the_last_whole_record() {
        let one: Vec<Click> = (0..10).map(|n| click(n, "ua")).collect();
        let first_end = records(std::slice::from_ref(&one)).len() as u64;
        let bytes = records(&[one.clone(), one]);
        for cut in first_end as usize..bytes.len() {
            assert_eq!(read_all(&bytes[..cut]).1, first_end, "cut at {cut}");
        }
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(read_all(&bad).1, first_end, "a flipped bit fails the checksum");
    }
}
