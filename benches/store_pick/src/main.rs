//! store-pick: batched durable inserts (group commit) in redb vs fjall.
//!
//! Each record = 2 inserts in one atomic, fsync'ed commit per batch:
//!   rows:  16-byte big-endian id -> ~200-byte JSON-ish value
//!   dedup: idempotency key (scrambled, so random order) -> 16-byte id
//! Variant "if-absent": `get` the dedup key first and insert only when absent.
//! Usage: store-pick [--dir BASE] [--records N]
use redb::ReadableTable; // brings Table::get into scope
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const ROWS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("rows");
const DEDUP: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("dedup");

struct Rec {
    key: [u8; 16],
    dedup: Vec<u8>,
    val: Vec<u8>,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn make_rec(id: u64) -> Rec {
    let h = splitmix(id);
    let mut val = format!(
        r#"{{"id":{id},"kind":"click","campaign":"cmp-{}","ts":{},"ip":"10.{}.{}.{}","ua":"Mozilla/5.0 (X11; Linux x86_64)","url":"https://ex.com/l?c={h:016x}""#,
        h % 977, 1_700_000_000_000u64 + id * 37, h & 255, (h >> 8) & 255, (h >> 16) & 255
    );
    while val.len() < 198 { val.push(' '); }
    val.push('}');
    Rec { key: (id as u128).to_be_bytes(), dedup: format!("idem-{h:016x}").into_bytes(), val: val.into_bytes() }
}

/// `write_batch` = one atomic transaction over both tables, durable (fsync'ed) on return.
trait Engine {
    fn write_batch(&mut self, recs: &[Rec], if_absent: bool) -> Res<()>;
}

struct Redb(redb::Database);
impl Engine for Redb {
    fn write_batch(&mut self, recs: &[Rec], if_absent: bool) -> Res<()> {
        let mut tx = self.0.begin_write()?;
        tx.set_durability(redb::Durability::Immediate)?; // fdatasync before commit() returns
        {
            let mut rows = tx.open_table(ROWS)?;
            let mut dedup = tx.open_table(DEDUP)?;
            for r in recs {
                if if_absent && dedup.get(r.dedup.as_slice())?.is_some() {
                    continue;
                }
                rows.insert(r.key.as_slice(), r.val.as_slice())?;
                dedup.insert(r.dedup.as_slice(), r.key.as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

struct Fjall {
    db: fjall::Database,
    rows: fjall::Keyspace,
    dedup: fjall::Keyspace,
}
impl Engine for Fjall {
    fn write_batch(&mut self, recs: &[Rec], if_absent: bool) -> Res<()> {
        // Atomic cross-keyspace batch; journal is flushed + fsync'ed (sync_all) inside commit().
        let mut b = self.db.batch().durability(Some(fjall::PersistMode::SyncAll));
        for r in recs {
            // read-before-write (not isolated vs other writers; fine for a single writer)
            if if_absent && self.dedup.get(&r.dedup)?.is_some() {
                continue;
            }
            b.insert(&self.rows, r.key.as_slice(), r.val.as_slice());
            b.insert(&self.dedup, r.dedup.as_slice(), r.key.as_slice());
        }
        b.commit()?;
        Ok(())
    }
}

fn open(engine: &str, dir: &Path) -> Res<Box<dyn Engine>> {
    Ok(match engine {
        "redb" => Box::new(Redb(redb::Database::create(dir.join("db.redb"))?)),
        _ => {
            let db = fjall::Database::builder(dir).open()?;
            let rows = db.keyspace("rows", fjall::KeyspaceCreateOptions::default)?;
            let dedup = db.keyspace("dedup", fjall::KeyspaceCreateOptions::default)?;
            Box::new(Fjall { db, rows, dedup })
        }
    })
}

/// (allocated bytes like `du`, apparent bytes like `ls -l`); fjall preallocates its journal.
fn dir_size(p: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut alloc, mut len) = (0, 0);
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        match e.metadata() {
            Ok(m) if m.is_dir() => {
                let (a, l) = dir_size(&e.path());
                (alloc, len) = (alloc + a, len + l);
            }
            Ok(m) => (alloc, len) = (alloc + m.blocks() * 512, len + m.len()),
            Err(_) => {}
        }
    }
    (alloc, len)
}

fn pct(sorted: &[Duration], p: f64) -> u128 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_micros()
}

fn main() -> Res<()> {
    let mut base = std::env::temp_dir();
    let mut total: u64 = 200_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => base = PathBuf::from(args.next().ok_or("--dir needs a path")?),
            "--records" => total = args.next().ok_or("--records needs N")?.parse()?,
            _ => return Err(format!("unknown arg {a}; usage: [--dir PATH] [--records N]").into()),
        }
    }
    println!("base dir: {}  records: {total} (B=1: min({total}, 5000))\n", base.display());
    println!("| engine | mode | batch | records | records/s | commits/s | p50 commit µs | p99 commit µs | disk MiB (du) | apparent MiB |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let all: Vec<Rec> = (0..total).map(make_rec).collect(); // built once, outside all timing
    for engine in ["redb", "fjall"] {
        for if_absent in [false, true] {
            for batch in [1usize, 16, 256, 1024] {
                let n = if batch == 1 { total.min(5_000) } else { total };
                let dir = base.join(format!("store-pick-{}-{engine}-{batch}-{if_absent}", std::process::id()));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir)?;
                let mut db = open(engine, &dir)?;
                let mut lat = Vec::with_capacity(n as usize / batch + 1);
                let start = Instant::now();
                let mut id = 0u64;
                while id < n {
                    let end = (id + batch as u64).min(n);
                    let t = Instant::now();
                    db.write_batch(&all[id as usize..end as usize], if_absent)?;
                    lat.push(t.elapsed());
                    id = end;
                }
                let secs = start.elapsed().as_secs_f64();
                drop(db); // close before measuring size
                let (du, len) = dir_size(&dir);
                let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
                std::fs::remove_dir_all(&dir)?;
                lat.sort();
                let mode = if if_absent { "if-absent" } else { "insert" };
                println!(
                    "| {engine} | {mode} | {batch} | {n} | {:.0} | {:.0} | {} | {} | {:.1} | {:.1} |",
                    n as f64 / secs, lat.len() as f64 / secs, pct(&lat, 0.50), pct(&lat, 0.99),
                    mib(du), mib(len)
                );
            }
        }
    }
    Ok(())
}
