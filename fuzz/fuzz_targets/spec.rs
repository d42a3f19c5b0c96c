//! The spec parser and network builder on arbitrary text: `spec::parse`,
//! `spec::to_layers`, then `spec::build` for a small input shape chosen by the first
//! bytes, under a parameter budget so that a valid but large network is refused before
//! it is allocated (as a model file's spec is). Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seqnet::spec;

/// At most 4 Mi parameters (16 MiB) per fuzzed network.
const MAX_PARAMS: usize = 1 << 22;
const LIMIT: &str = "the fuzz budget";

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let shape = [
        1 + usize::from(data[0] % 3),
        1 + usize::from(data[1] % 32),
        1 + usize::from(data[2] % 32),
    ];
    let Ok(text) = std::str::from_utf8(&data[3..]) else {
        return;
    };
    let parsed = spec::parse(text);
    let layers = spec::to_layers(text);
    if let Ok(layers) = &layers {
        // Every layer it constructs prints a repr that reads back.
        for layer in layers {
            let repr = layer.repr();
            assert!(spec::to_layers(&repr).is_ok(), "{repr} does not read back");
        }
    }
    if let (Err(e), Ok(_)) = (&parsed, &layers) {
        panic!("to_layers accepted what parse rejected: {e}");
    }
    match spec::build_within(text, &shape, 0, MAX_PARAMS, LIMIT) {
        Ok(net) => {
            assert!(net.num_params() <= MAX_PARAMS);
            // The canonical spec reads back to the same network.
            let again = spec::build_within(&net.spec(), &shape, 0, MAX_PARAMS, LIMIT)
                .unwrap_or_else(|e| panic!("canonical spec {} fails: {e}", net.spec()));
            assert_eq!(again.spec(), net.spec());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
