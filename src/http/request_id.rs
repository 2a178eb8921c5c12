//! Request ids: taken from the client's `x-request-id` when it is a sane
//! token, otherwise generated, then carried by every log line of the request
//! (a tracing span) and echoed in the response's `x-request-id`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use hyper::header::{HeaderMap, HeaderValue};

pub const HEADER: &str = "x-request-id";
/// Long enough for a UUID or a trace id with a prefix; short enough that a
/// client cannot bloat every log line.
const MAX_LEN: usize = 128;

/// The client's id if it is 1 to `MAX_LEN` visible ASCII characters, else a
/// fresh one (so a log line never carries a client's control characters).
pub fn from_headers(headers: &HeaderMap) -> String {
    let given = headers.get(HEADER).and_then(|v| v.to_str().ok());
    given.filter(|id| valid(id)).map_or_else(generate, str::to_string)
}

fn valid(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

/// 32 lowercase hex digits: this process's random 64-bit prefix, then a
/// counter. Unique (not secret), and without a syscall per request: it sits
/// on the redirect path, which must cost little more than a bare 302.
pub fn generate() -> String {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| u64::from_le_bytes(crate::domain::ids::random_bytes::<8>()));
    format!("{prefix:016x}{:016x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The id as a header value; `from_headers` only yields visible ASCII.
pub fn header_value(id: &str) -> HeaderValue {
    HeaderValue::from_str(id).expect("request ids are visible ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_bytes(value).unwrap());
        h
    }

    #[test]
    fn a_sane_client_id_is_kept_as_it_is() {
        assert_eq!(from_headers(&with(b"req-42_ABC.def:1")), "req-42_ABC.def:1");
    }

    #[test]
    fn a_missing_too_long_or_unprintable_id_is_replaced_by_a_generated_one() {
        let long = vec![b'a'; MAX_LEN + 1];
        for headers in [HeaderMap::new(), with(&long), with(b"has space"), with(b"tab\there"), with(b"caf\xc3\xa9")] {
            let id = from_headers(&headers);
            assert_eq!(id.len(), 32, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
        assert_eq!(from_headers(&with(&long[..MAX_LEN])).len(), MAX_LEN, "the limit itself is allowed");
    }

    #[test]
    fn generated_ids_differ() {
        assert_ne!(generate(), generate());
    }
}
