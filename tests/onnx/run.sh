#!/usr/bin/env bash
# End-to-end check of `seqnet export --onnx`: trains small networks covering every
# exported node and attribute, exports them, and has onnx's checker and onnxruntime
# confirm each file and reproduce seqnet's logits (tests/onnx/check_onnx.py).
#
#   bash tests/onnx/run.sh
#
# Python packages (onnx, onnxruntime, numpy, safetensors) go into a virtualenv outside
# the repository: $ONNX_VENV, default /tmp/seqnet-onnx-venv, created on first use.
# The seqnet binary is the debug build `cargo test` already made (override: $SEQNET_BIN).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${ONNX_VENV:-/tmp/seqnet-onnx-venv}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/seqnet-onnx.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

if ! "$VENV/bin/python" -c "import onnx, onnxruntime, numpy, safetensors" 2>/dev/null; then
  echo "onnx: installing onnx onnxruntime numpy safetensors into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check onnx onnxruntime numpy safetensors
fi
PY="$VENV/bin/python"

if [[ -z "${SEQNET_BIN:-}" ]]; then
  (cd "$ROOT" && cargo build --quiet --bin seqnet)
  TARGET="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
    "$PY" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
  SEQNET_BIN="$TARGET/debug/seqnet"
fi

# name|extra train flags|spec. The ceil_mode pools include both kinds: a last window that
# starts inside the image and overhangs the padding (kept; ONNX ceil_mode 1), and one that
# would start in the padding (PyTorch drops it; exported as ceil_mode 0, same windows).
NETS=(
  "seed||Conv2d(1, 20, 5) -> ReLU() -> MaxPool2d(2) -> Flatten() -> LazyLinear(100) -> ReLU() -> Linear(100, 10)"
  "strided_padded||Conv2d(1, 8, 3, stride=2, padding=1) -> ReLU() -> Conv2d(8, 12, (3, 5), stride=(2, 1), padding=(2, 1), bias=False) -> ReLU() -> MaxPool2d(3, stride=2, padding=1, ceil_mode=True) -> Flatten() -> LazyLinear(10)"
  "avgpool_ceil||Conv2d(1, 6, 5, padding=2) -> Tanh() -> MaxPool2d(2) -> AvgPool2d(3, stride=3, padding=1, ceil_mode=True, count_include_pad=False) -> Conv2d(6, 10, 3) -> ReLU() -> AvgPool2d(2, ceil_mode=True, count_include_pad=False) -> Flatten() -> LazyLinear(10)"
  "avgpool_include_pad||Conv2d(1, 4, 3) -> ReLU() -> AvgPool2d(3, stride=2, padding=1, ceil_mode=True) -> AvgPool2d((2, 3), stride=(1, 2), padding=(1, 1)) -> Flatten() -> LazyLinear(10)"
  "sigmoid_tanh|--normalize 0.1307,0.3081|Flatten() -> Linear(784, 64) -> Sigmoid() -> Linear(64, 32) -> Tanh() -> Dropout(0.25) -> Linear(32, 10, bias=False)"
  "logsoftmax||Conv2d(1, 4, 3) -> ReLU() -> MaxPool2d(3, stride=2, padding=1) -> Flatten() -> Dropout(0.5) -> LazyLinear(10) -> LogSoftmax(dim=1)"
  "softmax|--lr 0.5|Flatten() -> Linear(784, 10) -> Softmax(dim=1)"
  "batchnorm||Conv2d(1, 6, 3, bias=False) -> BatchNorm2d(6) -> ReLU() -> MaxPool2d(2) -> Flatten() -> LazyLinear(32, bias=False) -> BatchNorm1d(32, momentum=None) -> ReLU() -> Linear(32, 10)"
  "gelu||Conv2d(1, 6, 5) -> GELU() -> MaxPool2d(2) -> Flatten() -> LazyLinear(32) -> GELU(approximate='tanh') -> Linear(32, 10)"
  "silu_elu||Conv2d(1, 6, 5) -> SiLU() -> MaxPool2d(2) -> Flatten() -> LazyLinear(32) -> ELU(alpha=0.5) -> Linear(32, 10)"
  "identity||Conv2d(1, 4, 3) -> Identity(7, unused=1) -> ReLU() -> Flatten() -> Identity() -> LazyLinear(10)"
  "dropout2d||Conv2d(1, 8, 5) -> ReLU() -> Dropout2d(0.3) -> MaxPool2d(2) -> Flatten() -> LazyLinear(10)"
  "adaptive_avg||Conv2d(1, 8, 5) -> ReLU() -> AdaptiveAvgPool2d((8, 6)) -> Conv2d(8, 6, 3) -> ReLU() -> AdaptiveAvgPool2d(1) -> Flatten() -> Linear(6, 10)"
  "adaptive_max||Conv2d(1, 8, 5) -> ReLU() -> AdaptiveMaxPool2d((12, 8)) -> Conv2d(8, 6, 3) -> ReLU() -> AdaptiveMaxPool2d(1) -> Flatten() -> Linear(6, 10)"
  "leaky_relu||Conv2d(1, 6, 5) -> LeakyReLU(0.1) -> MaxPool2d(2) -> Flatten() -> LazyLinear(32) -> LeakyReLU() -> Linear(32, 10)"
  "conv_options||Conv2d(1, 6, 4, padding='same') -> ReLU() -> Conv2d(6, 6, 3, padding='same', dilation=2, groups=6) -> ReLU() -> Conv2d(6, 8, (2, 3), padding='same', dilation=(3, 1), groups=2, bias=False) -> ReLU() -> MaxPool2d(2) -> Conv2d(8, 8, 3, stride=2, dilation=2, groups=4, padding='valid') -> ReLU() -> Flatten() -> LazyLinear(10)"
)

triples=()
for entry in "${NETS[@]}"; do
  IFS='|' read -r name flags spec <<<"$entry"
  dir="$WORK/$name"
  # shellcheck disable=SC2086 # $flags is a list of flags
  "$SEQNET_BIN" train --spec "$spec" --dataset mnist-5k --epochs 1 --limit 200 --quiet \
    --out "$dir" $flags 2>"$WORK/$name.train.log" || { cat "$WORK/$name.train.log"; exit 1; }
  "$SEQNET_BIN" export --model "$dir/final.safetensors" --onnx "$dir/model.onnx" 2>"$WORK/$name.export.log" ||
    { cat "$WORK/$name.export.log"; exit 1; }
  "$PY" - "$dir/input.safetensors" <<'EOF'
import sys
import numpy as np
from safetensors.numpy import save_file
rng = np.random.default_rng(20240607)
# Seven random images in [0, 1) plus one all-zero image (pads and biases alone).
x = rng.random((8, 1, 28, 28), dtype=np.float32)
x[7] = 0.0
save_file({"input": x}, sys.argv[1])
EOF
  "$SEQNET_BIN" predict --model "$dir/final.safetensors" --input "$dir/input.safetensors" \
    --output "$dir/expected.safetensors" 2>/dev/null
  triples+=("$dir/model.onnx" "$dir/input.safetensors" "$dir/expected.safetensors")
done

"$PY" "$ROOT/tests/onnx/check_onnx.py" "${triples[@]}"
