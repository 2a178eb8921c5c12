//! Every 4xx the spec lists ("Bad input"): each answer is a JSON error
//! `{"error", "message"}` (plus `field` for validation errors) with the right
//! status, never a 5xx, and nothing stored changes. The one lenient answer —
//! 200 `ignored` — is for token problems on the conversions endpoint only.
//! One test binary, one module per kind of input.

#[path = "../common/mod.rs"]
mod common;
mod support;

mod amounts;
mod auth;
mod bodies;
mod campaigns;
mod lenient;
mod postbacks;
mod properties;
mod redirects;
mod routes;
