//! Batch ingestion: many postbacks (or server-to-server conversions) in one
//! request, as NDJSON or a JSON array, each item answered on its own.
//!
//! Every item goes through exactly the single endpoint's path, all of them at
//! once, so they land in the same group commits. An item whose externalId
//! (or clickId) appeared earlier in the batch waits for that one first, so
//! the earlier is recorded and the later answered as its duplicate. The
//! answer is written once every item has its outcome, so every `recorded`
//! item is durable by then. A server-side failure of any item (overload, a
//! store outage) fails the whole request with that 503: the client retries
//! the batch, and the items that did land come back as duplicates.

use std::collections::HashSet;

use hyper::body::Incoming;
use hyper::{header, Request, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use super::body::{json_response, Resp};
use crate::error::{Error, Result};

/// One item's result as the batch answer lists it.
pub struct ItemResult {
    pub status: &'static str,
    /// The record's id under its field name (`leadId`, `conversionId`).
    pub id: Option<(&'static str, String)>,
    /// `reason` for ignored conversions.
    pub reason: Option<&'static str>,
}

/// The items of a batch body, each parsed on its own (a bad line is that
/// item's error, not the request's). `Err` only for the request as a whole.
pub fn split_items<T: DeserializeOwned>(
    content_type: Option<&str>,
    body: &[u8],
    max_items: usize,
) -> Result<Vec<Result<T>>> {
    let text = body.iter().position(|b| !b.is_ascii_whitespace()).map_or(&body[..0], |start| &body[start..]);
    let ndjson = match content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase()) {
        Some(c) if c == "application/x-ndjson" || c == "application/jsonl" => true,
        Some(c) if c == "application/json" => false,
        // No (or another) type: the first byte tells an array from lines.
        _ => !text.starts_with(b"["),
    };
    let items: Vec<Result<T>> = if ndjson {
        let lines = text.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace));
        let lines: Vec<&[u8]> = lines.take(max_items + 1).collect();
        check_count(lines.len(), max_items)?;
        lines.into_iter().map(super::body::parse_json).collect()
    } else {
        let array: Vec<Box<serde_json::value::RawValue>> = serde_json::from_slice(text)
            .map_err(|e| Error::BadJson(format!("the body is not a JSON array of postbacks: {e}")))?;
        check_count(array.len(), max_items)?;
        array.iter().map(|raw| super::body::parse_json(raw.get().as_bytes())).collect()
    };
    Ok(items)
}

fn check_count(n: usize, max: usize) -> Result<()> {
    if n == 0 {
        return Err(crate::domain::validate::invalid("items", "the batch is empty; send at least one item").into());
    }
    if n > max {
        let message = format!("a batch holds at most {max} items (ingest.batch_max_items)");
        return Err(crate::domain::validate::invalid("items", message).into());
    }
    Ok(())
}

/// Runs `run` on every item: all first occurrences of a key at once, then
/// the repeats, so a repeat always finds the earlier item recorded.
pub async fn run_all<T, F, Fut>(
    items: Vec<Result<T>>,
    key: impl Fn(&T) -> Option<String>,
    run: F,
) -> Vec<Result<ItemResult>>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<ItemResult>>,
{
    let mut seen = HashSet::new();
    let mut firsts = Vec::new();
    let mut repeats = Vec::new();
    let mut results: Vec<Option<Result<ItemResult>>> = (0..items.len()).map(|_| None).collect();
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Err(e) => results[i] = Some(Err(e)),
            Ok(item) => match key(&item) {
                Some(k) if seen.contains(&k) => repeats.push((i, item)),
                Some(k) => {
                    seen.insert(k);
                    firsts.push((i, item));
                }
                None => firsts.push((i, item)),
            },
        }
    }
    for pass in [firsts, repeats] {
        let run = &run;
        let done = futures::future::join_all(pass.into_iter().map(|(i, item)| async move { (i, run(item).await) }));
        for (i, result) in done.await {
            results[i] = Some(result);
        }
    }
    results.into_iter().map(|r| r.expect("every item ran")).collect()
}

/// The 200 answer, or the first server-side failure among the items.
pub fn answer(route: &'static str, mut results: Vec<Result<ItemResult>>) -> Result<Resp> {
    if let Some(failed) = results.iter().position(|r| r.as_ref().is_err_and(is_server_side)) {
        return Err(results.swap_remove(failed).err().expect("an error"));
    }
    crate::metrics::batch(route, results.len());
    let mut counts = STATUSES.map(|status| (status, 0u64));
    let listed: Vec<Value> = results
        .into_iter()
        .enumerate()
        .map(|(index, result)| {
            let status = result.as_ref().map_or("rejected", |r| r.status);
            crate::metrics::batch_item(route, status);
            if let Some((_, n)) = counts.iter_mut().find(|(s, _)| *s == status) {
                *n += 1;
            }
            item_json(index, result)
        })
        .collect();
    let mut body = Map::new();
    body.insert("results".into(), Value::Array(listed));
    body.extend(counts.map(|(status, n)| (status.to_string(), json!(n))));
    Ok(json_response(StatusCode::OK, &Value::Object(body)))
}

/// Every status an item may have, each counted in the answer.
const STATUSES: [&str; 6] = ["recorded", "duplicate", "rejected", "test", "reversed", "ignored"];

fn item_json(index: usize, result: Result<ItemResult>) -> Value {
    match result {
        Ok(r) => {
            let mut item = json!({"index": index, "status": r.status});
            if let Some((field, id)) = r.id {
                item[field] = json!(id);
            }
            if let Some(reason) = r.reason {
                item["reason"] = json!(reason);
            }
            item
        }
        Err(e) => {
            let body = super::error::error_body(&e);
            let mut item =
                json!({"index": index, "status": "rejected", "error": body["error"], "message": body["message"]});
            if !body["field"].is_null() {
                item["field"] = body["field"].clone();
            }
            item
        }
    }
}

fn is_server_side(e: &Error) -> bool {
    super::error::status_and_code(e).0.is_server_error()
}

/// The request's content type, for telling NDJSON from a JSON array.
pub fn content_type(req: &Request<Incoming>) -> Option<String> {
    req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string)
}
