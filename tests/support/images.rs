//! Image data for the tests that write datasets or read back the pictures seqnet
//! draws: CIFAR-10's binary records, and PNG files as RGB.
#![allow(dead_code)]

use std::path::Path;

/// `n` records of CIFAR-10's binary version, one after the other: a label byte, then
/// 3 × 1024 pixel bytes (the R, G and B planes of a 32×32 image). Record `i` has label
/// `label(i)` and pixel byte `k` (0 to 3071) `pixel(i, k)`.
pub fn cifar_records(
    n: usize,
    label: impl Fn(usize) -> u8,
    pixel: impl Fn(usize, usize) -> u8,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 3073);
    for i in 0..n {
        out.push(label(i));
        out.extend((0..3072).map(|k| pixel(i, k)));
    }
    out
}

/// The PNG at `path` as RGB; a missing or unreadable file fails the test, naming it.
pub fn png(path: &Path) -> image::RgbImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8()
}
