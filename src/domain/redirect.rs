//! Building the redirect target: the landing URL with our parameters appended,
//! its own query and fragment kept intact.

/// Percent-encodes everything outside RFC 3986's unreserved set.
fn encode_into(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
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
    let wanted: usize = params.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut out = String::with_capacity(url.len() + wanted + 16);
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
    fn values_are_percent_encoded() {
        assert_eq!(append_query("https://a.com/", &[("promo", "SAVE 10%&x")]), "https://a.com/?promo=SAVE%2010%25%26x");
    }
}
