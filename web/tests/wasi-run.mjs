// Cargo's runner for wasm32-wasip1 test binaries: runs one in node's WASI (V8, the engine
// of the browser the page runs in, with wasm SIMD), so that the library's own #[test]s
// check its wasm kernels (src/kernels/gemm_wasm.rs, thin_wasm.rs) against their portable
// twins. .ci/run uses it as
//   CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings web/tests/wasi-run.mjs" \
//   RUSTFLAGS="-C target-feature=+simd128" cargo test --lib --target wasm32-wasip1 ...
// A failed assertion aborts the wasm (panic = abort there) after printing its message;
// that is a non-zero exit here.
import { WASI } from 'node:wasi';
import { readFile } from 'node:fs/promises';

const [file, ...args] = process.argv.slice(2);
if (!file) {
  console.error('usage: node wasi-run.mjs TEST.wasm [ARGS...]');
  process.exit(2);
}
const wasi = new WASI({ version: 'preview1', args: [file, ...args], env: {}, returnOnExit: true });
let code;
try {
  const module = await WebAssembly.compile(await readFile(file));
  const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
  code = wasi.start(instance);
} catch (e) {
  console.error(`${file}: ${e.message || e}`);
  code = 101;
}
process.exit(code);
