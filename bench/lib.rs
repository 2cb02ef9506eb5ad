//! Ferry's benchmarks live in `benches/`; see README.md ("Benchmarks").
