//! The model-file loader on arbitrary bytes: safetensors parsing, metadata, spec,
//! building the network within what the file can hold, strict state_dict loading. Any
//! input must give Ok or an error naming the file, never a panic or an allocation
//! beyond the file's size.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use seqnet::io::model;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.safetensors");
    match model::load_bytes(path, data) {
        Ok(m) => {
            // Everything it loaded came from the file.
            assert!(m.net.num_params() * 4 <= data.len());
        }
        Err(e) => assert!(e.to_string().contains("fuzz.safetensors"), "{e}"),
    }
});
