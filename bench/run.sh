#!/usr/bin/env bash
# Benchmarks beit.c against the PyTorch reference in the same run, same model,
# batch and thread count, and prints images/s of both and the ratio.
#   bench/run.sh [BUILD]            the training-step workloads of the core issue
#   BENCH_FULL=1 bench/run.sh       adds BEiT-B (224, patch 16) training and inference
# The PyTorch side gets the same BLAS tuning (OPENBLAS_CORETYPE) as beit.c picks
# for itself; "as installed" PyTorch is reported too.
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BEIT="$ROOT/$BUILD/beit"
unset OPENBLAS_CORETYPE   # let beit.c pick its kernels itself, as a user's run would
THREADS=${THREADS:-2}
STEPS=${STEPS:-5}
[ -x "$BEIT" ] || { echo "bench: $BEIT not built (run make)"; exit 1; }
CORE=$("$BEIT" version | sed -n 's/.*kernels \([A-Za-z0-9]*\).*/\1/p')

rate() { sed -n 's/.*: \([0-9.]*\) img\/s.*/\1/p' | tail -n 1; }
rss() { sed -n 's/.*peak RSS \([0-9.]*\) MiB.*/\1/p' | tail -n 1; }

run() {  # label, then `beit bench` flags
  local label=$1; shift
  local ours ref refraw
  ours=$("$BEIT" bench --threads "$THREADS" --steps "$STEPS" "$@")
  ref=$(OPENBLAS_CORETYPE=$CORE /usr/bin/python3 "$ROOT/bench/ref_bench.py" --threads "$THREADS" --steps "$STEPS" "$@")
  refraw=$(env -u OPENBLAS_CORETYPE /usr/bin/python3 "$ROOT/bench/ref_bench.py" --threads "$THREADS" --steps "$STEPS" "$@")
  local a b c
  a=$(echo "$ours" | rate); b=$(echo "$ref" | rate); c=$(echo "$refraw" | rate)
  printf '%-34s beit.c %8.1f img/s (%5.0f MiB) | PyTorch %8.1f img/s (%5.0f MiB), as installed %8.1f | ratio %.2fx\n' \
    "$label" "$a" "$(echo "$ours" | rss)" "$b" "$(echo "$ref" | rss)" "$c" "$(awk -v a="$a" -v b="$b" 'BEGIN { print a / b }')"
}

echo "beit.c: $("$BEIT" version | sed -n 's/^BLAS: //p'); $THREADS threads; $STEPS timed steps"
"$BEIT" bench --workload sgemm --threads "$THREADS" | tail -n 1
run "pretrain tiny 28x28x1 p4 b64" --workload pretrain --model tiny --image-size 28 --channels 1 --patch-size 4 --batch 64
run "pretrain small 32x32x3 p4 b64" --workload pretrain --model small --image-size 32 --channels 3 --patch-size 4 --batch 64
if [ "${BENCH_FULL:-0}" = 1 ]; then
  run "pretrain base 224x224x3 p16 b8" --workload pretrain --model base --image-size 224 --channels 3 --patch-size 16 --batch 8
  run "infer base 224 b8" --workload infer --model base --image-size 224 --channels 3 --patch-size 16 --batch 8 --classes 1000
  run "infer base 224 b1" --workload infer --model base --image-size 224 --channels 3 --patch-size 16 --batch 1 --classes 1000
fi
