//! Empty: this package only holds `benches/hot_paths.rs`.
