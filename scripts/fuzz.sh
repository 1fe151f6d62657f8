#!/usr/bin/env bash
# Runs the libFuzzer harnesses of fuzz/ (built by `make fuzz-build` into build-fuzz).
#
#   scripts/fuzz.sh [SECONDS] [HARNESS...]  fuzz every harness (or the named ones) for
#                                           SECONDS (default 60), all at once, one job
#                                           each, under nice -n 19; prints executions
#   scripts/fuzz.sh merge                   fold what the last runs found into
#                                           fuzz/corpus (-merge=1 keeps only inputs
#                                           that add coverage)
#   scripts/fuzz.sh replay                  run every harness over its corpus once
#                                           (regression mode, seconds; CI)
#   scripts/fuzz.sh seeds                   rewrite the seed files (fuzz/make_seeds.c)
#
# New inputs go to build-fuzz/fuzz-work/<harness>, crashes to
# build-fuzz/fuzz-artifacts/<harness>, logs to build-fuzz/fuzz-logs. See docs/fuzzing.md.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/build-fuzz/fuzz"
CORPUS="$ROOT/fuzz/corpus"
WORK="$ROOT/build-fuzz/fuzz-work"
ARTIFACTS="$ROOT/build-fuzz/fuzz-artifacts"
LOGS="$ROOT/build-fuzz/fuzz-logs"
HARNESSES=(safetensors config idx cifar image tokens tokenizer checkpoint)
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

dict_for() {  # JSON-bearing formats share one dictionary of safetensors / config words
  case "$1" in
    safetensors | tokenizer | checkpoint | config) echo "-dict=$ROOT/fuzz/json.dict" ;;
  esac
}

need_build() {
  for h in "${HARNESSES[@]}"; do
    [ -x "$BIN/fuzz_$h" ] || { echo "fuzz.sh: $BIN/fuzz_$h missing; run: make fuzz-build" >&2; exit 1; }
  done
}

replay() {
  local failed=0 start=$(date +%s%N)
  for h in "${HARNESSES[@]}"; do
    local files=("$CORPUS/$h"/*)
    local out rc
    out=$("$BIN/fuzz_$h" -rss_limit_mb=2048 -timeout=60 "${files[@]}" 2>&1); rc=$?
    if [ $rc -ne 0 ]; then
      echo "$out" | tail -n 40
      echo "fuzz replay: $h FAILED (exit $rc)"
      failed=$((failed + 1))
    else
      echo "fuzz replay: $h ok (${#files[@]} inputs)"
    fi
  done
  echo "fuzz replay: ${#HARNESSES[@]} harnesses, $failed failed, $(( ($(date +%s%N) - start) / 1000000 )) ms"
  [ $failed -eq 0 ]
}

fuzz() {
  local seconds=$1; shift
  local list=("$@")
  [ ${#list[@]} -gt 0 ] || list=("${HARNESSES[@]}")
  mkdir -p "$LOGS"
  local pids=()
  for h in "${list[@]}"; do
    mkdir -p "$WORK/$h" "$ARTIFACTS/$h"
    # shellcheck disable=SC2046
    nice -n 19 "$BIN/fuzz_$h" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$h/" $(dict_for "$h") \
      "$WORK/$h" "$CORPUS/$h" >"$LOGS/$h.log" 2>&1 &
    pids+=($!)
  done
  local i=0 status=0
  for h in "${list[@]}"; do
    wait "${pids[$i]}" || status=1
    i=$((i + 1))
  done
  printf "%-12s %14s %10s %8s %6s %s\n" harness executions exec/s cov corpus findings
  for h in "${list[@]}"; do
    local log="$LOGS/$h.log"
    local execs rate cov units found
    execs=$(grep -oE 'stat::number_of_executed_units: +[0-9]+' "$log" | awk '{print $2}' | tail -n 1)
    rate=$(grep -oE 'stat::average_exec_per_sec: +[0-9]+' "$log" | awk '{print $2}' | tail -n 1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | awk '{print $2}')
    units=$(find "$WORK/$h" -type f | wc -l)
    found=$(find "$ARTIFACTS/$h" -type f | wc -l)
    printf "%-12s %14s %10s %8s %6s %s\n" "$h" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$units" "$found"
  done
  echo "logs: $LOGS; findings (if any): $ARTIFACTS"
  return $status
}

merge() {
  for h in "${HARNESSES[@]}"; do
    [ -d "$WORK/$h" ] || continue
    local before=$(find "$CORPUS/$h" -type f | wc -l)
    nice -n 19 "$BIN/fuzz_$h" -merge=1 -rss_limit_mb=2048 -timeout=30 "$CORPUS/$h" "$WORK/$h" \
      >"$LOGS/merge-$h.log" 2>&1 || { echo "merge $h failed: $LOGS/merge-$h.log"; continue; }
    echo "$h: $before -> $(find "$CORPUS/$h" -type f | wc -l) inputs, $(du -sk "$CORPUS/$h" | cut -f1) KiB"
  done
  echo "corpus total: $(du -sk "$CORPUS" | cut -f1) KiB"
}

case "${1:-60}" in
  replay) need_build; replay ;;
  merge) need_build; mkdir -p "$LOGS"; merge ;;
  seeds) need_build; "$BIN/make_seeds" "$CORPUS" && echo "seeds written to $CORPUS" ;;
  *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS [HARNESS...]] | merge | replay | seeds" >&2; exit 2 ;;
  *) need_build; seconds=$1; shift || true; fuzz "$seconds" "$@" ;;
esac
