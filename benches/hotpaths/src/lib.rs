//! Empty: this package only holds the benches in `benches/`.
