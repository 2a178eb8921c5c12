//! Input rules with no I/O. Each failure names the field and says what to do,
//! so the HTTP layer can answer a 400 a person can act on.

use std::collections::BTreeMap;

use super::model::Fields;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

pub fn invalid(field: &str, message: impl Into<String>) -> Invalid {
    Invalid { field: field.to_string(), message: message.into() }
}

/// Longest piece of a client's input an error message repeats back.
pub const EXCERPT_CHARS: usize = 64;

/// The first `EXCERPT_CHARS` characters of `input`, with `…` when cut: error
/// messages name what was wrong without echoing kilobytes of it back.
pub fn excerpt(input: &str) -> std::borrow::Cow<'_, str> {
    excerpt_to(input, EXCERPT_CHARS)
}

/// The first `max` characters of `input`, with `…` when cut.
pub fn excerpt_to(input: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match input.char_indices().nth(max) {
        None => input.into(),
        Some((end, _)) => format!("{}…", &input[..end]).into(),
    }
}

/// Bounds on free-form `properties` / `metadata` objects.
#[derive(Clone, Copy, Debug)]
pub struct FieldLimits {
    pub max_keys: usize,
    pub max_key_len: usize,
    pub max_value_len: usize,
}

pub fn name(field: &str, value: &str) -> Result<String, Invalid> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > 200 {
        return Err(invalid(field, "must be 1 to 200 characters"));
    }
    Ok(value.to_string())
}

/// Longest landing URL accepted (after normalisation).
const MAX_URL: usize = 2048;

/// Landing URLs are absolute http(s) URLs with a host, parsed the way
/// browsers parse them (WHATWG, by the `url` crate: ports checked, IDNA
/// hosts to punycode), and kept in that normalised, all-ASCII form, so the
/// redirect copies them into a Location header as they are. Spaces, quotes,
/// angle brackets and control characters are refused rather than escaped
/// (they are a pasting mistake), and so are user names and passwords.
pub fn landing_url(field: &str, value: &str) -> Result<String, Invalid> {
    if value.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'"' || b == b'<' || b == b'>') {
        return Err(invalid(field, "must not contain spaces, quotes, angle brackets or control characters"));
    }
    let url = url::Url::parse(value).map_err(|e| invalid(field, format!("is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(field, "must be an absolute http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(field, "must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(field, "must not carry a user name or password"));
    }
    if url.as_str().len() > MAX_URL {
        return Err(invalid(field, format!("must be at most {MAX_URL} characters")));
    }
    Ok(url.into())
}

/// Origins are `scheme://host[:port]` as browsers send them in `Origin`:
/// parsed as URLs and kept in their ASCII serialisation (lower case,
/// punycode, no default port), so comparing with the header is exact.
pub fn origins(field: &str, values: &[String]) -> Result<Vec<String>, Invalid> {
    if values.len() > 50 {
        return Err(invalid(field, "at most 50 origins"));
    }
    values.iter().map(|o| origin(field, o)).collect()
}

fn origin(field: &str, value: &str) -> Result<String, Invalid> {
    let bad = || invalid(field, format!("'{}' is not an origin like https://shop.example.com", excerpt(value)));
    let url = url::Url::parse(value.trim()).map_err(|_| bad())?;
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none() && url.username().is_empty();
    if !matches!(url.scheme(), "http" | "https") || !bare || url.password().is_some() {
        return Err(bad());
    }
    Ok(url.origin().ascii_serialization())
}

pub fn promo_code(field: &str, value: &str) -> Result<String, Invalid> {
    let value = value.trim();
    if value.is_empty() || value.len() > 64 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(field, "must be 1 to 64 visible ASCII characters"));
    }
    Ok(value.to_string())
}

pub fn field_mapping(field: &str, mapping: &BTreeMap<String, String>, limits: FieldLimits) -> Result<(), Invalid> {
    if mapping.len() > limits.max_keys {
        return Err(invalid(field, format!("at most {} mapped keys", limits.max_keys)));
    }
    for (k, v) in mapping {
        let bad = |s: &str| s.is_empty() || s.chars().count() > limits.max_key_len;
        if bad(k) || bad(v) {
            return Err(invalid(field, format!("keys and field names must be 1 to {} characters", limits.max_key_len)));
        }
    }
    Ok(())
}

pub fn email(field: &str, value: &str) -> Result<String, Invalid> {
    let value = value.trim();
    let ok = value.len() <= 254
        && value.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !value.contains([' ', '<', '>', ',']);
    if ok {
        Ok(value.to_string())
    } else {
        Err(invalid(field, "must be an email address"))
    }
}

/// Splits a properties object into mapped fields and the rest, enforcing size
/// bounds so one caller cannot store megabytes under one conversion.
pub fn split_fields(
    field: &str,
    props: &serde_json::Map<String, serde_json::Value>,
    mapping: &BTreeMap<String, String>,
    limits: FieldLimits,
) -> Result<(Fields, Fields), Invalid> {
    if props.len() > limits.max_keys {
        return Err(invalid(field, format!("at most {} keys", limits.max_keys)));
    }
    let (mut mapped, mut extra) = (Fields::new(), Fields::new());
    for (key, value) in props {
        if key.is_empty() || key.chars().count() > limits.max_key_len {
            return Err(invalid(field, format!("keys must be 1 to {} characters", limits.max_key_len)));
        }
        let len = match value {
            serde_json::Value::String(s) => s.chars().count(),
            other => other.to_string().chars().count(),
        };
        if len > limits.max_value_len {
            return Err(invalid(field, format!("'{key}' is longer than {} characters", limits.max_value_len)));
        }
        match mapping.get(key) {
            Some(name) => mapped.insert(name.clone(), value.clone()),
            None => extra.insert(key.clone(), value.clone()),
        };
    }
    Ok((mapped, extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FieldLimits = FieldLimits { max_keys: 3, max_key_len: 8, max_value_len: 10 };

    #[test]
    fn landing_urls_must_be_absolute_http_without_spaces() {
        assert!(landing_url("landingUrl", "https://shop.example.com/p?x=1#top").is_ok());
        assert!(landing_url("landingUrl", "ftp://x").is_err());
        assert!(landing_url("landingUrl", "https://").is_err());
        assert!(landing_url("landingUrl", "https://a.com/ b").is_err());
        assert!(landing_url("landingUrl", "https://a.com/\r\nSet-Cookie:x").is_err());
    }

    #[test]
    fn landing_urls_are_kept_in_their_normalised_ascii_form() {
        assert_eq!(
            landing_url("l", "https://bücher.example/größe?x=1").unwrap(),
            "https://xn--bcher-kva.example/gr%C3%B6%C3%9Fe?x=1"
        );
        assert_eq!(landing_url("l", "HTTPS://Shop.Example.COM:443/p").unwrap(), "https://shop.example.com/p");
        assert!(landing_url("l", "https://shop.example.com:99999/").is_err(), "a port past 65535");
        assert!(landing_url("l", "https://user:pw@shop.example.com/").is_err());
        assert!(landing_url("l", "javascript:alert(1)").is_err());
        assert!(landing_url("l", &format!("https://a.com/{}", "x".repeat(2100))).is_err());
    }

    #[test]
    fn origins_are_normalised_and_paths_rejected() {
        assert_eq!(origins("o", &["https://Shop.example.com/".into()]).unwrap(), vec!["https://shop.example.com"]);
        assert_eq!(origins("o", &["https://shop.example.com:443".into()]).unwrap(), vec!["https://shop.example.com"]);
        assert_eq!(origins("o", &["http://localhost:3000".into()]).unwrap(), vec!["http://localhost:3000"]);
        assert_eq!(origins("o", &["https://bücher.example".into()]).unwrap(), vec!["https://xn--bcher-kva.example"]);
        assert!(origins("o", &["https://shop.example.com/cart".into()]).is_err());
        assert!(origins("o", &["https://shop.example.com?x=1".into()]).is_err());
        assert!(origins("o", &["shop.example.com".into()]).is_err());
        assert!(origins("o", &["file:///etc".into()]).is_err());
    }

    #[test]
    fn mapped_properties_become_fields_and_the_rest_is_kept_alongside() {
        let props = serde_json::json!({"plan": "pro", "seats": 3}).as_object().unwrap().clone();
        let mapping = BTreeMap::from([("plan".to_string(), "Plan".to_string())]);
        let (fields, extra) = split_fields("properties", &props, &mapping, LIMITS).unwrap();
        assert_eq!(fields["Plan"], "pro");
        assert_eq!(extra["seats"], 3);
    }

    #[test]
    fn oversize_properties_name_the_limit() {
        let long = serde_json::json!({"k": "x".repeat(11)}).as_object().unwrap().clone();
        let err = split_fields("properties", &long, &BTreeMap::new(), LIMITS).unwrap_err();
        assert!(err.message.contains("10"), "{err}");
        let many = serde_json::json!({"a":1,"b":2,"c":3,"d":4}).as_object().unwrap().clone();
        assert!(split_fields("properties", &many, &BTreeMap::new(), LIMITS).unwrap_err().message.contains("3 keys"));
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        assert!(email("email", "jane@example.com").is_ok());
        assert!(email("email", "jane").is_err());
        assert!(email("email", "@example.com").is_err());
    }
}
