#!/usr/bin/env bash
# The long kill-and-resume test: tests/test_resume.c with N SIGKILLs per recipe
# (pretraining and fine-tuning) instead of the 5 of CI, on a run long enough to
# take them (3 + N/4 epochs of 8 steps), the moments cycling through mid-step,
# inside a checkpoint write, inside the checkpoint rotation, inside a
# weights-file write and inside the log trim of a resume.
#   scripts/killtest.sh N [BUILD] [SEED]     e.g. scripts/killtest.sh 100 build
# Prints the test's lines (kills per moment, loads checked, bit-exact results)
# and exits non-zero on any failure. See docs/reliability.md.
set -u
N=${1:?usage: scripts/killtest.sh N [BUILD] [SEED]}
BUILD=${2:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$ROOT/$BUILD/tests/test_resume" ] || { echo "killtest: build first (make BUILD=$BUILD)" >&2; exit 2; }
export BEIT_TEST_FIXTURES="$ROOT/$BUILD/fixtures-killtest"
export BEIT_ROOT="$ROOT"
export BEIT_BIN="$ROOT/$BUILD/beit"
export BEIT_KILLTEST_KILLS="$N"
[ $# -ge 3 ] && export BEIT_KILLTEST_SEED="$3"
mkdir -p "$BEIT_TEST_FIXTURES"
start=$(date +%s)
"$ROOT/$BUILD/tests/test_resume"
rc=$?
echo "killtest: $N kills per recipe, $(( $(date +%s) - start )) s, exit $rc"
exit $rc
