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

/// Landing URLs are absolute http(s) URLs without spaces or control
/// characters, because the redirect copies them into a Location header.
pub fn landing_url(field: &str, value: &str) -> Result<String, Invalid> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or_else(|| invalid(field, "must be an absolute http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || value.len() > 2048 {
        return Err(invalid(field, "must name a host and be at most 2048 characters"));
    }
    if value.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'"' || b == b'<' || b == b'>') {
        return Err(invalid(field, "must not contain spaces, quotes, angle brackets or control characters"));
    }
    Ok(value.to_string())
}

/// Origins are `scheme://host[:port]` exactly as browsers send them.
pub fn origins(field: &str, values: &[String]) -> Result<Vec<String>, Invalid> {
    if values.len() > 50 {
        return Err(invalid(field, "at most 50 origins"));
    }
    values
        .iter()
        .map(|o| {
            let o = o.trim().trim_end_matches('/');
            let ok = (o.starts_with("https://") || o.starts_with("http://"))
                && o.splitn(4, '/').nth(3).is_none_or(|p| p.is_empty())
                && !o.contains(['?', '#', ' ']);
            if ok {
                Ok(o.to_ascii_lowercase())
            } else {
                Err(invalid(field, format!("'{}' is not an origin like https://shop.example.com", excerpt(o))))
            }
        })
        .collect()
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
    fn origins_are_normalised_and_paths_rejected() {
        assert_eq!(origins("o", &["https://Shop.example.com/".into()]).unwrap(), vec!["https://shop.example.com"]);
        assert!(origins("o", &["https://shop.example.com/cart".into()]).is_err());
        assert!(origins("o", &["shop.example.com".into()]).is_err());
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
