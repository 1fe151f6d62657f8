#!/usr/bin/env bash
# Runs every C test program of a normal (unsanitized) build under valgrind's
# memcheck and prints one line per program: its test result and valgrind's
# error count. Slow (minutes per program); not part of CI. docs/fuzzing.md.
#
#   scripts/valgrind-tests.sh [BUILD] [TEST...]   (default BUILD: build-valgrind)
#
# Build it without AVX-512, which valgrind cannot run:
#   cmake -S . -B build-valgrind -DBEIT_NATIVE=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-g
#   cmake --build build-valgrind
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build-valgrind}
shift || true
export BEIT_TEST_FIXTURES="$ROOT/$BUILD/fixtures" BEIT_ROOT="$ROOT" BEIT_BIN="$ROOT/$BUILD/beit"
export OPENBLAS_CORETYPE=Haswell   # OpenBLAS would pick AVX-512 kernels otherwise
export ONEDNN_MAX_CPU_ISA=AVX2     # and so would oneDNN's JIT (gemm()'s sgemm when built in)
# beit_runtime_init re-executes /proc/self/exe to set these, which under valgrind is
# valgrind itself: set them here and tell it not to.
export OMP_WAIT_POLICY=passive BEIT_REEXEC=1
mkdir -p "$BEIT_TEST_FIXTURES" "$ROOT/$BUILD/valgrind"
command -v valgrind >/dev/null || { echo "valgrind is not installed (scripts/setup.sh)"; exit 1; }

tests=("$@")
[ ${#tests[@]} -gt 0 ] || for t in "$ROOT/$BUILD"/tests/test_*; do tests+=("$(basename "$t")"); done
total=0
for name in "${tests[@]}"; do
  log="$ROOT/$BUILD/valgrind/$name.log"
  rm -f "$log".*
  start=$(date +%s)
  # Children: `sh -c` and beit are followed; Python (the references) and Open MPI's
  # launchers run natively (valgrind would take hours over torch).
  nice -n 10 valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite \
    --trace-children=yes --trace-children-skip='*python*,*mpirun*,*orterun*,*orted*,*prterun*' \
    --log-file="$log.%p" --error-exitcode=99 "$ROOT/$BUILD/tests/$name" >"$log" 2>&1
  rc=$?
  errors=$(cat "$log".* 2>/dev/null | grep -oE 'ERROR SUMMARY: [0-9]+' | awk '{s += $3} END {print s + 0}')
  result=$(grep -E "^$name: [0-9]+ passed, [0-9]+ failed$" "$log" | tail -n 1)
  printf "%-20s %-40s valgrind errors: %s (exit %d, %d s)\n" "$name" "${result:-no result line}" "$errors" $rc \
    $(($(date +%s) - start))
  total=$((total + errors))
done
echo "valgrind: $total errors in total; logs in $BUILD/valgrind/"
[ "$total" -eq 0 ]
