//! Loops only: slices and sizes in, no layer structs, no `Result`. Each fast kernel has
//! a plain `*_naive` twin kept as the documented reference; tests compare the two on
//! awkward sizes. Sizes use llm.c's vocabulary: `n, c, h, w, oc, oh, ow, kh, kw`.

pub mod direct_conv;
pub mod gemm;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod gemm_wasm;
pub mod im2col;
pub mod image_cols;
pub mod pool;
pub mod thin;
