#!/usr/bin/env bash
# bench/ab.sh: two builds, and the GEMM / convolution choices of the new one, on the real pretraining step
# and on `beit bench`, in alternated rounds (run it on a quiet machine; docs/performance.md "GEMM libraries").
#   OLD=path/to/beit NEW=path/to/beit DATA=folder:DIR TOK=tokenizer.safetensors bench/ab.sh [ROUNDS (2)]
# DATA/TOK: 32 px colour images and a tokenizer for them (e.g. scripts/reproduce's tok-vq); without them only
# the `beit bench` rows run.
set -u
ROUNDS=${1:-2} OLD=${OLD:?OLD=path to the old beit} NEW=${NEW:?NEW=path to the new beit}
DATA=${DATA:-} TOK=${TOK:-} Q=$(mktemp -d)
trap 'rm -rf "$Q"' EXIT
echo "load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ); $("$NEW" version | sed -n 2p)"
real_step() {  # label binary [VAR=value...]: img/s of the last three 4-step windows of 16 steps
  local label=$1 bin=$2; shift 2
  env "$@" "$bin" pretrain --data "$DATA" --image-size 32 --model mini --patch-size 4 --batch 256 --epochs 10 \
    --max-steps 16 --tokenizer "$TOK" --log-every 4 --quiet --out "$Q/$label" --overwrite > /dev/null 2>&1 ||
    { echo "pretrain $label: FAILED"; return; }
  echo "pretrain (real data, tokenizer) $label: $(grep -o '"images_per_s": [0-9.]*' "$Q/$label/log.jsonl" | tail -3 |
    awk '{printf "%s ", $2}')"
}
synthetic() {  # label [VAR=value...]
  local label=$1; shift
  local a="--model mini --image-size 32 --channels 3 --patch-size 4 --batch 256 --steps 5"
  for w in "pretrain $a --vocab 1024" "finetune $a" \
           "finetune --model mini --image-size 28 --channels 1 --patch-size 7 --batch 256 --steps 8" \
           "pretrain --model tiny --image-size 28 --patch-size 4 --batch 64 --steps 5"; do
    echo "bench $label $w: $(env "$@" "$NEW" bench --workload $w 2>&1 | grep -E 'img/s' | tail -1)"
  done
}
for r in $(seq "$ROUNDS"); do
  echo "== round $r"
  if [ -n "$DATA" ] && [ -n "$TOK" ]; then
    real_step old "$OLD"
    real_step new "$NEW"
    real_step new-im2col "$NEW" BEIT_CONV=im2col
    real_step new-openblas-im2col "$NEW" BEIT_CONV=im2col BEIT_GEMM=openblas
  fi
  synthetic gemm=openblas BEIT_GEMM=openblas
  synthetic gemm=dnnl BEIT_GEMM=dnnl
done
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
