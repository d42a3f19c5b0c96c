//! The bytes of IDX files (MNIST's format), plain or gzipped, for tests that write
//! datasets. Test-only: the integration tests reach it as `support::idx`, and the unit
//! tests of `src/data/idx.rs` include this same file with `#[path]`.
#![allow(dead_code)]

use std::io::Write;

/// A u8 IDX images file (magic 2051) declaring `n` images of `h`×`w` and holding
/// `pixels`, which need not match what the header declares.
pub fn idx_images(n: usize, h: usize, w: usize, pixels: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, 3];
    for d in [n, h, w] {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

/// A u8 IDX labels file (magic 2049) holding `labels`.
pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, 1];
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

/// `bytes` gzipped, as the `.gz` files of the MNIST mirrors.
pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("in-memory write");
    enc.finish().expect("in-memory gzip")
}
