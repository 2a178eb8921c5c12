//! Building the redirect target: the landing URL with our parameters appended,
//! its own query and fragment kept intact.

/// Percent-encodes everything outside RFC 3986's unreserved set.
fn encoded_len(value: &str) -> usize {
    value.bytes().map(|b| if unreserved(b) { 1 } else { 3 }).sum()
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

fn encode_into(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if unreserved(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
}

/// Appends `params` to `url`'s query, before any `#fragment`.
pub fn append_query(url: &str, params: &[(&str, &str)]) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    // Exactly the length it will have: the redirect hands the buffer to
    // its Location header as it is, which costs no copy only when full.
    let wanted: usize = params.iter().map(|(k, v)| k.len() + encoded_len(v) + 2).sum();
    let mut out = String::with_capacity(url.len() + wanted);
    out.push_str(base);
    let mut sep = if !base.contains('?') {
        '?'
    } else if base.ends_with('?') || base.ends_with('&') {
        '\0'
    } else {
        '&'
    };
    for (k, v) in params {
        if sep != '\0' {
            out.push(sep);
        }
        out.push_str(k);
        out.push('=');
        encode_into(&mut out, v);
        sep = '&';
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    debug_assert!(out.len() + 1 >= out.capacity(), "sized exactly (one over after a bare '?')");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_go_before_the_fragment_and_after_an_existing_query() {
        assert_eq!(
            append_query("https://a.com/p?x=1#top", &[("swarm_ref", "AB")]),
            "https://a.com/p?x=1&swarm_ref=AB#top"
        );
        assert_eq!(append_query("https://a.com", &[("a", "1"), ("b", "2")]), "https://a.com?a=1&b=2");
        assert_eq!(append_query("https://a.com/?", &[("a", "1")]), "https://a.com/?a=1");
    }

    #[test]
    fn the_url_is_built_in_a_buffer_of_exactly_its_length() {
        for (url, params) in [
            ("https://a.com/p?x=1#top", &[("irw_id", "AbC-_9"), ("swarm_ref", "AB")][..]),
            ("https://a.com", &[("promo", "SAVE 10%&x")][..]),
        ] {
            let out = append_query(url, params);
            assert_eq!(out.capacity(), out.len(), "{out}");
        }
    }

    #[test]
    fn values_are_percent_encoded() {
        assert_eq!(append_query("https://a.com/", &[("promo", "SAVE 10%&x")]), "https://a.com/?promo=SAVE%2010%25%26x");
    }
}
