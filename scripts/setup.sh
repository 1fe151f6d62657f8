#!/usr/bin/env bash
# Installs every Debian package beit.c needs to build, test and run its demo.
# Works as root or through sudo; safe to run again (apt-get skips what is installed).
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config        # compiler and build system
  libopenblas-dev                         # sgemm (CBLAS interface, headers)
  libopenblas0-openmp                     # OpenBLAS built on OpenMP: one thread pool with our kernels
  libblis-openmp-dev libdnnl-dev libxsmm-dev  # the other sgemm libraries bench/bench_gemm measures (issue 16)
  libcjson-dev                            # JSON for safetensors headers and config.json
  libpng-dev libjpeg-dev zlib1g-dev       # images and gzip'd IDX files
  python3-torch python3-numpy             # the independent PyTorch reference (tests, bench)
  python3-scipy                           # reference for resizing relative position tables (interp2d, as unilm)
  python3-pil                             # reference for the RandAugment ops (PIL itself, as timm calls it)
  dataset-fashion-mnist                   # the embedded default dataset
  openmpi-bin libopenmpi-dev              # optional: data-parallel training under mpirun (docs/distributed.md)
  clang libclang-rt-14-dev libomp-14-dev  # libFuzzer harnesses, ASan/UBSan runtimes, clang's OpenMP (docs/fuzzing.md)
  valgrind                                # scripts/valgrind-tests.sh (memcheck over the test programs)
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
