#!/usr/bin/env bash
# Builds the browser page into web/dist/ from a clean clone: the seqnet core compiled to
# WebAssembly (with SIMD), its JS bindings by wasm-bindgen, the page's files and its npm
# packages. Needs rustup, cargo, node and npm.
set -euo pipefail
cd "$(dirname "$0")"
web=$(pwd)

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || rustup target add wasm32-unknown-unknown

# wasm-bindgen-cli must be the version of the wasm-bindgen crate in the lock file: the
# generated JS and the wasm's bindings are made for each other.
version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3 }' wasm/Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $version"; then
  echo "installing wasm-bindgen-cli $version (cargo install --locked; a few minutes)"
  # --locked builds it with the lock file it was published with; wasm/Cargo.toml pins a
  # version whose published lock resolves from the registry (see the comment there).
  if ! cargo install --locked wasm-bindgen-cli --version "$version"; then
    echo "error: cargo install --locked wasm-bindgen-cli --version $version failed; if the" \
      "registry lacks a crate its lock names, pin wasm-bindgen in web/wasm/Cargo.toml to a" \
      "version whose CLI installs with --locked (cargo update -p wasm-bindgen --precise V)" >&2
    exit 1
  fi
fi

# Two builds of the same code. simd128: every current browser runs wasm SIMD (Chrome 91,
# Firefox 89, Safari 16.4). relaxed-simd (+simd128,+relaxed-simd): the GEMM and Linear
# loops use f32x4_relaxed_madd, a fused multiply-add where the CPU has one (Chromium has
# relaxed SIMD since 114). The page loads the relaxed build where the browser validates
# relaxed SIMD, else the simd128 one (src/seqnet.js). Each build has a target
# directory of its own, so that neither rebuilds the other's crates.
export CARGO_TARGET_DIR="${SEQNET_WEB_TARGET:-$web/wasm/target}"
RUSTFLAGS="-C target-feature=+simd128" \
  cargo build --release --locked --target wasm32-unknown-unknown --manifest-path wasm/Cargo.toml
relaxed_target="$CARGO_TARGET_DIR/relaxed-simd"
RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" CARGO_TARGET_DIR="$relaxed_target" \
  cargo build --release --locked --target wasm32-unknown-unknown --manifest-path wasm/Cargo.toml

rm -rf dist
mkdir -p dist/pkg dist/vendor
wasm-bindgen --target web --no-typescript --out-dir dist/pkg \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/seqnet_web.wasm"
wasm-bindgen --target web --no-typescript --out-dir dist/pkg --out-name seqnet_web_relaxed \
  "$relaxed_target/wasm32-unknown-unknown/release/seqnet_web.wasm"

npm ci --no-audit --no-fund --loglevel=error
cp index.html bench.html dist/
cp src/*.js src/*.css dist/
cp node_modules/uplot/dist/uPlot.esm.js node_modules/uplot/dist/uPlot.min.css dist/vendor/
echo "built $web/dist ($(stat -c %s dist/pkg/seqnet_web_bg.wasm) bytes of simd128 wasm," \
  "$(stat -c %s dist/pkg/seqnet_web_relaxed_bg.wasm) bytes of relaxed-simd wasm)"
