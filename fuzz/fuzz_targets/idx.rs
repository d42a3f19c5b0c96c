//! The IDX reader (raw and gzipped) on arbitrary bytes, as an images file and as a
//! labels file. Any input must give Ok or an error naming the file: never a panic, and
//! never an allocation larger than the data present (libFuzzer's -rss_limit_mb and
//! -malloc_limit_mb catch those).
#![no_main]

use libfuzzer_sys::fuzz_target;
use seqnet::data::idx;

fuzz_target!(|data: &[u8]| {
    const NAME: &str = "fuzz-idx3-ubyte";
    match idx::images_from_bytes(data, NAME) {
        Ok(img) => {
            assert_eq!(img.pixels.len(), img.n * img.h * img.w);
            assert!(img.pixels.len() <= data.len() || data.starts_with(&[0x1f, 0x8b]));
        }
        Err(e) => assert!(e.to_string().starts_with(NAME), "{e}"),
    }
    match idx::labels_from_bytes(data, NAME) {
        Ok(labels) => assert!(!labels.is_empty()),
        Err(e) => assert!(e.to_string().starts_with(NAME), "{e}"),
    }
});
