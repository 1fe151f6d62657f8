#!/usr/bin/env bash
# Runs every test program in BUILD/tests (each from a fresh fixtures folder),
# adds up their "N passed, N failed" lines and ends with the total.
# A program that crashes or prints no count counts as one failure.
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export BEIT_TEST_FIXTURES="$ROOT/$BUILD/fixtures"
export BEIT_ROOT="$ROOT"
export BEIT_BIN="$ROOT/$BUILD/beit"
mkdir -p "$BEIT_TEST_FIXTURES"
passed=0; failed=0
for t in "$ROOT/$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  start=$(date +%s%N)
  out=$("$t" 2>&1); rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  echo "$out"
  line=$(echo "$out" | grep -E "^$name: [0-9]+ passed, [0-9]+ failed$" | tail -n 1)
  if [ -z "$line" ]; then
    echo "$name: no result line (exit code $rc) -- counted as a failure"
    failed=$((failed + 1)); continue
  fi
  p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\1/')
  f=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\2/')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "$name: exit code $rc"; fi
  passed=$((passed + p)); failed=$((failed + f))
  echo "[$name took ${ms} ms]"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
