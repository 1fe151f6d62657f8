#!/usr/bin/env bash
# bitcheck.sh - are two builds numerically the same? Runs short dVAE and k-means
# tokenizer training, pretraining (visual tokens, pixels, recomputed activations)
# and fine-tuning (mean pooling and CLS) with --threads 1 and 2, and prints for
# each run the SHA-256 of every checkpoint's tensor bytes (weights, and for the
# run checkpoints the AdamW moments) and of the log lines without their timing
# fields. Two builds whose manifests are equal trained bit-identically.
#
#   scripts/bitcheck.sh BEIT_BIN > manifest          one build's manifest
#   scripts/bitcheck.sh NEW_BIN BASE_BIN_OR_MANIFEST  both, then diff (exit 1 if they differ)
#
# Uses Fashion-MNIST (BEIT_FASHION_MNIST_DIR) and /usr/bin/python3; about a minute on 2 cores.
set -eu
if [ $# -lt 1 ]; then sed -n '2,12p' "$0"; exit 2; fi

# runs one command quietly; on failure shows its output and stops
run() {
  local out
  if ! out=$("$@" 2>&1); then echo "bitcheck: failed: $*" >&2; echo "$out" | tail -5 >&2; exit 1; fi
}

manifest() {
  local bin work
  bin=$(readlink -f "$1")
  work=$(mktemp -d)
  (
    cd "$work"
    q="--quiet --workers 1 --log-every 1"
    for t in 1 2; do
      run "$bin" tokenizer train --out tok$t --steps 6 --batch 16 --log-every 1 --eval-images 32 --warmup 2 \
        --kl-warmup 2 --clip-grad 1 --threads $t
      run "$bin" tokenizer train --out tokm$t --recon mse --steps 4 --batch 8 --eval-images 16 --threads $t
      run "$bin" tokenizer train --type kmeans --out km$t --images 300 --iters 4 --max-patches 5000 --vocab 64 \
        --eval-images 32 --threads $t
      run "$bin" pretrain --tokenizer tok$t/tokenizer.safetensors --model micro --subset 96 --epochs 2 --batch 32 \
        --save-every 2 --keep 3 --out pt$t --threads $t $q
      run "$bin" pretrain --tokenizer km$t/tokenizer.safetensors --model mini --subset 64 --epochs 1 --batch 32 \
        --recompute --out ptr$t --threads $t $q
      run "$bin" pretrain --tokenizer pixel --model micro --subset 64 --epochs 1 --batch 32 --out ptp$t \
        --threads $t $q
      run "$bin" finetune --init pt$t/model.safetensors --model micro --subset 96 --epochs 2 --batch 32 --out ft$t \
        --threads $t $q
      run "$bin" finetune --model micro --use-cls --subset 64 --epochs 1 --batch 32 --mixup 0 --cutmix 0 \
        --out ftc$t --threads $t $q
    done
    /usr/bin/python3 - <<'EOF'
import glob, hashlib, json, struct
for f in sorted(glob.glob('*/*.safetensors')):
    b = open(f, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    print(f, hashlib.sha256(b[8 + n:]).hexdigest()[:32])
for f in sorted(glob.glob('*/log.jsonl')):
    lines = [json.loads(l) for l in open(f)]
    for l in lines:
        for k in [k for k in l if k.endswith('_s') or 'time' in k or k in ('seconds', 'elapsed', 'eta')]: del l[k]
    print(f, hashlib.sha256(json.dumps(lines).encode()).hexdigest()[:32], 'last', json.dumps(lines[-1]))
EOF
  )
  local rc=$?
  rm -rf "$work"
  return $rc
}

if [ $# -eq 1 ]; then manifest "$1"; exit; fi
new=$(mktemp) base=$(mktemp)
trap 'rm -f "$new" "$base"' EXIT
manifest "$1" > "$new"
if [ -x "$2" ] && [ ! -d "$2" ]; then manifest "$2" > "$base"; else cp "$2" "$base"; fi
if diff "$base" "$new"; then
  echo "bitcheck: $(wc -l < "$new") checkpoints and logs bit-identical"
else
  echo "bitcheck: the builds differ (lines above: < base, > new)"; exit 1
fi
