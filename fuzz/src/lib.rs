//! The fuzz targets' shared code: [`checks`] (also replayed over the corpus by
//! `tests/fuzz_corpus.rs`) and [`limit`], the allocator that makes unbounded memory a crash.

pub mod checks;
pub mod limit;
