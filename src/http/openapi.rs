//! `GET /openapi.json`: the API's OpenAPI 3.1 document, kept by hand in
//! `openapi.json` next to this file and compiled into the binary. CI lints
//! it, and the integration tests check every response they receive against
//! it (`tests/openapi/`), so it cannot drift from the code.

use std::sync::OnceLock;

use hyper::body::Incoming;
use hyper::Request;

use super::body::Resp;
use super::snippet::{etag_of, serve_static};

pub const DOCUMENT: &str = include_str!("openapi.json");

pub fn serve(req: &Request<Incoming>) -> Resp {
    static ETAG: OnceLock<String> = OnceLock::new();
    serve_static(req, DOCUMENT, "application/json", ETAG.get_or_init(|| etag_of(DOCUMENT)))
}
