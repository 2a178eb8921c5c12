//! Sub-IDs: the five free-text tags (`sub1`…`sub5`) an affiliate puts on its
//! own links to tell its traffic sources apart. They ride with the click
//! (in its log record and, encrypted, in its token) and follow it onto the
//! conversion, its webhook payloads and the affiliate's postback macros.
//!
//! Bounds: each value at most [`MAX_CHARS`] characters of printable text,
//! all five together at most [`MAX_TOTAL_BYTES`] bytes of UTF-8, so a token
//! carrying them stays well inside a 4 KiB cookie.

use serde::{Deserialize, Serialize};

use super::validate::{invalid, Invalid};

/// Characters one sub-ID value may have.
pub const MAX_CHARS: usize = 255;
/// UTF-8 bytes all five values may have together.
pub const MAX_TOTAL_BYTES: usize = 1024;
/// The query and body names, in slot order.
pub const NAMES: [&str; 5] = ["sub1", "sub2", "sub3", "sub4", "sub5"];

/// Up to five sub-ID values; an absent one is `None` (never an empty string).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SubIds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub3: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub5: Option<String>,
}

impl SubIds {
    pub fn is_empty(&self) -> bool {
        self.slots().iter().all(|v| v.is_none())
    }

    pub fn get(&self, slot: usize) -> Option<&str> {
        self.slots().get(slot).and_then(|v| v.as_deref())
    }

    pub fn slots(&self) -> [&Option<String>; 5] {
        [&self.sub1, &self.sub2, &self.sub3, &self.sub4, &self.sub5]
    }

    fn slot_mut(&mut self, slot: usize) -> &mut Option<String> {
        match slot {
            0 => &mut self.sub1,
            1 => &mut self.sub2,
            2 => &mut self.sub3,
            3 => &mut self.sub4,
            _ => &mut self.sub5,
        }
    }

    /// Sets `slot` (0–4) to `value`, empty meaning absent.
    pub fn set(&mut self, slot: usize, value: Option<String>) {
        *self.slot_mut(slot) = value.filter(|v| !v.is_empty());
    }

    fn total_bytes(&self) -> usize {
        self.slots().iter().filter_map(|v| v.as_deref()).map(str::len).sum()
    }

    /// A visitor's link: a value that is too long, holds a control
    /// character or would pass the total is dropped, never refused, so the
    /// visitor always reaches the landing page. `get` is the query lookup.
    pub fn lenient<'a>(get: impl Fn(&str) -> Option<&'a str>) -> SubIds {
        let mut subs = SubIds::default();
        for (slot, name) in NAMES.iter().enumerate() {
            let Some(value) = get(name).filter(|v| acceptable(v)) else { continue };
            if subs.total_bytes() + value.len() <= MAX_TOTAL_BYTES {
                subs.set(slot, Some(value.to_string()));
            }
        }
        subs
    }

    /// An API caller's values: a bad one is a 400 naming it.
    pub fn strict(values: [Option<String>; 5]) -> Result<SubIds, Invalid> {
        let mut subs = SubIds::default();
        for (slot, value) in values.into_iter().enumerate() {
            let Some(value) = value else { continue };
            if !acceptable(&value) {
                let why = format!("must be at most {MAX_CHARS} characters of printable text");
                return Err(invalid(NAMES[slot], why));
            }
            subs.set(slot, Some(value));
        }
        if subs.total_bytes() > MAX_TOTAL_BYTES {
            return Err(invalid("sub1", format!("sub1…sub5 together must be at most {MAX_TOTAL_BYTES} bytes")));
        }
        Ok(subs)
    }

    /// `mask (u8) | (len u16 BE | utf-8) per present slot`: the token's and
    /// the click log's form.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mask = (0..5).filter(|&i| self.get(i).is_some()).fold(0u8, |m, i| m | 1 << i);
        out.push(mask);
        for value in self.slots().into_iter().flatten() {
            out.extend_from_slice(&(value.len() as u16).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
    }

    /// Reads what [`SubIds::encode`] wrote from the front of `bytes`;
    /// returns the values and how many bytes they took.
    pub fn decode(bytes: &[u8]) -> Option<(SubIds, usize)> {
        let (&mask, mut rest) = bytes.split_first()?;
        let mut subs = SubIds::default();
        for slot in (0..5).filter(|i| mask & 1 << i != 0) {
            let len = usize::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?));
            let value = std::str::from_utf8(rest.get(2..2 + len)?).ok()?;
            subs.set(slot, Some(value.to_string()));
            rest = &rest[2 + len..];
        }
        (mask < 32).then_some((subs, bytes.len() - rest.len()))
    }
}

/// At most [`MAX_CHARS`] characters, none of them a control character.
fn acceptable(value: &str) -> bool {
    value.chars().count() <= MAX_CHARS && !value.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    #[test]
    fn a_visitors_bad_values_are_dropped_and_the_good_ones_kept() {
        let long = "x".repeat(256);
        let subs = SubIds::lenient(query(&[("sub1", "fb"), ("sub2", &long), ("sub3", "a\nb"), ("sub5", "")]));
        assert_eq!(subs, SubIds { sub1: Some("fb".into()), ..Default::default() });
    }

    #[test]
    fn the_values_that_would_pass_the_total_are_dropped() {
        let big = "é".repeat(255); // 510 bytes
        let subs = SubIds::lenient(query(&[("sub1", &big), ("sub2", &big), ("sub3", &big), ("sub4", "k")]));
        assert_eq!(
            (subs.get(0).is_some(), subs.get(1).is_some(), subs.get(2), subs.get(3)),
            (true, true, None, Some("k"))
        );
    }

    #[test]
    fn an_api_callers_bad_value_is_refused_by_name() {
        let err = SubIds::strict([None, None, Some("x".repeat(300)), None, None]).unwrap_err();
        assert_eq!(err.field, "sub3");
        assert!(SubIds::strict([Some("ok".into()), None, None, None, Some("\u{7}".into())]).is_err());
    }

    #[test]
    fn values_encode_and_decode_to_themselves() {
        let subs = SubIds { sub2: Some("€ & =".into()), sub5: Some("z".into()), ..Default::default() };
        let mut bytes = vec![];
        subs.encode(&mut bytes);
        bytes.push(0xff);
        assert_eq!(SubIds::decode(&bytes), Some((subs, bytes.len() - 1)));
        assert_eq!(SubIds::decode(&[0b11, 0, 5, b'a']), None);
    }
}
