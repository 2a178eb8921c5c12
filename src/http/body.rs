//! Reading bounded JSON bodies and writing JSON responses.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{header, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::domain::validate;
use crate::error::Error;

pub type Resp = Response<Full<Bytes>>;

/// Reads at most `limit` bytes within `timeout`, then decodes JSON. Errors
/// name the offending field path (`payoutCents: invalid type …`).
pub async fn read_json<T: DeserializeOwned>(
    req: Request<Incoming>,
    limit: usize,
    timeout: Duration,
) -> Result<T, Error> {
    parse_json(&read_bytes(req, limit, timeout).await?)
}

/// Like `read_json`, but an empty body means `T::default()`: for actions
/// whose every field is optional (`POST /leads/{id}/verify`).
pub async fn read_json_or_default<T: DeserializeOwned + Default>(
    req: Request<Incoming>,
    limit: usize,
    timeout: Duration,
) -> Result<T, Error> {
    let bytes = read_bytes(req, limit, timeout).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(&bytes)
}

/// A declared length over the limit is refused before a byte of the body is
/// read (and before anything else is looked at); the connection then closes
/// lingering (see `linger`), so the client still reads the 413 while it is
/// writing.
pub fn check_declared_length(headers: &hyper::HeaderMap, limit: usize) -> Result<(), Error> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit as u64 => Err(Error::TooLarge { limit }),
        _ => Ok(()),
    }
}

/// The body's bytes, at most `limit` of them, within `timeout`.
pub async fn read_bytes(req: Request<Incoming>, limit: usize, timeout: Duration) -> Result<Bytes, Error> {
    check_declared_length(req.headers(), limit)?;
    let collected = tokio::time::timeout(timeout, Limited::new(req.into_body(), limit).collect())
        .await
        .map_err(|_| Error::Timeout)?;
    let bytes = match collected {
        Ok(c) => c.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return Err(Error::TooLarge { limit })
        }
        Err(e) => return Err(Error::BadJson(format!("could not read the request body: {e}"))),
    };
    Ok(bytes)
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::BadJson("the request body is empty; send a JSON object".into()));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = excerpt_quoted(&e.into_inner().to_string());
        if path.is_empty() || path == "." {
            Error::BadJson(format!("the body is not a valid JSON object: {inner}"))
        } else {
            Error::BadJson(format!("{}: {inner}", validate::excerpt(&path)))
        }
    })?;
    // One JSON value and nothing after it but whitespace: a second object
    // or trailing garbage means the client did not send what it meant to.
    de.end().map_err(|e| Error::BadJson(format!("unexpected data after the JSON object: {e}")))?;
    Ok(value)
}

/// serde_json quotes the input it complains about (`` `field` ``, `"value"`);
/// each quoted piece is cut to an excerpt.
fn excerpt_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(512));
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest[open..].chars().next().expect("found a quote");
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        let Some(close) = rest.find(quote) else { break };
        out.push_str(&validate::excerpt(&rest[..close]));
        out.push(quote);
        rest = &rest[close + 1..];
    }
    out.push_str(&validate::excerpt(rest));
    out
}

pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Resp {
    let bytes = serde_json::to_vec(body).expect("response bodies always serialize");
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .expect("static headers are valid")
}

pub fn text_response(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    // Room for what the handler and the dispatcher add (location, caching,
    // request id), so the map is allocated once.
    headers.reserve(8);
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    resp
}
