//! Clickledger: an affiliate attribution engine.
//!
//! How a request flows through the modules:
//!
//! ```text
//! main ─► server (accept loop, connection bounds, graceful shutdown)
//!           └─► http::handle (router) ─► http::{admin, campaigns, ingest, ops}
//!                 │  decode JSON, check keys (http::auth), map errors (http::error)
//!                 └─► engine::Engine
//!                       ├─ catalog   campaigns / tracking codes / keys in DashMaps
//!                       ├─ ingest    click, conversion and postback rules
//!                       └─ registry ─► campaign::CampaignActor (one per campaign)
//!                                        bloom filter + idempotency window,
//!                                        group commit ─► store::Store
//!                                                         └─ embedded (redb)
//! domain/   pure rules: ids, click tokens, payout math, validation, bot detection
//! metrics   every metric name; config  settings; secrets  generated keys
//! ```

pub mod config;
pub mod domain;
pub mod engine;
pub mod error;
pub mod http;
pub mod metrics;
pub mod secrets;
pub mod server;
pub mod store;
