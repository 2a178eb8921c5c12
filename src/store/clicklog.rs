//! Clicks as a log: each flush of a campaign's clicks is one record, not one
//! row per click. This is the CQL backend's row format (and format 2 of the
//! embedded file, read once to upgrade it); the embedded store's segments
//! share its varints but keep a dictionary per file (`embedded/segment.rs`). The record is a compact binary encoding in which a string
//! repeated inside the batch (the tracking code, a popular user agent, a
//! referer) is stored once, and each click costs its id, its hashed address
//! and a few varints: about 40 bytes instead of the ~1 KB a JSON row took.
//!
//! Layout (all integers LEB128 varints unless sized):
//! `format (u8 = 1) | count | base_at | strings | clicks`, where `strings` is
//! `n | (len | utf-8 bytes) × n` and each click is
//! `id (16, big-endian) | affiliate | code | at - base_at | ip_hash (16) |
//! user_agent | referer | flags (u8)`, the three strings as indexes into the
//! table. A record never mixes campaigns: the campaign is its key.

use std::collections::HashMap;

use crate::domain::ids::{AffiliateId, CampaignId, ClickId};
use crate::domain::model::{Click, IpHash};
use crate::domain::subids::SubIds;

const FORMAT: u8 = 1;
const FLAGGED: u8 = 1;
/// Flags bit 1: the click's sub-IDs follow its flags (`SubIds::encode`).
const HAS_SUBS: u8 = 2;
/// A repeat of the same client's click on the link inside the campaign's
/// unique-click window: logged, not counted.
const DUPLICATE: u8 = 4;
/// Over a click cap: sent to the fallback, logged, not counted.
const CAPPED: u8 = 8;
/// The link's query carried a paid-traffic click id.
const PAID: u8 = 16;

/// Why a stored record could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("a click log record is corrupt: {0}")]
pub struct Corrupt(pub &'static str);

/// Encodes clicks of one campaign (the caller groups them).
pub fn encode(clicks: &[&Click]) -> Vec<u8> {
    let base_at = clicks.iter().map(|c| c.at).min().unwrap_or(0);
    let mut table = Strings::default();
    let indexes: Vec<[usize; 3]> = clicks
        .iter()
        .map(|c| [table.index(&c.tracking_code), table.index(&c.user_agent), table.index(&c.referer)])
        .collect();
    let mut out = Vec::with_capacity(16 + table.bytes + clicks.len() * 48);
    out.push(FORMAT);
    varint(&mut out, clicks.len() as u64);
    varint(&mut out, base_at);
    varint(&mut out, table.order.len() as u64);
    for s in &table.order {
        varint(&mut out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
    for (c, strings) in clicks.iter().zip(indexes) {
        write_click(&mut out, c, base_at, strings.map(|i| i as u64));
    }
    out
}

/// One click after its record's header, the layout both click log formats
/// share: `id (16, big-endian) | affiliate | code | at - base_at |
/// ip_hash (16) | user_agent | referer | flags (u8)`, the three strings as
/// numbers the record's format gives meaning (a table index, a dictionary id).
pub(crate) fn write_click(out: &mut Vec<u8>, c: &Click, base_at: u64, [code, ua, referer]: [u64; 3]) {
    out.extend_from_slice(&c.id.0.to_be_bytes());
    varint(out, c.affiliate_id.0);
    varint(out, code);
    varint(out, c.at - base_at);
    out.extend_from_slice(&c.ip_hash.0);
    varint(out, ua);
    varint(out, referer);
    let subs = if c.subs.is_empty() { 0 } else { HAS_SUBS };
    let bit = |on: bool, bit: u8| if on { bit } else { 0 };
    out.push(
        bit(c.flagged, FLAGGED)
            | subs
            | bit(c.duplicate, DUPLICATE)
            | bit(c.capped, CAPPED)
            | bit(c.paid_traffic, PAID),
    );
    if subs != 0 {
        c.subs.encode(out);
    }
}

/// Reads what [`write_click`] wrote; `string` turns a string number back.
pub(crate) fn read_click(
    r: &mut Reader<'_>,
    campaign_id: CampaignId,
    base_at: u64,
    string: &impl Fn(u64) -> Result<String, Corrupt>,
) -> Result<Click, Corrupt> {
    let id = ClickId(u128::from_be_bytes(r.array()?));
    let affiliate_id = AffiliateId(r.varint()?);
    let tracking_code = string(r.varint()?)?;
    let at = base_at.checked_add(r.varint()?).ok_or(Corrupt("time"))?;
    let ip_hash = IpHash(r.array()?);
    let user_agent = string(r.varint()?)?;
    let referer = string(r.varint()?)?;
    let flags = r.byte()?;
    let subs = if flags & HAS_SUBS != 0 { r.subs()? } else { SubIds::default() };
    let flagged = flags & FLAGGED != 0;
    let (duplicate, capped, paid_traffic) = (flags & DUPLICATE != 0, flags & CAPPED != 0, flags & PAID != 0);
    Ok(Click {
        id,
        campaign_id,
        affiliate_id,
        tracking_code,
        at,
        ip_hash,
        user_agent,
        referer,
        flagged,
        subs,
        duplicate,
        capped,
        paid_traffic,
    })
}

/// Decodes a record of `campaign`'s clicks.
pub fn decode(campaign: CampaignId, bytes: &[u8]) -> Result<Vec<Click>, Corrupt> {
    let mut r = Reader::new(bytes);
    if r.byte()? != FORMAT {
        return Err(Corrupt("unknown format"));
    }
    let count = r.len()?;
    let base_at = r.varint()?;
    let strings: Vec<&str> = (0..r.len()?).map(|_| r.string()).collect::<Result<_, _>>()?;
    let string = |i: u64| strings.get(i as usize).map(|s| s.to_string()).ok_or(Corrupt("string index"));
    (0..count).map(|_| read_click(&mut r, campaign, base_at, &string)).collect()
}

/// A batch's clicks per campaign, in order (a campaign actor's batch holds
/// one campaign, so this is usually one group); a click id repeated in the
/// batch (a requeued retry) is kept once.
pub fn by_campaign(clicks: &[Click]) -> Vec<(CampaignId, Vec<&Click>)> {
    let mut groups: Vec<(CampaignId, Vec<&Click>)> = Vec::new();
    let mut seen = std::collections::HashSet::with_capacity(clicks.len());
    for click in clicks.iter().filter(|c| seen.insert(c.id)) {
        match groups.iter_mut().find(|(c, _)| *c == click.campaign_id) {
            Some((_, group)) => group.push(click),
            None => groups.push((click.campaign_id, vec![click])),
        }
    }
    groups
}

/// Each distinct string once, in first-seen order.
#[derive(Default)]
struct Strings<'a> {
    seen: HashMap<&'a str, usize>,
    order: Vec<&'a str>,
    bytes: usize,
}

impl<'a> Strings<'a> {
    fn index(&mut self, s: &'a str) -> usize {
        if let Some(&i) = self.seen.get(s) {
            return i;
        }
        self.order.push(s);
        self.bytes += s.len() + 2;
        self.seen.insert(s, self.order.len() - 1);
        self.order.len() - 1
    }
}

pub(crate) fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    pub(crate) fn byte(&mut self) -> Result<u8, Corrupt> {
        let b = *self.bytes.get(self.at).ok_or(Corrupt("truncated"))?;
        self.at += 1;
        Ok(b)
    }

    pub(crate) fn varint(&mut self) -> Result<u64, Corrupt> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Corrupt("varint too long"))
    }

    /// A count or length, bounded by what is left (so a corrupt length
    /// cannot make us allocate gigabytes).
    pub(crate) fn len(&mut self) -> Result<usize, Corrupt> {
        let n = self.varint()?;
        usize::try_from(n).ok().filter(|&n| n <= self.bytes.len() - self.at).ok_or(Corrupt("length"))
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], Corrupt> {
        let end = self.at.checked_add(N).filter(|&e| e <= self.bytes.len()).ok_or(Corrupt("truncated"))?;
        let out = self.bytes[self.at..end].try_into().expect("N bytes");
        self.at = end;
        Ok(out)
    }

    /// Sub-IDs as `SubIds::encode` wrote them.
    pub(crate) fn subs(&mut self) -> Result<SubIds, Corrupt> {
        let (subs, used) = SubIds::decode(&self.bytes[self.at..]).ok_or(Corrupt("sub-ids"))?;
        self.at += used;
        Ok(subs)
    }

    pub(crate) fn string(&mut self) -> Result<&'a str, Corrupt> {
        let n = self.len()?;
        let s = std::str::from_utf8(&self.bytes[self.at..self.at + n]).map_err(|_| Corrupt("utf-8"))?;
        self.at += n;
        Ok(s)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A click of campaign 7 whose fields vary with `n` (the segment
    /// format's tests share it).
    pub(crate) fn click(n: u64, ua: &str) -> Click {
        Click {
            id: ClickId(u128::from(n) << 80 | 0xabcdef),
            campaign_id: CampaignId(7),
            affiliate_id: AffiliateId(n % 3),
            tracking_code: format!("CODE{}", n % 2),
            at: 1_800_000_000 + n,
            ip_hash: IpHash([n as u8; 16]),
            user_agent: ua.into(),
            referer: if n % 2 == 0 { String::new() } else { "https://news.example/é".into() },
            flagged: n % 5 == 0,
            subs: if n % 10 == 4 {
                SubIds { sub1: Some(format!("src{n}")), sub3: Some("é & =".into()), ..Default::default() }
            } else {
                SubIds::default()
            },
            duplicate: n % 7 == 1,
            capped: n % 11 == 2,
            paid_traffic: n % 13 == 3,
        }
    }

    #[test]
    fn a_batch_reads_back_as_it_was_written() {
        let clicks: Vec<Click> =
            (0..50).map(|n| click(n, if n % 3 == 0 { "Mozilla/5.0 A" } else { "curl/8" })).collect();
        let back = decode(CampaignId(7), &encode(&clicks.iter().collect::<Vec<_>>())).unwrap();
        assert_eq!(format!("{back:?}"), format!("{clicks:?}"));
    }

    #[test]
    fn a_repeated_user_agent_is_stored_once() {
        let ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0";
        let one = encode(&[&click(1, ua)]).len();
        let thousand: Vec<Click> = (0..1000).map(|n| click(n * 2 + 1, ua)).collect();
        let thousand = encode(&thousand.iter().collect::<Vec<_>>()).len();
        assert!(thousand < one + 999 * 40, "{thousand} bytes for 1000 clicks, {one} for one");
        assert!(thousand / 1000 <= 40, "{} bytes per click", thousand / 1000);
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_panic() {
        let clicks: Vec<Click> = (0..10).map(|n| click(n, "ua")).collect();
        let bytes = encode(&clicks.iter().collect::<Vec<_>>());
        for cut in 0..bytes.len() {
            assert!(decode(CampaignId(7), &bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = bytes.clone();
        bad[0] = 9;
        assert!(decode(CampaignId(7), &bad).is_err());
        assert!(decode(CampaignId(7), &[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
    }
}
