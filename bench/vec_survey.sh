#!/usr/bin/env bash
# What GCC's vectoriser makes of each loop, per -march (docs/performance.md,
# "Vectorisation by ISA"): one line per loop, file:line, its function, then the
# widest vector it used for each ISA in bits ("-" = left scalar).
#   bench/vec_survey.sh [FILE.c...]     (default: src/ops/*.c src/model/beit.c)
#   ARCHS="haswell znver3" bench/vec_survey.sh ...
# And what the per-ISA kernels of src/ops/simd*.c were compiled to: per kernel of
# the table, its packed and scalar float instructions, those on ymm / zmm
# registers and the fused multiply-adds.
#   bench/vec_survey.sh --objects [BUILD]
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

if [ "${1:-}" = "--objects" ]; then
  dir="${2:-build}/CMakeFiles/beitlib.dir/src/ops"
  printf '%-12s %-26s %7s %7s %5s %5s %5s\n' object kernel "packed" "scalar" ymm zmm fma
  for o in simd simd_avx2 simd_avx512; do
    [ -f "$dir/$o.c.o" ] || { echo "vec_survey: $dir/$o.c.o not built (run make)"; exit 1; }
    # packed: float instructions on whole registers (..ps); scalar: on one lane (..ss, ..sd)
    objdump -d --no-show-raw-insn "$dir/$o.c.o" | awk -v o="$o" '
      /^[0-9a-f]+ <k_[a-z_]+>:$/ { f = substr($2, 2, length($2) - 3); next }
      /^$/ { f = "" }
      f != "" && NF >= 2 { op = $2; seen[f] = 1
        if (op ~ /ps$/ && op !~ /^v?movaps$|^v?movups$/) n[f, "p"]++
        if (op ~ /s[sd]$/ && op !~ /^v?movs[sd]$/) n[f, "s"]++
        n[f, "y"] += /%ymm/; n[f, "z"] += /%zmm/; n[f, "f"] += op ~ /^vf(n?m(add|sub))/ }
      END { for (f in seen) printf "%-12s %-26s %7d %7d %5d %5d %5d\n", o, f, n[f, "p"], n[f, "s"], n[f, "y"], n[f, "z"], n[f, "f"] }' |
      sort -k2
  done
  exit 0
fi

ARCHS=${ARCHS:-"x86-64-v2 haswell znver3 skylake-avx512 sapphirerapids"}
[ $# -gt 0 ] || set -- src/ops/*.c src/model/beit.c
printf '%-32s %-24s' loop function
for a in $ARCHS; do printf ' %14s' "$a"; done
printf '\n'
for f in "$@"; do
  for a in $ARCHS; do
    # the flags of the build (CMakeLists.txt) plus -march
    gcc -O2 -fopenmp -fno-math-errno -ffp-contract=off -march="$a" -Isrc -Iinclude -S -o /dev/null "$f" \
      -fopt-info-vec-all 2>&1 |
      sed -nE "s#^$f:([0-9]+):[0-9]+: (optimized: loop vectorized using ([0-9]+) byte|missed: couldn't vectorize loop).*#\1 \3#p" |
      awk -v a="$a" '{ v = ($2 == "" ? 0 : $2); if (!($1 in best) || v > best[$1]) best[$1] = v }
                     END { for (l in best) print l, a, best[l] }'
  done | awk -v archs="$ARCHS" '
    { r[$1, $2] = $3; lines[$1] = 1 }
    END { n = split(archs, A, " ")
          for (l in lines) { s = l; for (i = 1; i <= n; i++) { v = (l, A[i]) in r ? r[l, A[i]] : "?"; s = s " " (v == 0 ? "-" : v * 8) }
                             print s } }' |
    sort -n | while read -r line rest; do
      fn=$(awk -v L="$line" 'NR <= L && /^[a-z].*\(/ { match($0, /[a-z_0-9]+\(/); n = substr($0, RSTART, RLENGTH - 1) }
                            END { print n }' "$f")
      printf '%-32s %-24s' "$f:$line" "$fn"
      for v in $rest; do printf ' %14s' "$v"; done
      printf '\n'
    done
done
