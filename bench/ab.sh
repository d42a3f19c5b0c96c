#!/usr/bin/env bash
# Two seqnet builds against each other: did a change make training faster?
#
#   bench/ab.sh OLD_BINARY NEW_BINARY
#   NET=book-dropout THREADS="1 2" ROUNDS=7 bench/ab.sh /tmp/seqnet-old target/release/seqnet
#   WHAT=infer bench/ab.sh OLD NEW      # inference (batches of 1000) instead of training
#
# For each thread count it runs `seqnet bench` with the two binaries alternately ROUNDS
# times, swapping which goes first every round (so both see the same machine load; this
# machine is shared and noisy), then prints each binary's median training throughput,
# the ratio NEW/OLD of the medians, and in how many rounds NEW was the faster.
# `seqnet bench` trains on MNIST when it finds it ($SEQNET_DATA…), else on the embedded
# sample; either way both binaries see the same images.
#
# Build OLD from a commit without touching your working tree:
#   git worktree add /tmp/seqnet-old-tree REV
#   (cd /tmp/seqnet-old-tree && cargo build --release)
#   bench/ab.sh /tmp/seqnet-old-tree/target/release/seqnet target/release/seqnet
set -euo pipefail
if [[ $# -ne 2 || ! -f $1 || ! -x $1 || ! -f $2 || ! -x $2 ]]; then
  echo "usage: bench/ab.sh OLD_BINARY NEW_BINARY (two executable seqnet builds)" >&2
  exit 2
fi
OLD=$1
NEW=$2
NET=${NET:-book-relu}
THREADS=${THREADS:-"1 2"}
ROUNDS=${ROUNDS:-5}
IMAGES=${IMAGES:-6400}
MB=${MB:-10}
WHAT=${WHAT:-train}
if ! [[ $ROUNDS =~ ^[1-9][0-9]*$ && $IMAGES =~ ^[1-9][0-9]*$ ]]; then
  echo "bench/ab.sh: ROUNDS and IMAGES must be positive whole numbers" >&2
  exit 2
fi
if [[ $WHAT != train && $WHAT != infer ]]; then
  echo "bench/ab.sh: WHAT must be train or infer" >&2
  exit 2
fi

# Images per second of one `seqnet bench` run (training, or inference with WHAT=infer):
# BINARY THREADS.
train_rate() {
  local json sizes key
  if [[ $WHAT == train ]]; then
    sizes=(--batch-size "$MB" --images "$IMAGES" --infer-images 0)
    key=train_img_per_s
  else
    sizes=(--images 0 --infer-images "$IMAGES")
    key=infer_img_per_s
  fi
  if ! json=$("$1" bench --net "$NET" "${sizes[@]}" --threads "$2" --json); then
    echo "bench/ab.sh: $1 bench failed (see its error above)" >&2
    exit 1
  fi
  python3 -c "import json, sys; print(round(json.load(sys.stdin)['$key']))" <<<"$json"
}

if [[ $WHAT == train ]]; then
  echo "$NET training, mini-batch $MB, $IMAGES images a run, $ROUNDS alternating rounds"
else
  echo "$NET inference, $IMAGES images a run, $ROUNDS alternating rounds"
fi
echo "old: $OLD"
echo "new: $NEW"
for t in $THREADS; do
  rows=""
  for r in $(seq "$ROUNDS"); do
    if ((r % 2)); then
      old=$(train_rate "$OLD" "$t")
      new=$(train_rate "$NEW" "$t")
    else
      new=$(train_rate "$NEW" "$t")
      old=$(train_rate "$OLD" "$t")
    fi
    rows+="$old $new"$'\n'
  done
  python3 - "$t" "$rows" <<'PY'
import statistics as st, sys
t, rows = sys.argv[1], [tuple(map(int, l.split())) for l in sys.argv[2].split("\n") if l]
old, new = st.median(r[0] for r in rows), st.median(r[1] for r in rows)
wins = sum(n > o for o, n in rows)
print(f"{t} thread(s): old {old:,.0f} img/s, new {new:,.0f} img/s, "
      f"new/old {new / old:.3f}, new faster in {wins} of {len(rows)} rounds")
PY
done
