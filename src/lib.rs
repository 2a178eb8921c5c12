//! Clickledger: an affiliate attribution engine.
//!
//! How a request flows through the modules:
//!
//! ```text
//! main ─► server (accept loop, connection bounds, graceful shutdown)
//!           └─► http::handle (router) ─► http::{admin, campaigns, ingest, ops, snippet,
//!                 │                                  referrals, leads, money}
//!                 │  decode JSON and query strings (http::query), check keys (http::auth),
//!                 │  map errors (http::error), serve affiliate.js, CORS for the browser path
//!                 └─► engine::Engine
//!                       ├─ catalog   campaigns / tracking codes / approvals / key records /
//!                       │            tenant status in DashMaps, re-read every revalidate interval
//!                       ├─ tenants   advertisers, affiliates and their keys (store::Keys)
//!                       ├─ ingest    click, conversion and postback (and refund) rules
//!                       ├─ referrals agent referrals: create, check a token, confirm
//!                       ├─ leads     direct leads with evidence: submit, list, review
//!                       ├─ payments  fund, balance, wallet, reverse ─► money::Money
//!                       │            (supervisor: escrow, release, credit, expiry on timers)
//!                       ├─ limiter   token buckets: browser calls, writes per secret key
//!                       └─ registry ─► campaign::CampaignActor (one per campaign)
//!                                        bloom filter (rebuilt in the background
//!                                        by rebuild) + idempotency window,
//!                                        group commit ─► store::Store
//!                                                         ├─ embedded (redb)
//!                                                         └─ cql (ScyllaDB / Cassandra)
//! domain/   pure rules: ids, click and referral tokens, payout math, money moves,
//!           review transitions, validation, bot detection
//! metrics   every metric name; config  settings; secrets  generated keys
//! engine::readiness  what GET /readyz and the clickledger_ready gauge report
//! probe     `clickledger probe URL`, the container's health check
//! private_fs  the data directory 0700, its files 0600; logging  a log sink that cannot block or fail serving
//! ```

pub mod config;
pub mod domain;
pub mod engine;
pub mod error;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod private_fs;
pub mod probe;
pub mod secrets;
pub mod server;
pub mod store;
