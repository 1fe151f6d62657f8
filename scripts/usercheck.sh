#!/usr/bin/env bash
# usercheck.sh - the trust checks of docs/reliability.md run as a user would run
# them, end to end with the real `beit` binary on Fashion-MNIST (seconds):
#   (a) a zeroed classifier head scores chance, not 100%  (b) a NaN head makes
#   predict exit 1 with one error line  (c) a FIFO as --checkpoint is refused within a
#   second  (d) a 16000x16000 PNG is refused or decoded under 400 MB  (e) a second
#   fresh run into a used folder is refused and the old checkpoint stays
#   byte-identical  (f) a fine-tune with stderr to a file prints progress lines.
# Each check is also a regression test in tests/; this script is the user's view.
#   bash scripts/usercheck.sh [BUILD]       prints "N passed, N failed"
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BEIT="$ROOT/$BUILD/beit"
PY=/usr/bin/python3
[ -x "$BEIT" ] || { echo "usercheck: $BEIT not built (run make)"; exit 1; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
passed=0; failed=0
check() {  # name, then a command whose status decides
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok    $name"; else failed=$((failed + 1)); echo "FAIL  $name"; fi
}

# A tiny fine-tune: micro model, 512 images, one epoch, evaluated on 256 test images.
"$BEIT" finetune --model micro --subset 512 --batch 64 --epochs 1 --eval-subset 256 --threads 2 \
  --out "$W/ft" 2> "$W/ft.err" || { echo "usercheck: the tiny fine-tune failed:"; tail -n 3 "$W/ft.err"; exit 1; }
CKPT="$W/ft/best.safetensors"

# Rewrites the head of $CKPT into $2 with value $1 (0 or nan), keeping everything else.
edit_head() {
  "$PY" - "$ROOT/tests/ref" "$CKPT" "$2" "$1" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np, stio
t, meta = stio.load(sys.argv[2])
for k in ("head.weight", "head.bias"):
    t[k] = np.full_like(t[k], float(sys.argv[4]))
meta.pop(stio.CRC_KEY, None)
stio.save(sys.argv[3], t, meta, checksum=True)
EOF
}

# (a) zeroed head: every logit ties, so no image has a prediction
edit_head 0 "$W/zero.safetensors"
top1=$("$BEIT" eval --checkpoint "$W/zero.safetensors" --threads 2 2>/dev/null | sed -n 's/.*top-1 \([0-9.]*\)%.*/\1/p' | head -n 1)
check "(a) zeroed head: eval top-1 ${top1:-?}% <= 20%" awk -v t="${top1:-100}" 'BEGIN { exit !(t <= 20) }'

# one test image as a PNG for predict
"$PY" - "$W/img.png" <<'EOF'
import sys, zlib, struct
w = h = 28
raw = b"".join(b"\0" + bytes((x * 9 + y * 5) % 256 for x in range(w)) for y in range(h))
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
EOF

# (b) NaN head: predict exits 1 with one line, no signal
edit_head nan "$W/nan.safetensors"
"$BEIT" predict --checkpoint "$W/nan.safetensors" "$W/img.png" > /dev/null 2> "$W/b.err"; rc=$?
nerr=$(grep -c '^beit predict:' "$W/b.err")
check "(b) NaN head: predict exit $rc, $nerr error line: $(grep '^beit predict:' "$W/b.err" | head -c 120)" \
  test "$rc" -eq 1 -a "$nerr" -eq 1

# (c) a FIFO as --checkpoint: an error within a second
mkfifo "$W/fifo"
start=$(date +%s%N)
timeout 5 "$BEIT" predict --checkpoint "$W/fifo" "$W/img.png" > /dev/null 2> "$W/c.err"; rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "(c) FIFO checkpoint: exit $rc after $ms ms: $(head -c 80 "$W/c.err")" test "$rc" -eq 1 -a "$ms" -lt 1000

# (d) a 16000x16000 PNG (a few hundred KB): refused, or decoded under 400 MB peak RSS
"$PY" - "$W/bomb.png" <<'EOF'
import sys, zlib, struct
w = h = 16000
row = b"\0" + bytes(w)
z = zlib.compressobj(9)
data = b"".join(z.compress(row) for _ in range(h)) + z.flush()
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                              + chunk(b"IDAT", data) + chunk(b"IEND", b""))
EOF
/usr/bin/time -f "%M" -o "$W/d.rss" "$BEIT" predict --checkpoint "$CKPT" "$W/bomb.png" > /dev/null 2> "$W/d.err"; rc=$?
kb=$(tail -n 1 "$W/d.rss")
check "(d) 16000x16000 PNG ($(($(stat -c %s "$W/bomb.png") / 1024)) KB): exit $rc, peak $((kb / 1024)) MiB" \
  test "$kb" -lt 409600 -a \( "$rc" -eq 0 -o "$rc" -eq 1 \)

# (e) a second fresh run into the same folder: refused, old checkpoint byte-identical
sum_before=$(sha256sum "$W/ft/checkpoint.safetensors" | cut -d' ' -f1)
"$BEIT" finetune --model micro --subset 512 --batch 64 --epochs 1 --threads 2 --out "$W/ft" > /dev/null 2> "$W/e.err"; rc=$?
sum_after=$(sha256sum "$W/ft/checkpoint.safetensors" | cut -d' ' -f1)
check "(e) second fresh run: exit $rc, checkpoint $( [ "$sum_before" = "$sum_after" ] && echo unchanged || echo CHANGED)" \
  test "$rc" -eq 1 -a "$sum_before" = "$sum_after"

# (f) the tiny fine-tune above had stderr in a file: progress lines with img/s
n=$(grep -c 'img/s' "$W/ft.err")
check "(f) fine-tune with stderr to a file: $n progress line(s) with img/s" test "$n" -ge 2

echo "usercheck: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
