#!/usr/bin/env bash
# seqnet against PyTorch (CPU) on the book's networks, side by side on this machine.
#
#   bench/compare.sh                 # book-relu, 5 alternating runs per configuration
#   RUNS=9 IMAGES=12800 bench/compare.sh
#   TORCH_VENV=/opt/torchenv bench/compare.sh   # use an existing PyTorch install
#   NET=fast-mnist BATCHES=64 bench/compare.sh   # BatchNorm network, AdamW on both sides
#   RSS=0 bench/compare.sh           # without the peak-RSS runs
#
# For each mini-batch (10, 64) and thread count (1, 2) it runs `seqnet bench` and
# bench/pytorch_reference.py alternately RUNS times (so both see the same machine load)
# and prints the medians and the seqnet/PyTorch ratios for training and inference
# (batch 1000), then: the peak RSS of a one-epoch `seqnet train` on full MNIST against a
# one-epoch PyTorch training process, the time of `seqnet --version`, and seqnet's
# 1 → 2 thread speed-up. Needs the MNIST IDX files in $SEQNET_DATA (default
# /work/shared/data/mnist, else ../shared/data/mnist beside the repository).
set -euo pipefail
cd "$(dirname "$0")/.."

NET=${NET:-book-relu}
RUNS=${RUNS:-5}
IMAGES=${IMAGES:-6400}
THREADS=${THREADS:-"1 2"}
BATCHES=${BATCHES:-"10 64"}
if [[ -z "${SEQNET_DATA:-}" ]]; then
  for d in /work/shared/data/mnist ../shared/data/mnist; do
    [[ -d $d ]] && SEQNET_DATA=$(cd "$d" && pwd) && break
  done
fi
: "${SEQNET_DATA:?set SEQNET_DATA to a folder holding the four MNIST IDX files}"
export SEQNET_DATA

# PyTorch lives in a virtualenv outside the repository.
VENV=${TORCH_VENV:-$HOME/.cache/seqnet-bench-venv}
if ! "$VENV/bin/python" -c 'import torch, numpy' 2>/dev/null; then
  echo "creating $VENV with torch and numpy" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet torch numpy
fi
PY="$VENV/bin/python"

cargo build --release --quiet
SEQNET=${CARGO_TARGET_DIR:-target}/release/seqnet
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
RESULTS="$OUT/results.jsonl"

# The thread counts are the innermost loop, so a 1-thread run and a 2-thread run are
# minutes closer than they would be if all 1-thread runs came first. This shared
# machine's load drifts over minutes, and the thread speed-up is a ratio of runs.
for b in $BATCHES; do
  for r in $(seq "$RUNS"); do
    for t in $THREADS; do
      echo "mini-batch $b, threads $t, run $r/$RUNS" >&2
      s=$("$SEQNET" bench --net "$NET" --batch-size "$b" --images "$IMAGES" --threads "$t" --json)
      echo "{\"tool\": \"seqnet\", \"round\": $r, \"r\": $s}" >>"$RESULTS"
      p=$("$PY" -W ignore bench/pytorch_reference.py --net "$NET" --batch-size "$b" \
        --images "$IMAGES" --threads "$t" --json)
      echo "{\"tool\": \"pytorch\", \"round\": $r, \"r\": $p}" >>"$RESULTS"
      echo "  seqnet  $s" >&2
      echo "  pytorch $p" >&2
    done
  done
done

# Peak RSS of whole training processes (ru_maxrss of the child): `seqnet train` for one
# epoch of full MNIST with its test-set evaluation; PyTorch training 6,000 images at
# mini-batch 10 then its test-set inference (its peak is reached in the first steps).
maxrss() {
  "$PY" -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1000)' "$@"
}
# RSS=0 skips them (an epoch of fast-mnist takes a minute or more).
SEQNET_RSS=nan TORCH_RSS=nan
if [[ ${RSS:-1} != 0 ]]; then
echo "peak RSS: seqnet train (1 epoch)" >&2
SEQNET_RSS=$(maxrss "$SEQNET" train --net "$NET" --epochs 1 --split official --threads 2 \
  --quiet --out "$OUT/run")
echo "peak RSS: PyTorch training" >&2
TORCH_RSS=$(maxrss "$PY" -W ignore bench/pytorch_reference.py --net "$NET" --batch-size 10 \
  --images 6000 --warmup 0 --threads 2)
fi

# `seqnet --version`: median wall time of 21 runs.
VERSION_MS=$("$PY" -c 'import statistics, subprocess, sys, time
ts = []
for _ in range(21):
    t0 = time.perf_counter()
    subprocess.run([sys.argv[1], "--version"], check=True, stdout=subprocess.DEVNULL)
    ts.append((time.perf_counter() - t0) * 1000)
print(statistics.median(ts))' "$SEQNET")

"$PY" - "$RESULTS" "$SEQNET_RSS" "$TORCH_RSS" "$VERSION_MS" <<'EOF'
import json, statistics, sys
import torch
rows = [json.loads(l) for l in open(sys.argv[1])]
seq_rss, torch_rss, version_ms = map(float, sys.argv[2:5])
def med(tool, key, t, b=None):
    v = [r["r"][key] for r in rows if r["tool"] == tool and r["r"]["threads"] == t
         and (b is None or r["r"]["batch_size"] == b)]
    return statistics.median(v) if v else float("nan"), len(v)
threads = sorted({r["r"]["threads"] for r in rows})
batches = sorted({r["r"]["batch_size"] for r in rows})
opts = sorted({(r["tool"], r["r"].get("optimizer", "sgd")) for r in rows})
print(f"{rows[0]['r']['net']}: optimiser " + ", ".join(f"{t} {o}" for t, o in opts)
      + " (constant lr); training images not augmented on either side")
print(f"torch {torch.__version__}; medians of alternating runs (img/s); the cpu columns")
print("are images per CPU-second (all threads), which a loaded machine disturbs less")
print(f"{'what':<20}{'threads':>8}{'seqnet':>9}{'pytorch':>9}{'ratio':>7}"
      f"{'cpu:seqnet':>12}{'pytorch':>9}{'ratio':>7}{'runs':>6}")
def line(what, key, t, b=None):
    s, n = med("seqnet", key, t, b)
    p, _ = med("pytorch", key, t, b)
    sc, _ = med("seqnet", key.replace("_per_s", "_per_cpu_s"), t, b)
    pc, _ = med("pytorch", key.replace("_per_s", "_per_cpu_s"), t, b)
    print(f"{what:<20}{t:>8}{s:>9.0f}{p:>9.0f}{s / p:>7.2f}{sc:>12.0f}{pc:>9.0f}"
          f"{sc / pc:>7.2f}{n:>6}")
for t in threads:
    for b in batches:
        line(f"train mb {b}", "train_img_per_s", t, b)
    line("infer batch 1000", "infer_img_per_s", t)
print(f"peak RSS, training processes: seqnet {seq_rss:.0f} MB, PyTorch {torch_rss:.0f} MB "
      f"(ratio {seq_rss / torch_rss:.2f})")
print(f"seqnet --version: {version_ms:.1f} ms (median of 21)")
def paired(tool, b):
    # Each round ran its 1-thread and 2-thread benchmarks back to back, so their ratio
    # sees one machine load; the median over rounds discards the disturbed rounds.
    rate = {(r["round"], r["r"]["threads"]): r["r"]["train_img_per_s"] for r in rows
            if r["tool"] == tool and r["r"]["batch_size"] == b}
    ratios = [rate[(k, 2)] / rate[(k, 1)] for (k, t) in rate if t == 1 and (k, 2) in rate]
    return statistics.median(ratios) if ratios else float("nan")
if 1 in threads and 2 in threads:
    for b in batches:
        s1, _ = med("seqnet", "train_img_per_s", 1, b)
        s2, _ = med("seqnet", "train_img_per_s", 2, b)
        p1, _ = med("pytorch", "train_img_per_s", 1, b)
        p2, _ = med("pytorch", "train_img_per_s", 2, b)
        print(f"1 -> 2 thread speed-up, train mb {b}: seqnet {s2 / s1:.2f}x, PyTorch {p2 / p1:.2f}x"
              f" (ratio of medians); paired by round, median: seqnet"
              f" {paired('seqnet', b):.2f}x, PyTorch {paired('pytorch', b):.2f}x")
EOF
