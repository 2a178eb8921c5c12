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
/// As the header value it is echoed in: the client's costs no copy.
pub fn from_headers(headers: &HeaderMap) -> HeaderValue {
    let given = headers.get(HEADER).filter(|v| valid(v.as_bytes()));
    given.cloned().unwrap_or_else(generate)
}

fn valid(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.iter().all(u8::is_ascii_graphic)
}

/// 32 lowercase hex digits: this process's random 64-bit prefix, then a
/// counter. Unique (not secret), and without a syscall or formatting per
/// request: it sits on the redirect path, which must cost little more than a
/// bare 302.
pub fn generate() -> HeaderValue {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| u64::from_le_bytes(crate::domain::ids::random_bytes::<8>()));
    let mut digits = [0u8; 32];
    hex(prefix, &mut digits[..16]);
    hex(NEXT.fetch_add(1, Ordering::Relaxed), &mut digits[16..]);
    HeaderValue::from_bytes(&digits).expect("hex digits are visible ASCII")
}

fn hex(mut value: u64, out: &mut [u8]) {
    for byte in out.iter_mut().rev() {
        *byte = b"0123456789abcdef"[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// The id as log text; every id `from_headers` yields is visible ASCII.
pub fn as_text(id: &HeaderValue) -> &str {
    id.to_str().unwrap_or("")
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
    fn a_generated_id_is_the_prefix_then_the_counter_in_hex() {
        let (a, b) = (generate(), generate());
        let (a, b) = (as_text(&a), as_text(&b));
        assert_eq!(a[..16], b[..16], "one prefix per process");
        let next = u64::from_str_radix(&a[16..], 16).unwrap() + 1;
        assert!(u64::from_str_radix(&b[16..], 16).unwrap() >= next, "{a} then {b}");
    }

    #[test]
    fn a_missing_too_long_or_unprintable_id_is_replaced_by_a_generated_one() {
        let long = vec![b'a'; MAX_LEN + 1];
        for headers in [HeaderMap::new(), with(&long), with(b"has space"), with(b"tab\there"), with(b"caf\xc3\xa9")] {
            let id = from_headers(&headers);
            let id = as_text(&id);
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
