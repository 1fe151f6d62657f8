#!/usr/bin/env bash
# Benchmarks beit.c against PyTorch in one run: for each workload `beit bench` and
# bench/ref_bench.py (Debian's python3-torch, the same model, batch and thread count)
# run one after the other, and one table row gives images/s of both, our GFLOP/s and
# its share of the machine's sgemm limit (measured once, same OpenBLAS and threads),
# the speed ratio, both peak RSS and the memory ratio.
#   bench/run.sh [BUILD]          every workload (the BEiT-B ones take minutes)
#   BENCH_QUICK=1 bench/run.sh    skips the BEiT-B (224x224, patch 16) workloads
#   THREADS=2 STEPS=5             threads on each side, timed steps after one warm-up
# PyTorch runs twice: with the OpenBLAS kernel set beit.c picks for itself
# (OPENBLAS_CORETYPE, the column the ratio uses) and as installed.
# Method and FLOP formulas: docs/performance.md.
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BEIT="$ROOT/$BUILD/beit"
REF="$ROOT/bench/ref_bench.py"
unset OPENBLAS_CORETYPE   # let beit.c pick its kernels itself, as a user's run would
THREADS=${THREADS:-2}
STEPS=${STEPS:-5}
[ -x "$BEIT" ] || { echo "bench: $BEIT not built (run make)"; exit 1; }
CORE=$("$BEIT" version | sed -n 's/.*kernels \([A-Za-z0-9]*\).*/\1/p')
FAILED=0

# Fields of a last line "<workload> <model>: N img/s[, G GFLOP/s], peak RSS M MiB".
field() { sed -n "s|.* \([0-9.]*\) $1.*|\1|p" | tail -n 1; }
div() {  # a / b with a printf format (default %.2f), "-" when either is missing
  awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf f, a / b }'
}
percent() { div "$(awk -v a="$1" 'BEGIN { if (a != "") print 100 * a }')" "$2" '%.0f%%'; }

ROW='%-32s %8s %7s %6s %7s | %8s %8s %7s | %6s %6s%s\n'
header() {
  printf "%-32s %-31s | %-25s | %s\n" "" "beit.c" "PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)' 2>/dev/null)" "beit.c/PyTorch"
  # shellcheck disable=SC2059
  printf "$ROW" "workload" "img/s" "GFLOP/s" "%sgemm" "RSS MiB" "img/s" "as inst." "RSS MiB" "speed" "memory" ""
}

run() {  # label, then `beit bench` flags
  local label=$1; shift
  local ours ref raw
  if ! ours=$("$BEIT" bench --threads "$THREADS" --steps "$STEPS" "$@" 2>&1) ||
     ! ref=$(OPENBLAS_CORETYPE=$CORE /usr/bin/python3 "$REF" --threads "$THREADS" --steps "$STEPS" "$@" 2>&1) ||
     ! raw=$(/usr/bin/python3 "$REF" --threads "$THREADS" --steps "$STEPS" "$@" 2>&1); then
    printf '%-32s FAILED: %s\n' "$label" "$(printf '%s\n%s\n%s' "$ours" "${ref:-}" "${raw:-}" | grep -v '^$' | tail -n 1)"
    FAILED=1
    return
  fi
  local a g rss b c rssb note=""
  a=$(echo "$ours" | field 'img/s'); g=$(echo "$ours" | field 'GFLOP/s'); rss=$(echo "$ours" | field 'MiB')
  b=$(echo "$ref" | field 'img/s'); c=$(echo "$raw" | field 'img/s'); rssb=$(echo "$ref" | field 'MiB')
  case " $* " in *" --batch 1 "*)
    note="  latency $(div 1000 "$a" %.1f) ms, PyTorch $(div 1000 "$b" %.1f) ms";;
  esac
  # shellcheck disable=SC2059
  printf "$ROW" "$label" "$a" "$g" "$(percent "$g" "$SGEMM")" "$rss" "$b" "$c" "$rssb" \
    "$(div "$a" "$b")" "$(div "$rss" "$rssb")" "$note"
}

echo "beit.c: $("$BEIT" version | sed -n 's/^BLAS: //p'); PyTorch with OPENBLAS_CORETYPE=$CORE; $THREADS threads; $STEPS timed steps"
SGEMM=$("$BEIT" bench --workload sgemm --threads "$THREADS" | field 'GFLOP/s')
echo "sgemm limit (1536x1536x1536, best of 5): $SGEMM GFLOP/s"
echo
header
run "pretrain tiny 28x28x1 p4 b64" --workload pretrain --model tiny --image-size 28 --channels 1 --patch-size 4 --batch 64
run "pretrain small 32x32x3 p4 b64" --workload pretrain --model small --image-size 32 --channels 3 --patch-size 4 --batch 64
# both sides recomputing each block's activations in the backward pass (torch.utils.checkpoint)
run "pretrain tiny ... --recompute" --workload pretrain --model tiny --image-size 28 --channels 1 --patch-size 4 --batch 64 --recompute
run "pretrain small ... --recompute" --workload pretrain --model small --image-size 32 --channels 3 --patch-size 4 --batch 64 --recompute
if [ "${BENCH_QUICK:-0}" != 1 ]; then
  run "pretrain base 224x224x3 p16 b8" --workload pretrain --model base --image-size 224 --channels 3 --patch-size 16 --batch 8
  run "infer base 224x224x3 p16 b8" --workload infer --model base --image-size 224 --channels 3 --patch-size 16 --batch 8 --classes 1000
  run "infer base 224x224x3 p16 b1" --workload infer --model base --image-size 224 --channels 3 --patch-size 16 --batch 1 --classes 1000
fi
run "tokenize dVAE small 28x28x1 b64" --workload tokenize --model small --image-size 28 --channels 1 --batch 64
exit $FAILED
