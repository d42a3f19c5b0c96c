// Loads seqnet's WebAssembly build: the relaxed-SIMD one (pkg/seqnet_web_relaxed.js,
// built with +simd128,+relaxed-simd: fused multiply-adds in the GEMM and Linear loops)
// where this browser validates relaxed SIMD, else the plain simd128 one
// (pkg/seqnet_web.js), which every current browser runs. Both are the same Rust code; the
// relaxed one's last bits can differ (fused or not is the engine's choice for the
// machine), and are the same from run to run on one machine.
//
// The detection is WebAssembly.validate of a 49-byte module whose one function returns
// f32x4.relaxed_madd(splat 0, splat 0, splat 0) (opcode 0xfd 0x105): the same test the
// npm package wasm-feature-detect makes, written out here rather than adding a dependency.
const RELAXED_MADD = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, // magic, version 1
  1, 5, 1, 96, 0, 1, 123, // type section: () -> v128
  3, 2, 1, 0, // function section: one function of type 0
  10, 28, 1, 26, 0, // code section: one body of 26 bytes, no locals
  67, 0, 0, 0, 0, 253, 19, // f32.const 0, f32x4.splat
  67, 0, 0, 0, 0, 253, 19,
  67, 0, 0, 0, 0, 253, 19,
  253, 133, 2, // f32x4.relaxed_madd
  11, // end
]);

/** Whether this browser runs relaxed SIMD. */
export const relaxedSimd = WebAssembly.validate(RELAXED_MADD);

/**
 * Imports and instantiates the build: `which` is 'relaxed-simd' or 'simd128' to choose
 * (the bench's ?wasm=), anything else to detect. Returns the bindings module, with
 * `build` naming the build loaded.
 */
export async function loadSeqnet(which) {
  const relaxed = which === 'relaxed-simd' || (which !== 'simd128' && relaxedSimd);
  const pkg = relaxed
    ? await import('./pkg/seqnet_web_relaxed.js')
    : await import('./pkg/seqnet_web.js');
  await pkg.default();
  return { ...pkg, build: relaxed ? 'relaxed-simd' : 'simd128' };
}
