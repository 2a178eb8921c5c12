//! Writes N postback leads (N dedup keys) into one campaign of an embedded
//! data directory, fast, through the library's own store: 1000-lead group
//! commits, several in flight so the store's writer folds them together.
//! For the restart measurements in BENCHMARKS.md ("Restart and memory").
//!
//! Create the advertiser, campaign and tracking code the normal way first
//! (`clickledger-loadtest setup` against a server on the same directory),
//! stop the server (redb allows one process per file), then:
//!
//!     seed_keys --data-dir /tmp/cl-10m --code CODE --keys 10000000
//!
//! External ids are `{prefix}-{i:09}` (prefix `seed` unless `--prefix`), so a
//! duplicate of a seeded key is easy to send afterwards. Leads pay nothing
//! (`payoutCents` 0): the money supervisors have no escrow backlog to add to
//! the restart being measured.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clickledger::domain::model::{Lead, TrackingCode};
use clickledger::store::embedded::EmbeddedStore;
use clickledger::store::{Batch, Keyed, Outcome, Store};

const BATCH: usize = 1000;
const IN_FLIGHT: usize = 8;

struct Args {
    data_dir: PathBuf,
    code: String,
    keys: u64,
    prefix: String,
}

fn parse() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut data_dir, mut code, mut keys, mut prefix) = (None, None, None, "seed".to_string());
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--data-dir" => data_dir = Some(PathBuf::from(value)),
            "--code" => code = Some(value),
            "--keys" => keys = Some(value.parse().map_err(|e| format!("--keys: {e}"))?),
            "--prefix" => prefix = value,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let usage = "usage: seed_keys --data-dir DIR --code TRACKING_CODE --keys N [--prefix P]";
    Ok(Args { data_dir: data_dir.ok_or(usage)?, code: code.ok_or(usage)?, keys: keys.ok_or(usage)?, prefix })
}

fn lead(code: &TrackingCode, external_id: String, now: u64) -> Keyed {
    let affiliate = code.affiliate_id.expect("an approved affiliate's code, not a campaign's test code");
    Keyed::Lead(Lead::verified(code.campaign_id, affiliate, code.code.clone(), external_id, now))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = parse()?;
    let store = Arc::new(EmbeddedStore::open(&args.data_dir, 4 * IN_FLIGHT).map_err(|e| e.to_string())?);
    let code = store.get_tracking_code(&args.code).await.map_err(|e| e.to_string())?;
    let code = Arc::new(code.ok_or(format!("no tracking code {} in {}", args.code, args.data_dir.display()))?);
    let started = Instant::now();
    let now = clickledger::domain::unix_now();
    let mut flights = tokio::task::JoinSet::new();
    let (mut next, mut inserted, mut millions) = (0u64, 0u64, 0u64);
    while next < args.keys || !flights.is_empty() {
        while next < args.keys && flights.len() < IN_FLIGHT {
            let end = args.keys.min(next + BATCH as u64);
            let keyed = (next..end).map(|i| lead(&code, format!("{}-{i:09}", args.prefix), now)).collect();
            let store = store.clone();
            flights.spawn(async move { store.commit(Arc::new(Batch { keyed, ..Default::default() })).await });
            next = end;
        }
        let outcomes = flights.join_next().await.expect("one in flight").map_err(|e| e.to_string())?;
        inserted +=
            outcomes.map_err(|e| e.to_string())?.iter().filter(|o| matches!(o, Outcome::Inserted)).count() as u64;
        if inserted / 1_000_000 > millions {
            millions = inserted / 1_000_000;
            eprintln!("{inserted} inserted, {:.0} s", started.elapsed().as_secs_f64());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{inserted} of {} leads inserted into campaign {} in {secs:.1} s ({:.0}/s)",
        args.keys,
        code.campaign_id,
        inserted as f64 / secs
    );
    Ok(())
}
