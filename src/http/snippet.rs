//! `GET /affiliate.js`: the browser snippet, compiled into the binary and
//! served with an ETag so browsers revalidate cheaply and CDNs can cache it.

use std::sync::OnceLock;

use hyper::body::Incoming;
use hyper::{header, Request, StatusCode};
use sha2::{Digest, Sha256};

use super::body::{text_response, Resp};

pub const SOURCE: &str = include_str!("affiliate.js");

/// A strong ETag of a compiled-in file: the first 64 bits of its SHA-256.
pub fn etag_of(source: &str) -> String {
    let digest = Sha256::digest(source.as_bytes());
    format!("\"{}\"", digest[..8].iter().map(|b| format!("{b:02x}")).collect::<String>())
}

pub fn serve(req: &Request<Incoming>) -> Resp {
    static ETAG: OnceLock<String> = OnceLock::new();
    serve_static(req, SOURCE, "text/javascript; charset=utf-8", ETAG.get_or_init(|| etag_of(SOURCE)))
}

/// A compiled-in file with its ETag: 304 when the client has it.
pub fn serve_static(req: &Request<Incoming>, source: &'static str, content_type: &'static str, etag: &str) -> Resp {
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if fresh {
        text_response(StatusCode::NOT_MODIFIED, content_type, "")
    } else {
        text_response(StatusCode::OK, content_type, source)
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, header::HeaderValue::from_str(etag).expect("hex etag"));
    // A day fresh, then revalidated with the ETag: updates reach pages within
    // a day without every page view refetching the file.
    h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("public, max-age=86400"));
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, header::HeaderValue::from_static("*"));
    resp
}
