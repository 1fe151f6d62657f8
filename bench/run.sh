#!/usr/bin/env bash
# Benchmarks beit.c against PyTorch in its fastest configuration, in one run: for each workload
# `beit bench`, then PyTorch on the same model, batch and threads (one process at a time), then one
# table row: images/s of both, our GFLOP/s and its share of the sgemm limit measured in the same run,
# both peak RSS, the speed and memory ratios. The PyTorch side is ../shared/bench/bench_torch.py
# (through bench/torch_baseline.py) wherever it has the workload's step, bench/ref_bench.py elsewhere,
# both run with OpenBLAS's OpenMP build; bench/compare.py says which and why.
#   bench/run.sh [BUILD]                      every workload, beit from BUILD (default build)
#   BEIT=path/to/beit bench/run.sh            another binary (before/after a change)
#   BENCH_QUICK=1                             skips the BEiT-B (224x224, patch 16) workloads
#   THREADS=2 STEPS=5                         threads on each side, timed steps
#   BENCH_JSON=FILE                           results as JSON (default bench/results/DATE-HOST.json)
#   BENCH_SHARED=DIR                          bench_torch.py's folder (default ../shared/bench)
#   BENCH_TORCH_LIB=DIR                       the OpenMP OpenBLAS (default .../openblas-openmp)
#   BENCH_TORCH_ENV="K=V ..."                 more environment for the PyTorch side only
#   BENCH_BEIT_ENV="K=V ..."                  the same for beit.c's side (OPENBLAS_CORETYPE is otherwise
#                                             cleared there: beit picks its kernels itself)
# Exits 1 when a workload failed (its row says FAILED and why). Method: docs/performance.md.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BEIT=${BEIT:-$ROOT/${1:-build}/beit}
[ -x "$BEIT" ] || { echo "bench: $BEIT not built (run make, or set BEIT)"; exit 1; }
exec "${PYTHON:-/usr/bin/python3}" "$ROOT/bench/compare.py" "$BEIT"
