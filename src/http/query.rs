//! Query strings of the list endpoints (`?campaignId=…&before=…&limit=…`):
//! percent-decoded, each parameter at most once, unknown names refused so a
//! typo (`stauts=`) is a 400 instead of a silently unfiltered list.

use std::collections::BTreeMap;

use crate::domain::validate::{excerpt, invalid, Invalid};

/// Longest value accepted for any parameter (ids and cursors are far shorter).
const MAX_VALUE: usize = 512;

pub struct Query(BTreeMap<String, String>);

impl Query {
    /// Parses `raw`, accepting only the names in `allowed`. An empty value
    /// (`before=`) counts as absent, so a client may template a null cursor.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Self, Invalid> {
        let mut out = BTreeMap::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(name).ok_or_else(|| invalid("query", "is not valid percent-encoded UTF-8"))?;
            if !allowed.contains(&name.as_str()) {
                return Err(invalid(&excerpt(&name), format!("is not a known parameter (use {})", allowed.join(", "))));
            }
            let value = decode(value).ok_or_else(|| invalid(&name, "is not valid percent-encoded UTF-8"))?;
            if value.chars().count() > MAX_VALUE {
                return Err(invalid(&name, format!("must be at most {MAX_VALUE} characters")));
            }
            if out.contains_key(&name) {
                return Err(invalid(&name, "may be given only once"));
            }
            if !value.is_empty() {
                out.insert(name, value);
            }
        }
        Ok(Self(out))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A page size: `default` when absent, else 1 to `max`.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, Invalid> {
        match self.get("limit") {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(invalid("limit", format!("must be a whole number from 1 to {max}"))),
            },
        }
    }
}

/// Form-style percent-decoding (`+` is a space) by `percent-encoding`, but
/// strict: a `%` without two hex digits after it, or bytes that are not
/// UTF-8, make the parameter invalid instead of passing through.
fn decode(text: &str) -> Option<String> {
    let malformed = text
        .split('%')
        .skip(1)
        .any(|rest| !rest.as_bytes().get(..2).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)));
    if malformed {
        return None;
    }
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8().ok().map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_percent_decoded_and_empty_ones_are_absent() {
        let q =
            Query::parse(Some("before=123%3Apay_1%3Apending&limit=&status=verified"), &["before", "limit", "status"])
                .unwrap();
        assert_eq!(q.get("before"), Some("123:pay_1:pending"));
        assert_eq!(q.get("limit"), None);
        assert_eq!(q.limit(50, 200), Ok(50));
    }

    #[test]
    fn unknown_repeated_or_badly_encoded_parameters_are_refused() {
        assert_eq!(Query::parse(Some("stauts=x"), &["status"]).err().unwrap().field, "stauts");
        assert_eq!(Query::parse(Some("status=a&status=b"), &["status"]).err().unwrap().field, "status");
        assert!(Query::parse(Some("status=%zz"), &["status"]).is_err());
        assert!(Query::parse(Some("status=%ff"), &["status"]).is_err());
        assert!(Query::parse(Some("status=%4"), &["status"]).is_err());
        assert_eq!(Query::parse(Some("status=a+b%20c"), &["status"]).unwrap().get("status"), Some("a b c"));
    }

    #[test]
    fn a_limit_outside_its_range_is_refused() {
        for bad in ["0", "201", "-1", "ten"] {
            let q = Query::parse(Some(&format!("limit={bad}")), &["limit"]).unwrap();
            assert_eq!(q.limit(50, 200).unwrap_err().field, "limit", "{bad}");
        }
    }
}
