//! Direct leads: evidence rules and the one-way review transitions.

use serde_json::Value;

use super::model::{Evidence, EvidenceType, Lead, LeadStatus};
use super::validate::{invalid, Invalid};

pub const MAX_EVIDENCE: usize = 10;
pub const MAX_DESCRIPTION: usize = 2_000;
pub const MAX_URL: usize = 2_048;
pub const MAX_REASON: usize = 1_000;

/// Checks each evidence item and names the exact field that is wrong.
pub fn evidence(items: &[Value]) -> Result<Vec<Evidence>, Invalid> {
    if items.is_empty() || items.len() > MAX_EVIDENCE {
        return Err(invalid("evidence", format!("must have 1 to {MAX_EVIDENCE} items")));
    }
    items.iter().enumerate().map(|(i, item)| one(i, item)).collect()
}

fn one(i: usize, item: &Value) -> Result<Evidence, Invalid> {
    let field = |name: &str| format!("evidence[{i}].{name}");
    let obj = item.as_object().ok_or_else(|| invalid(&format!("evidence[{i}]"), "must be an object"))?;
    if let Some(key) = obj.keys().find(|k| !matches!(k.as_str(), "type" | "url" | "hash" | "description")) {
        return Err(invalid(&field(key), "is not a known field (type, url, hash, description)"));
    }
    let text = |name: &str| -> Result<Option<String>, Invalid> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(_) => Err(invalid(&field(name), "must be a string")),
        }
    };
    let kind_text = text("type")?.ok_or_else(|| invalid(&field("type"), "is required"))?;
    let kind: EvidenceType = serde_json::from_value(Value::String(kind_text))
        .map_err(|_| invalid(&field("type"), format!("must be one of {}", EvidenceType::ALL)))?;
    let url = text("url")?.map(|u| url_ok(&u).map(|_| u).map_err(|m| invalid(&field("url"), m))).transpose()?;
    let hash = text("hash")?.map(|h| sha256_hex(&h).map_err(|m| invalid(&field("hash"), m))).transpose()?;
    let description = text("description")?;
    if description.as_ref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
        return Err(invalid(&field("description"), format!("must be at most {MAX_DESCRIPTION} characters")));
    }
    Ok(Evidence { kind, url, hash, description })
}

fn url_ok(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must be an http:// or https:// URL")?;
    if rest.split(['/', '?', '#']).next().unwrap_or("").is_empty() {
        return Err("must name a host".into());
    }
    if url.len() > MAX_URL || url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("must be at most {MAX_URL} characters, without spaces or control characters"));
    }
    Ok(())
}

fn sha256_hex(hash: &str) -> Result<String, &'static str> {
    if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hash.to_ascii_lowercase())
    } else {
        Err("must be a SHA-256 digest: 64 hexadecimal characters")
    }
}

/// A rejection's or reversal's reason: required, trimmed, bounded.
pub fn reason(text: Option<&str>) -> Result<String, Invalid> {
    let text = text.map(str::trim).unwrap_or("");
    if text.is_empty() || text.chars().count() > MAX_REASON {
        return Err(invalid("reason", format!("is required: 1 to {MAX_REASON} characters saying why")));
    }
    Ok(text.to_string())
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("the lead is already {0}; review decisions are final")]
    AlreadyDecided(&'static str),
}

/// Applies a review decision. `Ok(None)`: the lead already has it (repeating
/// a decision is idempotent); the opposite decision is refused.
pub fn decide(lead: &Lead, to: LeadStatus, reason: Option<String>, now: u64) -> Result<Option<Lead>, ReviewError> {
    match lead.status {
        s if s == to => Ok(None),
        LeadStatus::PendingReview => {
            let mut next = lead.clone();
            next.status = to;
            next.reviewed_at = Some(now);
            next.rejection_reason = reason.filter(|_| to == LeadStatus::Rejected);
            Ok(Some(next))
        }
        s => Err(ReviewError::AlreadyDecided(s.as_str())),
    }
}

#[cfg(test)]
#[path = "review_tests.rs"]
mod tests;
