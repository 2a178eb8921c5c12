//! Space use of a stopped engine's embedded data file, as redb sees it, and
//! after a compaction (BENCHMARKS.md, bytes per stored click):
//! `cargo run --release --example store_stats -- DATA_DIR [--compact]`.
//! Works on a copy if you want to keep the original untouched.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).ok_or("usage: store_stats DATA_DIR [--compact]")?;
    let file = std::path::Path::new(dir).join("clickledger.redb");
    let mut db = redb::Database::open(&file)?;
    let stats = db.begin_write()?.stats()?;
    let page = stats.page_size() as u64;
    println!(
        "file {} B; allocated {} B; stored leaf bytes {} B; metadata {} B; fragmented {} B",
        std::fs::metadata(&file)?.len(),
        stats.allocated_pages() * page,
        stats.stored_bytes(),
        stats.metadata_bytes(),
        stats.fragmented_bytes()
    );
    if args.iter().any(|a| a == "--compact") {
        db.compact()?;
        drop(db);
        println!("after compaction: file {} B", std::fs::metadata(&file)?.len());
    }
    Ok(())
}
