//! Pure types and rules: no I/O, unit-tested beside the code.

pub mod bot;
pub mod caps;
pub mod cursor;
pub mod ids;
pub mod keyed;
pub mod keys;
pub mod model;
pub mod money;
pub mod payout;
pub mod redirect;
pub mod referral;
pub mod review;
pub mod rules;
pub mod subids;
pub mod token;
pub mod validate;
pub mod webhook;

/// Wall-clock seconds since the epoch. Handlers take `now` as a value so the
/// rules below never read the clock themselves.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
